#!/usr/bin/env bash
# Installs the system packages Brikk's build and tests need, if missing:
#   libclang-dev, clang  - bindgen for the rocksdb crate
#   g++, make            - RocksDB's C++ sources
#   postgresql-client    - psql, used by the tests
# With --bench, also the PostgreSQL and Redis servers the benchmarks compare
# against.
# Needs root (or sudo) only when something is missing.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in libclang-dev clang g++ make; do
    have_pkg "$pkg" || need+=("$pkg")
done
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
if [ "${1:-}" = "--bench" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need+=(postgresql)
fi
if [ "${1:-}" = "--bench" ] && ! command -v redis-server >/dev/null 2>&1; then
    need+=(redis-server)
fi

if ((${#need[@]})); then
    echo "installing system packages: ${need[*]}" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install a Rust toolchain (rustup) first" >&2
    exit 1
fi
