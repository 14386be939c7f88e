#!/bin/sh
# make bench, SASRec part: seconds per epoch and peak memory of tailor's
# SASRec against bench/sasrec_torch.py (the same model and hyperparameters
# in PyTorch, Debian's python3-torch on the CPU), both at 2 threads, BCE
# loss, the same leave-one-out split of Amazon Beauty, the same number of
# epochs, and the full-ranking NDCG@10 / HR@10 each reaches.
set -eu
B=${1:-build/release}
EPOCHS=${2:-10}
T=$B/tailor
R=$B/bench/rss_exec
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${TAILOR_DATA:-$here/../shared/data}
W=${BENCH_DIR:-$B/bench-work}
PY=/usr/bin/python3
mkdir -p "$W"
if ! $PY -c "import torch" 2>/dev/null; then
    echo "SASRec benchmark: installing python3-torch for the reference"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO=sudo; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi
db="$W/als-beauty.db"
[ -f "$db" ] || "$T" -q --db "$db" import sequences "$DATA/s3rec-seqrec/Beauty.txt" >/dev/null
"$T" -q --db "$db" eval --models pop --export-split "$W/split-beauty" >/dev/null

"$R" "$T" -q --db "$db" eval --models sasrec --param sasrec.epochs=$EPOCHS --param sasrec.patience=0 -t 2 \
    --json "$W/sas.json" >/dev/null 2>"$W/sas.err" || { cat "$W/sas.err" >&2; exit 1; }
t_rss=$(tail -n 1 "$W/sas.err" | awk '{print $3}')
t_s=$(grep -o '"train_s":[0-9.]*' "$W/sas.json" | cut -d: -f2)
t_ndcg=$(grep -o '"ndcg@10":{"mean":[0-9.]*' "$W/sas.json" | sed 's/.*://')
t_hr=$(grep -o '"hr@10":{"mean":[0-9.]*' "$W/sas.json" | sed 's/.*://')
"$R" $PY "$here/bench/sasrec_torch.py" "$W/split-beauty" $EPOCHS 2 >"$W/torch.out" 2>"$W/torch.err" || { cat "$W/torch.err" >&2; exit 1; }
p_rss=$(tail -n 1 "$W/torch.err" | awk '{print $3}')
p_s=$(sed 's/.*s_per_epoch=\([0-9.]*\).*/\1/' "$W/torch.out")
p_ndcg=$(grep -o 'ndcg@10=[0-9.]*' "$W/torch.out" | cut -d= -f2)
p_hr=$(grep -o 'hr@10=[0-9.]*' "$W/torch.out" | cut -d= -f2)
echo "| implementation | s / epoch (2 threads) | speed-up | peak MiB | NDCG@10 after $EPOCHS epochs | HR@10 |"
echo "|---|---:|---:|---:|---:|---:|"
printf '| PyTorch %s (bench/sasrec_torch.py) | %.2f | 1.0x | %.0f | %s | %s |\n' \
    "$($PY -c 'import torch; print(torch.__version__)')" "$p_s" "$(awk -v r="$p_rss" 'BEGIN { print r / 1024 }')" "$p_ndcg" "$p_hr"
printf '| tailor | %.2f | %.1fx | %.0f | %.4f | %.4f |\n' "$(awk -v s="$t_s" -v e=$EPOCHS 'BEGIN { print s / e }')" \
    "$(awk -v a="$p_s" -v s="$t_s" -v e=$EPOCHS 'BEGIN { print a / (s / e) }')" \
    "$(awk -v r="$t_rss" 'BEGIN { print r / 1024 }')" "$t_ndcg" "$t_hr"
