#!/usr/bin/env python3
"""als_numpy.py — the benchmark's reference: a straightforward numpy/scipy
implementation of the same implicit ALS (Hu, Koren, Volinsky 2008) that
tailor runs, on a split exported by `tailor eval --export-split DIR`.

Same model: p = 1 for observed pairs, c = 1 + alpha, per-row exact solve of
(YtY + reg I + Y_u^T (C_u - I) Y_u) x = Y_u^T c_u; same initialisation
scale; same evaluation (leave-one-out targets, full ranking over items not
trained on, ties to the lower index). Prints seconds per iteration and
NDCG@10 / HR@10.

usage: als_numpy.py SPLIT_DIR FACTORS REG ALPHA ITERATIONS [EVAL=1]
Threads: set OPENBLAS_NUM_THREADS (numpy's BLAS) before starting.
"""
import sys
import time

import numpy as np
import scipy.sparse as sp


def load(path, nu, ni):
    d = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if d.size == 0:
        return sp.csr_matrix((nu, ni), dtype=np.float32)
    return sp.csr_matrix((np.ones(len(d), dtype=np.float32), (d[:, 0].astype(int), d[:, 1].astype(int))),
                         shape=(nu, ni))


def solve_rows(Cm1, X, Y, reg, alpha):
    """Exact least-squares solve of every row of X given Y."""
    k = Y.shape[1]
    YtY = Y.T @ Y + reg * np.eye(k, dtype=Y.dtype)
    indptr, indices = Cm1.indptr, Cm1.indices
    for u in range(X.shape[0]):
        s, e = indptr[u], indptr[u + 1]
        if s == e:
            X[u] = 0
            continue
        Yu = Y[indices[s:e]]
        A = YtY + alpha * (Yu.T @ Yu)
        b = (1 + alpha) * Yu.sum(axis=0)
        X[u] = np.linalg.solve(A, b)


def main():
    d, k, reg, alpha, iters = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    evaluate = len(sys.argv) < 7 or sys.argv[6] != "0"
    nu = sum(1 for _ in open(f"{d}/users.tsv"))
    ni = sum(1 for _ in open(f"{d}/items.tsv"))
    train = load(f"{d}/train.tsv", nu, ni)
    trainT = train.T.tocsr()
    rng = np.random.default_rng(42)
    X = (rng.random((nu, k)) * 0.01).astype(np.float32)
    Y = (rng.random((ni, k)) * 0.01).astype(np.float32)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        solve_rows(train, X, Y, reg, alpha)
        solve_rows(trainT, Y, X, reg, alpha)
        times.append(time.perf_counter() - t0)
    out = {"s_per_iter": sum(times) / len(times)}
    if evaluate:
        test = load(f"{d}/test.tsv", nu, ni)
        ndcg = hr = n = 0
        for u in range(nu):
            t = test.indices[test.indptr[u]:test.indptr[u + 1]]
            if len(t) == 0 or train.indptr[u + 1] == train.indptr[u]:
                continue
            s = Y @ X[u]
            s[train.indices[train.indptr[u]:train.indptr[u + 1]]] = -np.inf
            order = np.lexsort((np.arange(ni), -s))[:10]
            hits = np.nonzero(order == t[0])[0]
            if len(hits):
                hr += 1
                ndcg += 1 / np.log2(hits[0] + 2)
            n += 1
        out["ndcg@10"] = ndcg / n
        out["hr@10"] = hr / n
    print(" ".join(f"{key}={val:.4f}" for key, val in out.items()))


if __name__ == "__main__":
    main()
