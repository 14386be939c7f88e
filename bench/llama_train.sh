#!/bin/sh
# make bench, training part: tokens/s, peak memory and the loss reached by
# `tailor llm train` against bench/llama_torch.py (the same model, data and
# hyperparameters in PyTorch, Debian's python3-torch), side by side in one
# run at 2 threads: a llama-layout model (width 128, 4 layers, 4 heads, 2
# KV heads, ff 384, output tied to the 32,000-token embedding: 5.2M
# parameters) on ml-latest-small's titles and genres, windows of 128
# tokens, batches of 16.
set -eu
B=${1:-build/release}
STEPS=${2:-60}
T=$B/tailor
R=$B/bench/rss_exec
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${TAILOR_DATA:-$here/../shared/data}
W=${BENCH_DIR:-$B/bench-work}
PY=/usr/bin/python3
mkdir -p "$W"
if ! $PY -c "import torch" 2>/dev/null; then
    echo "training benchmark: installing python3-torch for the reference"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO=sudo; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi
VOCAB="$DATA/tokenizer-refs-llamacpp/ggml-vocab-llama-spm.gguf"
tail -n +2 "$DATA/ml-latest-small/movies.csv" | cut -d, -f2- | sed 's/"//g' >"$W/movies.txt"
"$B/bench/bench_tokenize" "$VOCAB" "$W/movies.txt" "$W/movies.bin" >/dev/null
printf '{"arch":"llama","n_embd":128,"n_layer":4,"n_head":4,"n_head_kv":2,"n_ff":384}\n' >"$W/bench-llama.json"
LR=0.003
"$R" "$T" -q llm train --config "$W/bench-llama.json" --vocab "$VOCAB" --data "$W/movies.txt" --steps "$STEPS" \
    --ctx 128 --batch 16 --lr $LR --eval-every 0 -t 2 "$W/bench-llama.gguf" >"$W/tl.out" 2>"$W/tl.err" ||
    { cat "$W/tl.err" >&2; exit 1; }
t_rss=$(tail -n 1 "$W/tl.err" | awk '{print $3}')
t_tps=$(sed 's/.*: \([0-9.]*\) tokens\/s.*/\1/' "$W/tl.out")
t_val=$(sed 's/.*validation \([0-9.]*\);.*/\1/' "$W/tl.out")
"$R" $PY "$here/bench/llama_torch.py" "$W/movies.bin" 32000 128 4 4 2 384 128 16 "$STEPS" $LR 2 \
    >"$W/pt.out" 2>"$W/pt.err" || { cat "$W/pt.err" >&2; exit 1; }
p_rss=$(tail -n 1 "$W/pt.err" | awk '{print $3}')
p_tps=$(sed 's/.*tokens_per_s=\([0-9.]*\).*/\1/' "$W/pt.out")
p_val=$(sed 's/.*val_loss=\([0-9.]*\).*/\1/' "$W/pt.out")
echo "| implementation ($STEPS steps, 2 threads) | tokens/s | speed-up | peak MiB | validation loss |"
echo "|---|---:|---:|---:|---:|"
printf '| PyTorch %s (bench/llama_torch.py) | %.0f | 1.0x | %.0f | %s |\n' \
    "$($PY -c 'import torch; print(torch.__version__)')" "$p_tps" "$(awk -v r="$p_rss" 'BEGIN { print r / 1024 }')" "$p_val"
printf '| tailor llm train | %.0f | %.2fx | %.0f | %s |\n' "$t_tps" \
    "$(awk -v a="$t_tps" -v b="$p_tps" 'BEGIN { print a / b }')" "$(awk -v r="$t_rss" 'BEGIN { print r / 1024 }')" "$t_val"
