#!/bin/sh
# make bench, ALS part: seconds per iteration of tailor's implicit ALS (64
# factors, CG and exact solver, 1 and 2 threads) against the numpy/scipy
# implementation of the same algorithm (bench/als_numpy.py, Debian's
# python3-numpy and python3-scipy) on the same leave-one-out split, and the
# NDCG@10 / HR@10 both reach (full ranking).
set -eu
B=${1:-build/release}
T=$B/tailor
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${TAILOR_DATA:-$here/../shared/data}
W=${BENCH_DIR:-$B/bench-work}
PY=/usr/bin/python3
mkdir -p "$W"
if ! $PY -c "import numpy, scipy" 2>/dev/null; then
    echo "ALS benchmark: installing python3-numpy and python3-scipy for the reference"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO=sudo; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-numpy python3-scipy >/dev/null
fi
ITERS=15

# min A B: the smaller (A may be empty).
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

# tailor_run DB PARAMS THREADS: train seconds / ITERS of one run; the
# NDCG@10 and HR@10 it reached go to $W/als-quality.
tailor_run() {
    "$T" -q --db "$1" eval --models als $2 --param als.factors=64 --param als.iterations=$ITERS \
        -t "$3" --json "$W/als.json" >/dev/null
    s=$(grep -o '"train_s":[0-9.]*' "$W/als.json" | cut -d: -f2)
    ndcg=$(grep -o '"ndcg@10":{"mean":[0-9.]*' "$W/als.json" | sed 's/.*://')
    hr=$(grep -o '"hr@10":{"mean":[0-9.]*' "$W/als.json" | sed 's/.*://')
    echo "$ndcg $hr" > "$W/als-quality"
    awk -v s="$s" -v n=$ITERS 'BEGIN { printf "%.4f", s / n }'
}

# Three rounds, each running numpy, tailor exact and tailor CG one after
# the other (this machine's speed drifts): the best round of each counts.
# numpy times the mean of its iterations (15 at 1 thread, with the quality
# figures in the first round; 3 at 2 threads), tailor its training time.
printf '| dataset | implementation | threads | s / iteration | vs numpy (same threads) | NDCG@10 | HR@10 |\n'
printf '|---|---|---:|---:|---:|---:|---:|\n'
for ds in ml-100k beauty; do
    db="$W/als-$ds.db"
    if [ ! -f "$db" ]; then
        if [ $ds = ml-100k ]; then
            "$T" -q --db "$db" import movielens "$DATA/ml-100k" >/dev/null
        else
            "$T" -q --db "$db" import sequences "$DATA/s3rec-seqrec/Beauty.txt" >/dev/null
        fi
    fi
    if [ $ds = ml-100k ]; then ALPHA=5; REG=10; else ALPHA=20; REG=10; fi
    PARAMS="--param als.alpha=$ALPHA --param als.reg=$REG"
    "$T" -q --db "$db" eval --models pop --export-split "$W/split-$ds" >/dev/null
    for th in 1 2; do
        np_s="" ex_s="" cg_s="" np_ndcg="" np_hr=""
        for round in 1 2 3; do
            if [ $th = 1 ]; then
                ev=$([ $round = 1 ] && echo 1 || echo 0)
                np=$(OPENBLAS_NUM_THREADS=1 $PY "$here/bench/als_numpy.py" "$W/split-$ds" 64 $REG $ALPHA $ITERS $ev)
                if [ $round = 1 ]; then
                    np_ndcg=$(echo "$np" | grep -o 'ndcg@10=[0-9.]*' | cut -d= -f2 || true)
                    np_hr=$(echo "$np" | grep -o 'hr@10=[0-9.]*' | cut -d= -f2 || true)
                fi
            else
                np=$(OPENBLAS_NUM_THREADS=2 $PY "$here/bench/als_numpy.py" "$W/split-$ds" 64 $REG $ALPHA 3 0)
            fi
            np_s=$(min "$np_s" "$(echo "$np" | sed 's/.*s_per_iter=\([0-9.]*\).*/\1/')")
            ex_s=$(min "$ex_s" "$(tailor_run "$db" "$PARAMS --param als.solver=cholesky" $th)")
            ex_q=$(cat "$W/als-quality")
            cg_s=$(min "$cg_s" "$(tailor_run "$db" "$PARAMS --param als.solver=cg" $th)")
            cg_q=$(cat "$W/als-quality")
        done
        printf '| %s | numpy/scipy, exact solve | %s | %.4f | 1.0x | %s | %s |\n' $ds $th "$np_s" "${np_ndcg:--}" "${np_hr:--}"
        set -- $ex_q
        printf '| %s | tailor, exact (Cholesky) | %s | %s | %.1fx | %.4f | %.4f |\n' $ds $th $ex_s \
            "$(awk -v a="$np_s" -v b="$ex_s" 'BEGIN { print a / b }')" $1 $2
        set -- $cg_q
        printf '| %s | tailor, CG (3 steps) | %s | %s | %.1fx | %.4f | %.4f |\n' $ds $th $cg_s \
            "$(awk -v a="$np_s" -v b="$cg_s" 'BEGIN { print a / b }')" $1 $2
    done
done
