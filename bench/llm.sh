#!/bin/sh
# bench/llm.sh — the LLM engine's speed on synthetic models with the shapes
# of SmolLM2-135M and Qwen2.5-0.5B (tailor llm synth), as llama-bench
# measures them: pp512 and tg64 at 1 and 2 threads, the bytes read per token,
# the read bandwidth measured in the same run and the share of that bound;
# then generation with a busy neighbour process on one core; then what
# constrained decoding costs (bench/grammar.c).
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
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for shape in smollm2-135m qwen2.5-0.5b; do
    for type in q8_0 q4_0 q4_k_m f16; do
        "$T" llm bench -m "$M/$shape-$type.gguf" -p 512 -n 64 -r 2 -t 1,2 --json
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
