#!/bin/sh
# pg-cluster.sh — a throwaway PostgreSQL cluster for the tests: initdb into
# a temporary folder, listening only on a unix socket there, no fsync (the
# data dies with the test run). As root (CI) the server runs as the
# unprivileged `postgres` user that Debian's package creates.
#   pg-cluster.sh start STATE_FILE   starts one; STATE_FILE gets its folder,
#                                    and STATE_FILE.url the URL tests use
#   pg-cluster.sh stop STATE_FILE    stops it and removes the folder
#   pg-cluster.sh pause STATE_FILE   stops the server, keeping its data
#   pg-cluster.sh resume STATE_FILE  starts it again
set -eu
cmd=${1:-} state=${2:-}
[ -n "$cmd" ] && [ -n "$state" ] || { echo "usage: pg-cluster.sh start|stop STATE_FILE" >&2; exit 64; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "FATAL: PostgreSQL's server is not installed (scripts/install-deps.sh installs postgresql)" >&2; exit 2; }

as_pg() { # runs a command as the cluster's owner
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tailor-pg-XXXXXX")
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -A trust -U tailor -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-k $dir -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "$dir" >"$state"
    echo "postgresql:///postgres?host=$dir&user=tailor" >"$state.url"
    echo "PostgreSQL cluster in $dir"
    ;;
stop)
    [ -f "$state" ] || exit 0
    dir=$(cat "$state")
    as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$dir" "$state" "$state.url"
    ;;
pause)
    dir=$(cat "$state")
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
resume)
    dir=$(cat "$state")
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-k $dir -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null
    ;;
*) echo "usage: pg-cluster.sh start|stop|pause|resume STATE_FILE" >&2; exit 64 ;;
esac
