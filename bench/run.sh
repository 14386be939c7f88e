#!/bin/sh
# make bench: import throughput and peak memory.
#   - ml-100k (from $TAILOR_DATA or ../shared/data), 3 runs
#   - generated CSVs of 1M and 10M events over the same 100k users and 50k
#     items, so what the import keeps in memory is the same for both
# and, side by side where the sqlite3 shell exists, its `.import` of the
# same CSV into a bare table (no id mapping, no validation) as a reference.
set -eu
B=${1:-build/release}
T=$B/tailor
G=$B/bench/gen_events
R=$B/bench/rss_exec
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${TAILOR_DATA:-$here/../shared/data}
W=${BENCH_DIR:-$B/bench-work}
mkdir -p "$W"

# run LABEL EVENTS -- command...: prints a table row from rss_exec's line.
run() {
    label=$1 events=$2; shift 3
    "$R" "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
    set -- $(tail -n 1 "$W/err" | sed 's/^rss_exec: //')
    awk -v l="$label" -v e="$events" -v s="$1" -v r="$2" \
        'BEGIN { printf "| %-34s | %10d | %7.2f | %12.0f | %8.1f |\n", l, e, s, e / s, r / 1024 }'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "tailor: $($T version)"
echo
echo "| import                             |     events |       s |     events/s | peak MiB |"
echo "|------------------------------------|-----------:|--------:|-------------:|---------:|"
if [ -d "$DATA/ml-100k" ]; then
    for i in 1 2 3; do
        rm -f "$W/ml.db"*
        run "ml-100k (movielens importer)" 100000 -- "$T" -q --db "$W/ml.db" import movielens "$DATA/ml-100k"
    done
else
    echo "(ml-100k not found under $DATA: skipped)"
fi
for n in 1000000 10000000; do
    csv="$W/events-$n.csv"
    [ -f "$csv" ] || "$G" "$n" 100000 50000 >"$csv"
    rm -f "$W/ev.db"*
    run "generated CSV, tailor import events" "$n" -- "$T" -q --db "$W/ev.db" import events "$csv"
    if command -v sqlite3 >/dev/null 2>&1; then
        rm -f "$W/ref.db"*
        run "same CSV, sqlite3 .import (bare)" "$n" -- sqlite3 "$W/ref.db" \
            "PRAGMA journal_mode=WAL" ".mode csv" ".import $csv events"
    fi
done
rm -f "$W/ml.db"* "$W/ev.db"* "$W/ref.db"*

echo
echo "## ALS: tailor against numpy/scipy (64 factors, 15 iterations, leave-one-out, full ranking)"
echo
"$(dirname "$0")/als.sh" "$B"

echo
echo "## Serving: top-10 per user on Amazon Beauty (S3-Rec), all items scored"
echo
"$B/bench/bench_serve" "$W/als-beauty.db"

echo
echo "## SASRec: tailor against PyTorch (Amazon Beauty, BCE, 2 threads)"
echo
"$(dirname "$0")/sasrec.sh" "$B" 10

echo
echo "## Knowledge graph: 3-hop path searches (Last.FM, KGCN)"
echo
if [ -d "$DATA/kgcn-lastfm-music-kg" ]; then
    K=$DATA/kgcn-lastfm-music-kg
    rm -f "$W/fm.db"*
    "$T" -q --db "$W/fm.db" import events "$K/user_artists.dat" --format tsv --user userID --item artistID --value weight >/dev/null
    "$T" -q --db "$W/fm.db" import kg "$K/kg.txt" --entity-map "$K/item_index2entity_id.txt" >/dev/null
    "$B/bench/bench_kg" "$W/fm.db" 10000
    rm -f "$W/fm.db"*
fi

echo
echo "## KGCN: tailor against PyTorch (Last.FM, CTR protocol, 10 epochs)"
echo
"$(dirname "$0")/kgcn.sh" "$B" 10

echo
echo "## Training a llama-layout model: tailor llm train against PyTorch (60 steps)"
echo
"$(dirname "$0")/llama_train.sh" "$B" 60

echo
echo "## LoRA fine-tuning of a Qwen2.5-0.5B-shaped model: F16, Q8_0 and Q4_K_M bases"
echo
"$(dirname "$0")/lora.sh" "$B" 3

echo
echo "## Vector search: tailor's exact search against Faiss's flat index (1M x 384), Faiss's approximate indexes"
echo
"$B/bench/bench_vsearch" 1000000 384 200 100000

echo
echo "## HTTP server: wrk against tailor serve (ml-latest-small)"
echo
"$(dirname "$0")/http.sh" "$B" 10

echo
echo "## PostgreSQL: imports, one server on each engine, three behind nginx"
echo
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    "$(dirname "$0")/cluster.sh" "$B" 8
else
    echo "(PostgreSQL's server is not installed: scripts/install-deps.sh installs it)"
fi

echo
echo "## LLM engine: pp512 / tg64 on synthetic SmolLM2-135M and Qwen2.5-0.5B (JSON lines)"
echo
"$(dirname "$0")/llm.sh" "$B"
