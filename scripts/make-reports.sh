#!/bin/sh
# Reproduces the evaluation reports in docs/reports/: ml-100k and Amazon
# Beauty (S3-Rec files), leave-one-out, full and sampled ranking, every
# model with the parameters `tailor tune` chose on the validation split
# (see docs/evaluation.md for the tune commands).
#   scripts/make-reports.sh [build/release/tailor] [../shared/data]
set -eu
T=${1:-build/release/tailor}
DATA=${2:-../shared/data}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
"$T" -q --db "$W/ml.db" import movielens "$DATA/ml-100k" >/dev/null
"$T" -q --db "$W/beauty.db" import sequences "$DATA/s3rec-seqrec/Beauty.txt" >/dev/null
# The defaults have moved since the tuning (ALS 256 factors, BPR 100
# epochs, item-kNN shrinkage 10): the tuned runs' values are pinned.
PIN="--param als.factors=64 --param bpr.epochs=50 --param itemknn.shrink=0"
ML="$PIN --param itemknn.k=10 --param als.alpha=5 --param als.reg=10 --param bpr.lr=0.1 --param bpr.reg=0.01 --param ease.lambda=300"
BE="$PIN --param itemknn.k=0 --param als.alpha=20 --param als.reg=10 --param bpr.lr=0.1 --param bpr.reg=0.001 --param ease.lambda=50"
mkdir -p docs/reports/ml-100k-full docs/reports/ml-100k-sampled docs/reports/beauty-full docs/reports/beauty-sampled
for proto in full sampled; do
    extra=""
    [ "$proto" = sampled ] && extra="--negatives 100"
    # shellcheck disable=SC2086
    "$T" -q --db "$W/ml.db" eval --name ml-100k --protocol $proto $extra -k 10,20 $ML \
        --json docs/reports/ml-100k-$proto/results.json --report docs/reports/ml-100k-$proto
    # shellcheck disable=SC2086
    "$T" -q --db "$W/beauty.db" eval --name "Amazon Beauty (S3-Rec)" --protocol $proto $extra -k 10,20 $BE \
        --json docs/reports/beauty-$proto/results.json --report docs/reports/beauty-$proto
done
