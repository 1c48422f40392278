#!/usr/bin/env bash
# Runs the real-client suite (tests/clients/) against a fresh Brikk:
#   BRIKK_BIN=~/.cache/brikk-target/debug/brikk scripts/run-clients.sh [CLIENT...]
# Installs what the clients need (scripts/install-clients.sh), starts
# `$BRIKK_BIN serve` on a temp data dir at 127.0.0.1:0, runs every client
# program (or only the CLIENTs named: psycopg3 psycopg2 asyncpg sqlalchemy
# sqlalchemy-reflect node-pg pgjdbc) one after the other against it, prints
# PASS/FAIL per client, stops the server and exits non-zero if any failed.
#
# Environment:
#   BRIKK_BIN                    the brikk binary (required)
#   BRIKK_LOG                    the server's log filter (default "info"; use
#                                "debug" or "info,sqlparser::parser=debug,brikk_server=debug"
#                                to see each statement the drivers send)
#   BRIKK_CLIENTS_VENV           the Python venv (default ~/.cache/brikk-clients-venv)
#   BRIKK_CLIENTS_SKIP_INSTALL=1 do not run scripts/install-clients.sh
#   BRIKK_CLIENTS_VERBOSE=1      the clients print each step they pass
#   BRIKK_CLIENTS_TIMEOUT        seconds one client may take (default 120)
# When a client fails, the temp dir with the server log and each client's
# output is kept and its path printed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CLIENTS=$ROOT/tests/clients

: "${BRIKK_BIN:?set BRIKK_BIN to the brikk binary, e.g. BRIKK_BIN=\$HOME/.cache/brikk-target/debug/brikk (cargo build --bin brikk)}"
if [ ! -x "$BRIKK_BIN" ]; then
    echo "run-clients: $BRIKK_BIN is not an executable: build it with cargo build --bin brikk" >&2
    exit 2
fi
VENV="${BRIKK_CLIENTS_VENV:-$HOME/.cache/brikk-clients-venv}"
export BRIKK_CLIENTS_VENV="$VENV"
TIMEOUT="${BRIKK_CLIENTS_TIMEOUT:-120}"
PGJDBC_JAR=/usr/share/java/postgresql.jar

known=" psycopg3 psycopg2 asyncpg sqlalchemy sqlalchemy-reflect node-pg pgjdbc "
for name in "$@"; do
    if [[ "$known" != *" $name "* ]]; then
        echo "run-clients: no client named $name; the clients are:$known" >&2
        exit 2
    fi
done

if [ "${BRIKK_CLIENTS_SKIP_INSTALL:-}" != 1 ]; then
    "$ROOT/scripts/install-clients.sh" || { echo "run-clients: installing the clients failed" >&2; exit 2; }
fi

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs_since() { local ms=$(($(now_ms) - $1)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
start=$(now_ms)
work=$(mktemp -d "${TMPDIR:-/tmp}/brikk-clients.XXXXXX")
server_pid=""
keep=0

stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$server_pid" 2>/dev/null && kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    server_pid=""
}
cleanup() {
    stop_server
    if [ "$keep" = 1 ]; then
        echo "run-clients: server log and client output kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start the server and read the address it chose from its stderr.
BRIKK_LOG="${BRIKK_LOG:-info}" NO_COLOR=1 "$BRIKK_BIN" serve --data-dir "$work/data" --listen 127.0.0.1:0 \
    </dev/null >"$work/server.out" 2>"$work/server.log" &
server_pid=$!
addr=""
for _ in $(seq 600); do
    addr=$(sed -n 's/^brikk listening on \([0-9.]*:[0-9]*\).*/\1/p' "$work/server.log" | head -n1)
    [ -n "$addr" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.1
done
if [ -z "$addr" ]; then
    keep=1
    echo "run-clients: brikk did not start; the end of its log:" >&2
    tail -n 20 "$work/server.log" >&2
    exit 2
fi
export BRIKK_HOST="${addr%:*}" BRIKK_PORT="${addr##*:}"
export PYTHONDONTWRITEBYTECODE=1
echo "run-clients: brikk listening on $addr (data in $work/data)"

# name|directory|command. The Java client is compiled first (see run_client).
all_clients=(
    "psycopg3|python|$VENV/bin/python psycopg3_client.py"
    "psycopg2|python|$VENV/bin/python psycopg2_client.py"
    "asyncpg|python|$VENV/bin/python asyncpg_client.py"
    "sqlalchemy|python|$VENV/bin/python sqlalchemy_client.py"
    "sqlalchemy-reflect|python|$VENV/bin/python sqlalchemy_reflect.py"
    "node-pg|node|node pg_client.js"
    "pgjdbc|java|java -cp $PGJDBC_JAR:$work/java BrikkClient"
)

run_client() { # name dir command...
    local name=$1 dir=$2
    shift 2
    if [ "$name" = pgjdbc ]; then
        javac -cp "$PGJDBC_JAR" -d "$work/java" "$CLIENTS/java/BrikkClient.java" || return 1
    fi
    (cd "$CLIENTS/$dir" && exec timeout --kill-after=5 "$TIMEOUT" "$@")
}

selected=("$@")
passed=0
failed=0
failed_names=()
for entry in "${all_clients[@]}"; do
    IFS='|' read -r name dir cmd <<<"$entry"
    if ((${#selected[@]})) && [[ " ${selected[*]} " != *" $name "* ]]; then continue; fi
    t0=$(now_ms)
    # shellcheck disable=SC2086 # cmd is a word list of our own
    run_client "$name" "$dir" $cmd >"$work/$name.log" 2>&1
    rc=$?
    secs=$(secs_since "$t0")
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1))
        echo "PASS $name (${secs}s)"
        [ -n "${BRIKK_CLIENTS_VERBOSE:-}" ] && grep -v '^PASS ' "$work/$name.log" | sed 's/^/    /'
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        keep=1
        [ "$rc" = 124 ] && echo "    (timed out after ${TIMEOUT}s)" >>"$work/$name.log"
        echo "FAIL $name (${secs}s, exit $rc)"
        tail -n 15 "$work/$name.log" | sed 's/^/    /'
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "run-clients: the server exited during $name; the end of its log:" >&2
        tail -n 20 "$work/server.log" | sed 's/^/    /' >&2
        keep=1
        break
    fi
done

stop_server
echo "run-clients: ${#failed_names[@]} failed${failed_names[*]:+: ${failed_names[*]}}; took $(secs_since "$start")s"
echo "clients: $passed passed, $failed failed"
[ "$failed" = 0 ]
