"""kgcn_torch.py — the reference for bench/kgcn.sh: KGCN as tailor trains it
(src/rec/kgcn.c: sum aggregator, one hop, K neighbours sampled once with
replacement, BCE with one fresh negative per training positive each epoch,
L2 on the batch's user and item embeddings and W, Adam), in PyTorch on the
CPU, on KGCN's Last.FM files under the CTR protocol (positives on the items
of the graph, as many sampled negatives per user, rows split 6:2:2).

usage: python3 kgcn_torch.py DATA_DIR EPOCHS THREADS
prints: s_per_epoch=S auc=A (test AUC after the last epoch)
"""
import random
import sys
import time

import torch

data, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(42)
random.seed(42)
DIM, K, LR, L2, BATCH = 16, 8, 5e-4, 1e-4, 128

# The graph, both directions; items are the entities of the map.
ent_of_item, ents, rels, links = {}, {}, {}, {}
for line in open(data + "/item_index2entity_id.txt"):
    a, e = line.split()
    ent_of_item[a] = ents.setdefault(e, len(ents))
for line in open(data + "/kg.txt"):
    h, r, t = line.split()
    h, t, r = ents.setdefault(h, len(ents)), ents.setdefault(t, len(ents)), rels.setdefault(r, len(rels))
    links.setdefault(h, []).append((t, r))
    links.setdefault(t, []).append((h, r))
n_ent, n_rel = len(ents), len(rels) + 1  # the last relation: "self"
adj_e = torch.zeros(n_ent, K, dtype=torch.long)
adj_r = torch.zeros(n_ent, K, dtype=torch.long)
for e in range(n_ent):
    nb = links.get(e) or [(e, n_rel - 1)]
    for k in range(K):
        adj_e[e, k], adj_r[e, k] = random.choice(nb)

# CTR rows: positives on graph items, as many negatives per user, 6:2:2.
items = sorted(set(ent_of_item.values()))
pos = {}
for line in list(open(data + "/user_artists.dat"))[1:]:
    u, a, _ = line.split("\t")
    if a in ent_of_item:
        pos.setdefault(u, set()).add(ent_of_item[a])
users = {u: i for i, u in enumerate(pos)}
rows = []
for u, ps in pos.items():
    rows += [(users[u], i, 1) for i in ps]
    cand = [i for i in items if i not in ps]
    rows += [(users[u], i, 0) for i in random.sample(cand, min(len(ps), len(cand)))]
random.shuffle(rows)
n = len(rows)
train, test = rows[: n * 6 // 10], rows[n * 8 // 10 :]
train_pos = [(u, i) for u, i, y in train if y]
seen = {}
for u, i in train_pos:
    seen.setdefault(u, set()).add(i)


class KGCN(torch.nn.Module):
    def __init__(self, n_user):
        super().__init__()
        self.U = torch.nn.Embedding(n_user, DIM)
        self.E = torch.nn.Embedding(n_ent, DIM)
        self.R = torch.nn.Embedding(n_rel, DIM)
        self.agg = torch.nn.Linear(DIM, DIM)
        for p in (self.U.weight, self.E.weight, self.R.weight, self.agg.weight):
            torch.nn.init.xavier_uniform_(p)
        torch.nn.init.zeros_(self.agg.bias)

    def forward(self, u, v):
        uu, ev = self.U(u), self.E(v)  # B x d
        ne, nr = self.E(adj_e[v]), self.R(adj_r[v])  # B x K x d
        a = torch.softmax((uu.unsqueeze(1) * nr).mean(-1), dim=1)  # B x K
        vn = (a.unsqueeze(-1) * ne).sum(1)
        h = torch.tanh(self.agg(ev + vn))
        return (uu * h).sum(-1), uu, ev


model = KGCN(len(users))
opt = torch.optim.Adam(model.parameters(), lr=LR)
t0 = time.time()
for ep in range(epochs):
    batch = []
    for u, i in train_pos:
        j = random.choice(items)
        while j in seen[u]:
            j = random.choice(items)
        batch += [(u, i, 1.0), (u, j, 0.0)]
    random.shuffle(batch)
    t = torch.tensor([[u, i] for u, i, _ in batch])
    y = torch.tensor([y for _, _, y in batch])
    for b in range(0, len(batch), BATCH):
        s, uu, ev = model(t[b : b + BATCH, 0], t[b : b + BATCH, 1])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(s, y[b : b + BATCH])
        loss = loss + L2 * (uu.pow(2).sum() / 2 + ev.pow(2).sum() / 2 + model.agg.weight.pow(2).sum() / 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
secs = (time.time() - t0) / max(epochs, 1)

with torch.no_grad():
    tt = torch.tensor([[u, i] for u, i, _ in test])
    s, _, _ = model(tt[:, 0], tt[:, 1])
    ys = [y for _, _, y in test]
    order = sorted(range(len(ys)), key=lambda k: s[k].item())
    rank_sum = sum(r + 1 for r, k in enumerate(order) if ys[k])
    npos = sum(ys)
    auc = (rank_sum - npos * (npos + 1) / 2) / (npos * (len(ys) - npos))
print(f"s_per_epoch={secs:.4f} auc={auc:.4f}")
