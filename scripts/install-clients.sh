#!/usr/bin/env bash
# Installs what the real-client suite (tests/clients/, run by
# scripts/run-clients.sh) needs, if missing, and says nothing when all of it
# is there:
#   Debian packages  python3-venv (Debian's python3 runs the venv), nodejs and
#                    npm, default-jdk-headless (javac), libpostgresql-jdbc-java
#                    (pgjdbc at /usr/share/java/postgresql.jar)
#   a Python venv    at ${BRIKK_CLIENTS_VENV:-~/.cache/brikk-clients-venv} with
#                    tests/clients/python/requirements.txt (psycopg 3, psycopg2,
#                    asyncpg, SQLAlchemy)
#   node_modules     in tests/clients/node, from its package-lock.json (npm ci)
# apt-get update runs only when a Debian package is missing. Needs root (or
# sudo) only then. With --python, only the Python venv (and python3-venv):
# what the archive's external-reader test and benchmark need.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_ONLY=0
if [ "${1:-}" = "--python" ]; then PYTHON_ONLY=1; fi

CLIENTS=tests/clients
VENV="${BRIKK_CLIENTS_VENV:-$HOME/.cache/brikk-clients-venv}"
PGJDBC_JAR=/usr/share/java/postgresql.jar
# Debian's python3, so that python3-venv is what makes `-m venv` work (a
# python3 earlier on PATH, such as pyenv's, may be built differently).
PYTHON=/usr/bin/python3

# One install at a time: tests that need the venv run in parallel, and two
# pip installs into one venv leave it broken.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

need=()
if [ ! -x "$PYTHON" ] || ! have_pkg python3-venv; then need+=(python3-venv); fi
# NodeSource's nodejs (as on these machines) bundles npm and conflicts with
# Debian's npm package: ask for packages only when the commands are missing.
if [ "$PYTHON_ONLY" = 0 ]; then
    command -v node >/dev/null 2>&1 || need+=(nodejs)
    command -v npm >/dev/null 2>&1 || need+=(npm)
    command -v javac >/dev/null 2>&1 || need+=(default-jdk-headless)
    [ -f "$PGJDBC_JAR" ] || need+=(libpostgresql-jdbc-java)
fi

if ((${#need[@]})); then
    echo "install-clients: installing system packages: ${need[*]}" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Python venv: (re)install when the venv is new or requirements.txt changed.
req="$CLIENTS/python/requirements.txt"
stamp="$VENV/.brikk-requirements"
if [ ! -x "$VENV/bin/python" ]; then
    echo "install-clients: creating the Python venv $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
if ! cmp -s "$req" "$stamp"; then
    echo "install-clients: installing Python drivers into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
fi

if [ "$PYTHON_ONLY" = 1 ]; then exit 0; fi

# node-postgres: npm ci when node_modules is missing or older than the lockfile.
node_dir="$CLIENTS/node"
if [ ! -f "$node_dir/node_modules/.package-lock.json" ] \
    || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
    echo "install-clients: installing node packages in $node_dir" >&2
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
