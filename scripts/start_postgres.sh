#!/usr/bin/env bash
# Start a throw-away local PostgreSQL server for the store's tests and print the URL to use.
#
#   eval "$(scripts/start_postgres.sh)"      # exports INSPECT_APP_TEST_PG_URL
#   .venv/bin/python -m pytest -q -m postgres
#   scripts/start_postgres.sh --stop          # stops it and removes its data folder
#
# The server listens on 127.0.0.1 only (port $INSPECT_APP_PG_PORT, default 54329), trusts local
# connections (it is a test server: never use this for a plant) and keeps its data in
# $INSPECT_APP_PG_DIR (default: a folder under /tmp). Run again, it reuses the running server.
# Needs the PostgreSQL server binaries; when they are missing and this runs as root, it installs
# them with apt-get. On stdout it prints only the `export` line; messages go to stderr, and if no
# server can be started it prints nothing and exits 1 (the postgres tests then skip).
set -euo pipefail

PORT="${INSPECT_APP_PG_PORT:-54329}"
DATA_ROOT="${INSPECT_APP_PG_DIR:-/tmp/inspect-app-pg-$PORT}"
DB="inspect_test"

say() { echo "start_postgres: $*" >&2; }

find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$d/pg_ctl" && -x "$d/initdb" ]]; then echo "$d"; return 0; fi
    done
    if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
        dirname "$(command -v pg_ctl)"; return 0
    fi
    return 1
}

BINDIR="$(find_bindir || true)"
if [[ -z "$BINDIR" ]]; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        say "PostgreSQL server not found; installing it with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q postgresql >&2 || { apt-get update -q >&2 && apt-get install -y -q postgresql >&2; }
        BINDIR="$(find_bindir || true)"
    fi
fi
if [[ -z "$BINDIR" ]]; then
    say "no PostgreSQL server binaries (pg_ctl, initdb) and cannot install them (not root or no apt-get)"
    exit 1
fi

# The server refuses to run as root: run it as the `postgres` user when we are root.
if [[ "$(id -u)" -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$DATA_ROOT" postgres
    as_pg() { runuser -u postgres -- "$@"; }
    OWNER=postgres
else
    as_pg() { "$@"; }
    OWNER="$(id -un)"
fi

PGDATA="$DATA_ROOT/data"
if [[ "${1:-}" == "--stop" ]]; then
    if [[ -f "$PGDATA/postmaster.pid" ]]; then
        as_pg "$BINDIR/pg_ctl" -D "$PGDATA" -m fast -w stop >&2 || true
    fi
    rm -rf "$DATA_ROOT"
    say "stopped and removed $DATA_ROOT"
    exit 0
fi

if ! "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" 2>/dev/null; then
    if [[ ! -f "$PGDATA/PG_VERSION" ]]; then
        mkdir -p "$DATA_ROOT"
        chown "$OWNER" "$DATA_ROOT"
        as_pg "$BINDIR/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
    fi
    as_pg "$BINDIR/pg_ctl" -D "$PGDATA" -l "$DATA_ROOT/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA_ROOT -c fsync=off" start >&2
fi
for _ in $(seq 1 30); do
    "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break
    sleep 1
done

PSQL=("$BINDIR/psql" -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
if [[ "$("${PSQL[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]]; then
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB" >&2
fi
say "PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT, data in $DATA_ROOT"
echo "export INSPECT_APP_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"
