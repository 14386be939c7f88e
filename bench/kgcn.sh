#!/bin/sh
# kgcn.sh — seconds per training epoch of tailor's KGCN (src/rec/kgcn.c, one
# thread) against the same model in PyTorch (bench/kgcn_torch.py, Debian's
# python3-torch, 1 and 2 threads), same hyperparameters (dim 16, 8
# neighbours, batch 128, Adam 5e-4, L2 1e-4), same data (KGCN's Last.FM
# files, CTR protocol), side by side in one run; and the test AUC each
# reaches.   usage: bench/kgcn.sh [build/release] [epochs, default 10]
set -eu
B=${1:-build/release}
EPOCHS=${2:-10}
T=$B/tailor
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${TAILOR_DATA:-$here/../shared/data}
K=$DATA/kgcn-lastfm-music-kg
W=${BENCH_DIR:-$B/bench-work}
PY=/usr/bin/python3
mkdir -p "$W"
if ! $PY -c "import torch" 2>/dev/null; then
    echo "KGCN benchmark: installing python3-torch for the reference"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO=sudo; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi
db="$W/kgcn-fm.db"
rm -f "$db"*
"$T" -q --db "$db" import events "$K/user_artists.dat" --format tsv --user userID --item artistID --value weight >/dev/null
"$T" -q --db "$db" import kg "$K/kg.txt" --entity-map "$K/item_index2entity_id.txt" >/dev/null
"$T" -q --db "$db" eval --protocol ctr --models kgcn -p kgcn.epochs="$EPOCHS" -t 1 --json "$W/kgcn.json" >/dev/null
t_s=$(grep -o '"train_s":[0-9.]*' "$W/kgcn.json" | cut -d: -f2)
t_auc=$(grep -o '"auc":{"mean":[0-9.]*' "$W/kgcn.json" | sed 's/.*://')
echo "| implementation | threads | s / epoch | speed-up | test AUC after $EPOCHS epochs |"
echo "|---|---:|---:|---:|---:|"
p1=$($PY "$here/bench/kgcn_torch.py" "$K" "$EPOCHS" 1)
p2=$($PY "$here/bench/kgcn_torch.py" "$K" "$EPOCHS" 2)
tv=$($PY -c 'import torch; print(torch.__version__)')
for line in "1 $p1" "2 $p2"; do
    set -- $line
    s=$(echo "$2" | cut -d= -f2)
    auc=$(echo "$3" | cut -d= -f2)
    printf '| PyTorch %s (bench/kgcn_torch.py) | %s | %.3f | 1.0x | %s |\n' "$tv" "$1" "$s" "$auc"
done
s1=$(echo "$p1" | sed 's/s_per_epoch=\([0-9.]*\).*/\1/')
awk -v t="$t_s" -v e="$EPOCHS" -v p="$s1" -v a="$t_auc" \
    'BEGIN { printf "| tailor (src/rec/kgcn.c) | 1 | %.3f | %.1fx vs PyTorch at 1 thread | %s |\n", t / e, p / (t / e), a }'
rm -f "$db"*
