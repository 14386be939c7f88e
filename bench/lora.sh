#!/bin/sh
# make bench, fine-tuning part: LoRA (rank 8 on attn_q and attn_v) on a
# Qwen2.5-0.5B-shaped model (tailor llm synth: the real shape, random
# weights) with the base in F16, Q8_0 and Q4_K_M: tokens/s (padded batch
# tokens) and peak RSS of a few steps at 2 threads, beside the memory bound
# the command states. For each type two rows, run one after the other: the
# adapter trained on the base as the file has it (each matrix dequantized
# just before its product, QLoRA-style) and on the base dequantized whole
# to F32 (what --merge holds).
set -eu
B=${1:-build/release}
STEPS=${2:-3}
T=$B/tailor
R=$B/bench/rss_exec
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${TAILOR_DATA:-$here/../shared/data}
W=${BENCH_DIR:-$B/bench-work}
mkdir -p "$W"
awk -F, 'NR > 1 && NR <= 41 { t = $2; g = $NF; gsub(/"/, "", t); gsub(/[|]/, ", ", g);
     printf "{\"prompt\": \"Film: %s. Genres:\", \"completion\": \" %s\"}\n", t, g }' \
    "$DATA/ml-latest-small/movies.csv" >"$W/lora.jsonl"
echo "| base type | base held as | file MiB | tokens/s | peak RSS MiB | bound MiB |"
echo "|---|---|---:|---:|---:|---:|"
for type in f16 q8_0 q4_k_m; do
    f="$W/qwen-$type.gguf"
    [ -f "$f" ] || "$T" -q llm synth --shape qwen2.5-0.5b --type $type "$f"
    for held in file f32; do
        extra=""
        [ $held = f32 ] && extra=--merge
        "$R" "$T" -q llm finetune -m "$f" --data "$W/lora.jsonl" -o "$W/lora-$type.gguf" --steps "$STEPS" \
            --batch 4 --ctx 64 -t 2 $extra >"$W/lora.out" 2>"$W/lora.err" || { cat "$W/lora.err" >&2; exit 1; }
        rss=$(tail -n 1 "$W/lora.err" | awk '{print $3}')
        tps=$(sed 's/.*(\([0-9.]*\) tokens\/s.*/\1/' "$W/lora.out")
        bound=$(sed 's/.*(bound \([0-9]*\) MiB).*/\1/' "$W/lora.out")
        printf '| %s | %s | %.0f | %s | %.0f | %s |\n' "$type" \
            "$([ $held = file ] && echo "$type, per product" || echo "F32 (--merge)")" \
            "$(stat -c %s "$f" | awk '{print $1 / 1048576}')" "$tps" "$(awk -v r="$rss" 'BEGIN { print r / 1024 }')" \
            "$bound"
        awk -v r="$rss" -v b="$bound" 'BEGIN { exit !(r / 1024 <= b) }' ||
            echo "peak RSS above the stated bound for $type ($held)" >&2
    done
done
