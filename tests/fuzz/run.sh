#!/bin/sh
# Runs each fuzz target for SECONDS with a seed corpus made from small
# real inputs; crashes land in build/fuzz/crashes/.
set -eu
B=${1:-build/fuzz}
SECONDS_EACH=${2:-60}
here=$(cd "$(dirname "$0")/../.." && pwd)
data="$here/../shared/data"
mkdir -p "$B/corpus/csv" "$B/corpus/jsonl" "$B/corpus/model" "$B/corpus/gguf" "$B/corpus/grammar" "$B/corpus/http" "$B/crashes"
# Seeds: a byte of parameters, then a few lines of real files.
if [ -d "$data" ]; then
    { printf '\000'; head -c 2000 "$data/ml-latest-small/movies.csv"; } >"$B/corpus/csv/movies"
    { printf '\001'; head -c 2000 "$data/ml-100k/u.data"; } >"$B/corpus/csv/udata"
    { printf '\022'; head -c 2000 "$data/ml-100k/u.item"; } >"$B/corpus/csv/uitem"
    { printf '\001'; head -c 2000 "$data/ml-latest-small/ratings.csv"; } >"$B/corpus/jsonl/ratings"
fi
printf '\000{"user_id": 1, "item_id": "a", "timestamp": "2024-01-01T00:00:00Z", "value": 2.5}\n{"a": [1, {"b": null}]}\n' >"$B/corpus/jsonl/seed"
# Model seeds: small real model files of every kind.
if [ -d "$data/ml-100k" ] && [ ! -f "$B/corpus/model/pop.tmod" ]; then
    T=$B/tailor
    "$T" -q --db "$B/seed.db" import movielens "$data/ml-100k" >/dev/null 2>&1 || true
    for k in pop itemknn; do "$T" -q --db "$B/seed.db" train $k -p k=2 >/dev/null 2>&1 || "$T" -q --db "$B/seed.db" train $k >/dev/null 2>&1 || true; done
    cp "$B/seed.db.models/"*.tmod "$B/corpus/model/" 2>/dev/null || true
fi
# GGUF seeds: the tiny real model and two vocabulary-only files.
if [ -d "$data/tinyllamas-stories260K" ]; then
    cp "$data/tinyllamas-stories260K/stories260K.gguf" "$B/corpus/gguf/" 2>/dev/null || true
    cp "$data/tokenizer-refs-llamacpp/ggml-vocab-llama-spm.gguf" "$B/corpus/gguf/" 2>/dev/null || true
fi
# Grammar seeds: a GBNF grammar with text to follow, a JSON schema, names.
printf '\000root ::= "{" ws ("\\"" [a-z]{1,4} "\\":" ws [0-9]+)? "}"\nws ::= " "?\n\000{"ab": 12}' >"$B/corpus/grammar/gbnf"
printf '\001{"type":"object","properties":{"k":{"type":"integer","minimum":-5,"maximum":120},"q":{"type":"string","maxLength":8},"t":{"type":"array","items":{"enum":["a",1]}}},"required":["k"]}' >"$B/corpus/grammar/schema"
printf '\003Alien (1979)\nAliens (1986)\nAlien\nAm\303\251lie (2001)\nHe said "hi"\nback\\slash\n[REC] (2007)' >"$B/corpus/grammar/names"
# HTTP seeds: a request line and a body for the routes that read one.
printf 'POST /api/events\n{"events":[{"user":"u","item":"1","kind":"view","value":4.5,"ts":17,"id":"a"}]}' >"$B/corpus/http/events"
printf 'GET /api/users/u/recommendations?k=2&filter=genres%%3DComedy&explain=1\n' >"$B/corpus/http/recs"
printf 'POST /api/recommendations\n{"history":["1",2],"k":2,"filters":["year>=1990"],"novelty":0.5}' >"$B/corpus/http/anon"
printf 'POST /api/sessions/1/messages\n{"text":"two comedies from the 90s"}' >"$B/corpus/http/chat"
printf 'POST /v1/chat/completions\n{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]}' >"$B/corpus/http/v1"
printf 'GET /api/items?q=toy%%20story&k=3\n' >"$B/corpus/http/search"
for t in csv jsonl model gguf grammar http; do
    echo "== fuzz_$t for ${SECONDS_EACH}s"
    max=65536
    [ "$t" = gguf ] && max=1300000 # seeds are whole (small) model files
    "$B/tests/fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" -max_len=$max \
        -artifact_prefix="$B/crashes/$t-" "$B/corpus/$t"
done
