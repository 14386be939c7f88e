#!/usr/bin/env python3
"""sasrec_torch.py — the benchmark's reference: SASRec written in PyTorch
with the same architecture and hyperparameters as tailor's src/rec/sasrec.c
(item embedding scaled by sqrt(C) + learned positions, dropout; per block
Q = LN(x), causal attention with padded keys masked (queries from Q, keys
and values from x), x = Q + attention, y = LN(x), y + FFN(y) with ReLU and
dropout, padded positions zeroed; final LN; BCE with one negative per
position; Adam(0.001, betas 0.9/0.98)), trained on a split exported by
`tailor eval --export-split DIR`. Prints seconds per epoch, then full-ranking
NDCG@10 / HR@10 on the test targets (ties to the lower index).

usage: sasrec_torch.py SPLIT_DIR EPOCHS THREADS [max_len=50 hidden=64 blocks=2 heads=1 dropout=0.5 batch=128]
"""
import math
import sys
import time

import numpy as np
import torch


def main():
    d, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    kw = dict(a.split("=") for a in sys.argv[4:])
    T, C, L, NH = int(kw.get("max_len", 50)), int(kw.get("hidden", 64)), int(kw.get("blocks", 2)), int(kw.get("heads", 1))
    p, B = float(kw.get("dropout", 0.5)), int(kw.get("batch", 128))
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    rng = np.random.default_rng(42)
    nu = sum(1 for _ in open(f"{d}/users.tsv"))
    ni = sum(1 for _ in open(f"{d}/items.tsv"))
    tr = np.loadtxt(f"{d}/train.tsv", dtype=np.int64, ndmin=2)
    te = np.loadtxt(f"{d}/test.tsv", dtype=np.int64, ndmin=2)
    order = np.lexsort((tr[:, 1], tr[:, 3], tr[:, 0]))  # user, time, item
    tr = tr[order]
    seqs = [[] for _ in range(nu)]
    for u, i in zip(tr[:, 0], tr[:, 1]):
        seqs[u].append(int(i) + 1)
    owned = [set(s) for s in seqs]
    users = [u for u in range(nu) if len(seqs[u]) >= 2]

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_a, self.ln_f = torch.nn.LayerNorm(C, eps=1e-8), torch.nn.LayerNorm(C, eps=1e-8)
            self.q, self.k, self.v, self.o = (torch.nn.Linear(C, C) for _ in range(4))
            self.w1, self.w2 = torch.nn.Linear(C, C), torch.nn.Linear(C, C)
            self.drop = torch.nn.Dropout(p)

        def forward(self, x, valid):
            Q = self.ln_a(x)
            q, k, v = self.q(Q), self.k(x), self.v(x)
            Bn, Tn, _ = x.shape
            hs = C // NH
            q = q.view(Bn, Tn, NH, hs).transpose(1, 2)
            k = k.view(Bn, Tn, NH, hs).transpose(1, 2)
            v = v.view(Bn, Tn, NH, hs).transpose(1, 2)
            s = q @ k.transpose(-1, -2) / math.sqrt(hs)
            causal = torch.ones(Tn, Tn, dtype=torch.bool).tril()
            mask = causal[None, None] & valid[:, None, None, :]
            s = s.masked_fill(~mask, float("-inf"))
            a = torch.nan_to_num(torch.softmax(s, dim=-1))
            att = (a @ v).transpose(1, 2).reshape(Bn, Tn, C)
            x1 = Q + self.o(att)
            y = self.ln_f(x1)
            out = y + self.drop(self.w2(torch.relu(self.drop(self.w1(y)))))
            return out * valid[..., None]

    class SASRec(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.E = torch.nn.Embedding(ni + 1, C, padding_idx=0)
            self.P = torch.nn.Embedding(T, C)
            self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
            self.ln = torch.nn.LayerNorm(C, eps=1e-8)
            self.drop = torch.nn.Dropout(p)

        def forward(self, seq):
            valid = seq != 0
            x = self.E(seq) * math.sqrt(C) + self.P.weight[None]
            x = self.drop(x) * valid[..., None]
            for b in self.blocks:
                x = b(x, valid)
            return self.ln(x)

    model = SASRec()
    # The same initialisation as tailor: N(0, 0.02) weights and biases,
    # LayerNorm scales 1 and shifts 0, a zero padding row.
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if ".ln" in name or name.startswith("ln."):
                prm.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                prm.normal_(0, 0.02)
        model.E.weight[0].zero_()
    opt = torch.optim.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.98))

    def window(s):
        s = s[-T:]
        return [0] * (T - len(s)) + s

    times = []
    for ep in range(epochs):
        t0 = time.perf_counter()
        model.train()
        rng.shuffle(users)
        for st in range(0, len(users), B):
            batch = users[st:st + B]
            inp = torch.tensor([window(seqs[u][:-1]) for u in batch])
            pos = torch.tensor([window(seqs[u][1:]) for u in batch])
            negs = []
            for u in batch:
                row = []
                for _ in range(T):
                    while True:
                        c = int(rng.integers(1, ni + 1))
                        if c not in owned[u]:
                            break
                    row.append(c)
                negs.append(row)
            neg = torch.tensor(negs)
            F = model(inp)
            pl = (F * model.E(pos)).sum(-1)
            nl = (F * model.E(neg)).sum(-1)
            m = pos != 0
            loss = (torch.nn.functional.softplus(-pl)[m].sum() + torch.nn.functional.softplus(nl)[m].sum()) / m.sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        times.append(time.perf_counter() - t0)
    out = {"s_per_epoch": sum(times) / max(1, len(times))}
    model.eval()
    targets = {int(u): int(i) for u, i in zip(te[:, 0], te[:, 1])}
    ndcg = hr = n = 0
    with torch.no_grad():
        ev = [u for u in range(nu) if u in targets and seqs[u]]
        for st in range(0, len(ev), 512):
            batch = ev[st:st + 512]
            F = model(torch.tensor([window(seqs[u]) for u in batch]))[:, -1]
            scores = F @ model.E.weight[1:].T
            for r, u in enumerate(batch):
                s = scores[r].numpy().copy()
                s[[i - 1 for i in seqs[u]]] = -np.inf
                top = np.lexsort((np.arange(ni), -s))[:10]
                h = np.nonzero(top == targets[u])[0]
                if len(h):
                    hr += 1
                    ndcg += 1 / math.log2(h[0] + 2)
                n += 1
    out["ndcg@10"], out["hr@10"] = ndcg / n, hr / n
    print(" ".join(f"{k}={v:.4f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
