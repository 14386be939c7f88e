#!/bin/sh
# http.sh — `tailor serve` under load from wrk on loopback (ml-latest-small):
#   - GET /healthz: the server's own ceiling (no store, no worker)
#   - GET recommendations for random users (bench/recs.lua) with ALS (the
#     default 256 factors, and 64), at 8 and 32 connections
#   - POST /api/events in batches of 100 (events/s = requests/s x 100)
#   - with SOAK=SECONDS: mixed reads and writes that long, the server's RSS
#     sampled every 10 s (is memory flat?)
# usage: bench/http.sh [build/release] [seconds per run, default 10]
set -eu
B=${1:-build/release}
D=${2:-10}
T=$B/tailor
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${TAILOR_DATA:-$here/../shared/data}
W=${BENCH_DIR:-$B/bench-work}/http
command -v wrk >/dev/null || { echo "http.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }
rm -rf "$W" && mkdir -p "$W"
"$T" -q --db "$W/ml.db" import movielens "$DATA/ml-latest-small" >/dev/null
"$T" -q --db "$W/ml.db" train als --no-activate >/dev/null 2>&1
"$T" -q --db "$W/ml.db" train als -p factors=64 --name als64 --no-activate >/dev/null 2>&1
"$T" -q --db "$W/ml.db" models activate als >/dev/null
KEY=$("$T" -q --db "$W/ml.db" keys create --role admin --name bench)
awk -F, 'NR > 1 {print $1}' "$DATA/ml-latest-small/movies.csv" >"$W/items.txt"
"$T" -q --db "$W/ml.db" serve --port 0 --threads "$(nproc)" >"$W/serve.out" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null' EXIT
for _ in $(seq 100); do
    URL=$(sed -n 's|.*listening on \(http://[0-9.:]*\)/.*|\1|p' "$W/serve.out")
    [ -n "$URL" ] && break
    sleep 0.1
done
rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' /proc/$PID/status; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); server: $(nproc) workers; wrk -t2, ${D} s per run"
echo
echo "| load | connections | requests/s | p50 ms | p99 ms | errors | server RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|"
# row LABEL CONNECTIONS wrk-args...
row() {
    label=$1 c=$2; shift 2
    wrk -t2 -c"$c" -d"${D}s" --latency "$@" >"$W/wrk.out" 2>&1
    rps=$(awk '/Requests\/sec/ {print $2}' "$W/wrk.out")
    p50=$(awk '$1 == "50%" {print $2}' "$W/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$W/wrk.out")
    errs=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {n += $4 + $6 + $8 + $10} END {print n + 0}' "$W/wrk.out")
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$c" "$rps" "$p50" "$p99" "$errs" "$(rss)"
}
H="Authorization: Bearer $KEY"
row "GET /healthz (ceiling)" 32 "$URL/healthz"
for c in 8 32; do
    KEY=$KEY MODEL= row "GET recommendations, ALS 256 factors" $c -s "$here/bench/recs.lua" "$URL"
    KEY=$KEY MODEL=als64 row "GET recommendations, ALS 64 factors" $c -s "$here/bench/recs.lua" "$URL"
done
KEY=$KEY ITEMS_FILE="$W/items.txt" row "POST /api/events, batches of 100" 8 -s "$here/bench/post_events.lua" "$URL"
if [ -n "${SOAK:-}" ]; then
    echo
    echo "soak: ${SOAK} s of recommendations (16 connections) and event batches (4), RSS every 10 s (MiB):"
    wrk -t1 -c16 -d"${SOAK}s" -H "$H" "$URL/api/users/1/recommendations?k=10&model=als64" >"$W/soak1.out" 2>&1 &
    w1=$!
    KEY=$KEY ITEMS_FILE="$W/items.txt" wrk -t1 -c4 -d"${SOAK}s" -s "$here/bench/post_events.lua" "$URL" >"$W/soak2.out" 2>&1 &
    w2=$!
    line=""
    for _ in $(seq $((SOAK / 10))); do sleep 10; line="$line $(rss)"; done
    wait $w1 $w2
    echo "$line"
    awk '/Requests\/sec/ {print "  " FILENAME ": " $0}' "$W/soak1.out" "$W/soak2.out"
fi
