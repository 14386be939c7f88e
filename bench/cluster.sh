#!/bin/sh
# cluster.sh — the cost of PostgreSQL and of a balancer, side by side in one
# run on this machine (ml-latest-small, ALS with 64 factors):
#   - imports: the same generated CSVs into SQLite and into PostgreSQL
#   - HTTP under wrk (bench/recs.lua, bench/post_events.lua): one server on
#     SQLite, one on PostgreSQL, three on PostgreSQL behind nginx
# with the CPU each request costs the tailor servers and PostgreSQL (what
# decides how it scales on more machines: on 2 cores, three servers and a
# database share the same two, so the point here is overhead and
# correctness, not scaling). A throwaway PostgreSQL cluster is started and
# stopped by tests/pg-cluster.sh.
# usage: bench/cluster.sh [build/release] [seconds per run, default 8]
set -eu
B=${1:-build/release}
D=${2:-8}
T=$B/tailor
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${TAILOR_DATA:-$here/../shared/data}
W=${BENCH_DIR:-$B/bench-work}/cluster
command -v wrk >/dev/null || { echo "cluster.sh: wrk is missing (scripts/install-deps.sh --bench)" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
rm -rf "$W" && mkdir -p "$W"
W=$(cd "$W" && pwd) # nginx takes paths from its prefix
sh "$here/tests/pg-cluster.sh" start "$W/pg" >/dev/null
PIDS=""
trap 'kill $PIDS 2>/dev/null || true; sh "$here/tests/pg-cluster.sh" stop "$W/pg"' EXIT
BASE=$(cat "$W/pg.url")
pgdb() { psql -q "$BASE" -c "CREATE DATABASE $1" && echo "$BASE" | sed "s|/postgres?|/$1?|"; }
export TAILOR_FILES="$W/files"

# CPU seconds (user + system) of the processes given, and of PostgreSQL's.
cpu_of() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk -v hz="$(getconf CLK_TCK)" '{s += $1} END {printf "%.3f", s / hz}'; }
pg_cpu() {
    for p in $(pgrep -x postgres); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done |
        awk -v hz="$(getconf CLK_TCK)" '{s += $1} END {printf "%.3f", s / hz}'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); PostgreSQL $(psql -At "$BASE" -c 'SHOW server_version')"
echo
echo "| import | events | SQLite events/s | PostgreSQL events/s | ratio |"
echo "|---|---:|---:|---:|---:|"
for n in 1000000 10000000; do
    csv="$W/../events-$n.csv"
    [ -f "$csv" ] || "$B/bench/gen_events" "$n" 100000 50000 >"$csv"
    rm -f "$W/ev.db"*
    t0=$(date +%s.%N)
    "$T" -q --db "$W/ev.db" import events "$csv" >/dev/null
    t1=$(date +%s.%N)
    url=$(pgdb "ev$n")
    "$T" -q --db "$url" import events "$csv" >/dev/null
    t2=$(date +%s.%N)
    awk -v n="$n" -v a="$t0" -v b="$t1" -v c="$t2" \
        'BEGIN { printf "| generated CSV, import events | %d | %.0f | %.0f | %.2f |\n", n, n / (b - a), n / (c - b), (b - a) / (c - b) }'
    rm -f "$W/ev.db"*
done

# The same catalogue and model in both engines.
"$T" -q --db "$W/ml.db" import movielens "$DATA/ml-latest-small" >/dev/null
"$T" -q --db "$W/ml.db" train als -p factors=64 >/dev/null 2>&1
PGML=$(pgdb ml)
"$T" -q --db "$PGML" import movielens "$DATA/ml-latest-small" >/dev/null
"$T" -q --db "$PGML" train als -p factors=64 >/dev/null 2>&1
KEY=$("$T" -q --db "$W/ml.db" keys create --role admin --name bench)
KEYPG=$("$T" -q --db "$PGML" keys create --role admin --name bench)
awk -F, 'NR > 1 {print $1}' "$DATA/ml-latest-small/movies.csv" >"$W/items.txt"

start() { # start NAME DB: a server, its URL in $URL and pid in $pid
    : >"$W/$1.out"
    "$T" --db "$2" serve --port 0 --threads "$(nproc)" --no-web >"$W/$1.out" 2>&1 &
    pid=$!
    PIDS="$PIDS $pid"
    URL=""
    for _ in $(seq 100); do
        URL=$(sed -n 's|.*listening on \(http://[0-9.:]*\)/.*|\1|p' "$W/$1.out")
        [ -n "$URL" ] && break
        sleep 0.1
    done
    [ -n "$URL" ] || { cat "$W/$1.out" >&2; exit 1; }
}

echo
echo "| setup | load | requests/s | p50 ms | p99 ms | errors | tailor CPU ms/request | PostgreSQL CPU ms/request |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
# row SETUP LOAD URL KEY SERVER_PIDS -- wrk args
row() {
    setup=$1 load=$2 url=$3 key=$4 pids=$5; shift 6
    c0=$(cpu_of $pids) g0=$(pg_cpu)
    KEY=$key ITEMS_FILE="$W/items.txt" MODEL= wrk -t2 -c16 -d"${D}s" --latency "$@" "$url" >"$W/wrk.out" 2>&1
    c1=$(cpu_of $pids) g1=$(pg_cpu)
    n=$(awk '/requests in/ {print $1}' "$W/wrk.out")
    rps=$(awk '/Requests\/sec/ {print $2}' "$W/wrk.out")
    p50=$(awk '$1 == "50%" {print $2}' "$W/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$W/wrk.out")
    errs=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {n += $4 + $6 + $8 + $10} END {print n + 0}' "$W/wrk.out")
    awk -v s="$setup" -v l="$load" -v r="$rps" -v a="$p50" -v b="$p99" -v e="$errs" -v n="$n" \
        -v c="$(awk -v x="$c0" -v y="$c1" 'BEGIN {print y - x}')" -v g="$(awk -v x="$g0" -v y="$g1" 'BEGIN {print y - x}')" \
        'BEGIN { printf "| %s | %s | %s | %s | %s | %s | %.2f | %.2f |\n", s, l, r, a, b, e, 1000 * c / n, 1000 * g / n }'
}
both_loads() { # both_loads SETUP URL KEY PIDS
    row "$1" "GET recommendations (ALS 64)" "$2" "$3" "$4" -- -s "$here/bench/recs.lua"
    row "$1" "POST /api/events, batches of 100" "$2" "$3" "$4" -- -s "$here/bench/post_events.lua"
}

start lite "$W/ml.db"
both_loads "1 server, SQLite" "$URL" "$KEY" "$pid"
kill "$pid"
start pg1 "$PGML"
both_loads "1 server, PostgreSQL" "$URL" "$KEYPG" "$pid"
kill "$pid"
start a "$PGML"
A=$URL PA=$pid
start b "$PGML"
Bu=$URL PB=$pid
start c "$PGML"
C=$URL PC=$pid
mkdir -p "$W/nginx"
user=""
[ "$(id -u)" -eq 0 ] && user="user root;"
port=$((20000 + $$ % 20000))
cat >"$W/nginx/nginx.conf" <<EOF
$user
worker_processes 1;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $W/nginx/body;
    proxy_temp_path $W/nginx/proxy;
    upstream tailor {
        server ${A#http://};
        server ${Bu#http://};
        server ${C#http://};
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://tailor;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
"$NGINX" -p "$W/nginx" -c "$W/nginx/nginx.conf" 2>"$W/nginx.err" &
PIDS="$PIDS $!"
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
both_loads "3 servers, PostgreSQL, nginx" "http://127.0.0.1:$port" "$KEYPG" "$PA $PB $PC"
