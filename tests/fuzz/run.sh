#!/bin/sh
# Runs each fuzz target for SECONDS with a seed corpus made from small
# real inputs; crashes land in build/fuzz/crashes/.
set -eu
B=${1:-build/fuzz}
SECONDS_EACH=${2:-60}
here=$(cd "$(dirname "$0")/../.." && pwd)
data="$here/../shared/data"
mkdir -p "$B/corpus/csv" "$B/corpus/jsonl" "$B/crashes"
# Seeds: a byte of parameters, then a few lines of real files.
if [ -d "$data" ]; then
    { printf '\000'; head -c 2000 "$data/ml-latest-small/movies.csv"; } >"$B/corpus/csv/movies"
    { printf '\001'; head -c 2000 "$data/ml-100k/u.data"; } >"$B/corpus/csv/udata"
    { printf '\022'; head -c 2000 "$data/ml-100k/u.item"; } >"$B/corpus/csv/uitem"
    { printf '\001'; head -c 2000 "$data/ml-latest-small/ratings.csv"; } >"$B/corpus/jsonl/ratings"
fi
printf '\000{"user_id": 1, "item_id": "a", "timestamp": "2024-01-01T00:00:00Z", "value": 2.5}\n{"a": [1, {"b": null}]}\n' >"$B/corpus/jsonl/seed"
for t in csv jsonl; do
    echo "== fuzz_$t for ${SECONDS_EACH}s"
    "$B/tests/fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" -max_len=65536 \
        -artifact_prefix="$B/crashes/$t-" "$B/corpus/$t"
done
