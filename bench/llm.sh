#!/bin/sh
# bench/llm.sh — the LLM engine's speed on synthetic models with the shapes
# of SmolLM2-135M and Qwen2.5-0.5B (tailor llm synth), as llama-bench
# measures them: pp512 and tg64 at 1 and 2 threads, the bytes read per token,
# the read bandwidth measured in the same run and the share of that bound;
# then generation with a busy neighbour process on one core; then what
# constrained decoding costs (bench/grammar.c); the prompt tiles alone
# (bench/tiles.c); then, when llama.cpp's
# llama-bench is there, both engines side by side with their ratios.
#   bench/llm.sh [BUILD_DIR] [MODEL_DIR]
set -eu
B=${1:-build/release}
T=$B/tailor
M=${2:-${BENCH_DIR:-$B/bench-work}/llm}
mkdir -p "$M"
for shape in smollm2-135m qwen2.5-0.5b; do
    for type in q8_0 q4_0 q4_k_m f16; do
        f="$M/$shape-$type.gguf"
        [ -f "$f" ] || "$T" -q llm synth --shape "$shape" --type "$type" "$f"
    done
done
# A Llama-shaped Q4_K_M: all K-quants (2,048 and 8,192 wide, no Q5_0 fallback).
f="$M/llama-3.2-1b-q4_k_m.gguf"
[ -f "$f" ] || "$T" -q llm synth --shape llama-3.2-1b --type q4_k_m "$f"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for shape in smollm2-135m qwen2.5-0.5b; do
    for type in q8_0 q4_0 q4_k_m f16; do
        "$T" llm bench -m "$M/$shape-$type.gguf" -p 512 -n 64 -r 2 -t 1,2 --json
    done
done
# Weights laid out at load (src/llm/repack.c) against the file's layout,
# alternated in three rounds: generation, one and two threads.
for f in qwen2.5-0.5b-q4_k_m llama-3.2-1b-q4_k_m; do
    for r in 1 2 3; do
        for lay in 1 0; do
            TAILOR_LLM_REPACK=$lay "$T" llm bench -m "$M/$f.gguf" -p 0 -n 64 -r 2 -t 1,2 --json --no-bandwidth |
                sed "s/^{/{\"laid_out\": $lay, \"round\": $r, /"
        done
    done
done
# A busy neighbour: one core spinning for the length of the run.
for type in q8_0 q4_k_m; do
    sh -c 'while :; do :; done' &
    spin=$!
    "$T" llm bench -m "$M/qwen2.5-0.5b-$type.gguf" -p 0 -n 64 -r 2 -t 1,2 --json --no-bandwidth |
        sed 's/^{/{"neighbour": "busy", /'
    kill $spin
done
# Constrained decoding: generation under a JSON schema's grammar against
# plain generation of as many tokens, alternated in one process (bench/grammar.c);
# a tool call's schema, and a long one (a 150-200 character string, five
# bounded integers) where a random model's choice is refused at most steps.
printf '%s' '{"type":"object","properties":{"query":{"type":"string","minLength":1,"maxLength":40},"k":{"type":"integer","minimum":1,"maximum":20},"genres":{"type":"array","maxItems":3,"items":{"enum":["Comedy","Drama","Horror","Sci-Fi"]}}},"required":["query","k"]}' >"$M/tool.json"
printf '%s' '{"type":"object","properties":{"answer":{"type":"string","minLength":150,"maxLength":200},"items":{"type":"array","minItems":5,"maxItems":5,"items":{"type":"integer","minimum":1,"maximum":100000}}},"required":["answer","items"]}' >"$M/long.json"
for s in tool long; do
    "$B/bench/bench_grammar" "$M/qwen2.5-0.5b-q8_0.gguf" "$M/$s.json" 12 2 | tail -n 1 | sed "s/^{/{\"schema\": \"$s\", /"
done
# The prompt tiles alone, every weight type, each kernel set this CPU runs
# (bench/tiles.c).
"$B/bench/bench_tiles"
# Side by side with llama.cpp b4747's llama-bench (../shared/tools, every CPU
# variant, the best picked at run time) on the same files, alternated round
# by round (this machine's speed drifts); each engine's best round counts.
# LLM_SIDE_PP / LLM_SIDE_TG / LLM_SIDE_ROUNDS shrink it for a quick look.
here=$(cd "$(dirname "$0")/.." && pwd)
LB=${LLAMA_BENCH:-$here/../shared/tools/llama.cpp-b4747/llama-bench}
PP=${LLM_SIDE_PP:-512} TG=${LLM_SIDE_TG:-64} ROUNDS=${LLM_SIDE_ROUNDS:-2}
if [ -x "$LB" ]; then
    side="$M/side"
    rm -rf "$side"
    mkdir -p "$side"
    for shape in smollm2-135m qwen2.5-0.5b llama-3.2-1b; do
        for type in q8_0 q4_0 q4_k_m f16; do
            f="$M/$shape-$type.gguf"
            [ -f "$f" ] || continue
            r=1
            while [ "$r" -le "$ROUNDS" ]; do
                "$LB" -m "$f" -p "$PP" -n "$TG" -r 1 -t 1,2 -o json >"$side/lb-$shape-$type-$r.json" 2>/dev/null
                "$T" llm bench -m "$f" -p "$PP" -n "$TG" -r 1 -t 1,2 --json --no-bandwidth >"$side/tl-$shape-$type-$r.json"
                r=$((r + 1))
            done
        done
    done
    /usr/bin/python3 - "$side" "$PP" "$TG" <<'PY'
import glob, json, os, sys
side, pp, tg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
best = {}
for path in sorted(glob.glob(os.path.join(side, "*.json"))):
    engine, rest = os.path.basename(path).split("-", 1)
    model = rest.rsplit("-", 1)[0]
    if engine == "lb":
        for row in json.load(open(path)):
            test = "pp" if row["n_gen"] == 0 else "tg"
            key = (model, row["n_threads"], test)
            best.setdefault(key, {})
            best[key]["llama.cpp"] = max(best[key].get("llama.cpp", 0), row["avg_ts"])
    else:
        for line in open(path):
            row = json.loads(line)
            for test in ("pp", "tg"):
                key = (model, row["threads"], test)
                best.setdefault(key, {})
                best[key]["tailor"] = max(best[key].get("tailor", 0), row[test]["tok_s"])
print(f"| model | threads | test | llama.cpp tok/s | tailor tok/s | tailor / llama.cpp |")
print("|---|---:|---|---:|---:|---:|")
for (model, thr, test), v in sorted(best.items()):
    a, b = v.get("llama.cpp", 0), v.get("tailor", 0)
    name = f"pp{pp}" if test == "pp" else f"tg{tg}"
    print(f"| {model} | {thr} | {name} | {a:.1f} | {b:.1f} | {b / a if a else 0:.2f}x |")
PY
else
    echo "(llama-bench not found at $LB: no side-by-side table)"
fi
