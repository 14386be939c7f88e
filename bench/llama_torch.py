"""llama_torch.py — the model `tailor llm train` trains, in PyTorch (the
reference of bench/llama_train.sh): the llama layout (RMSNorm, RoPE on
pairs (2i, 2i+1), grouped-query causal attention, SwiGLU, output tied to
the embedding), GPT-2's initialisation, windows of ctx + 1 tokens of the
same token stream with the last 5% held out, AdamW (0.9, 0.95, decay 0.1
on matrices only), warm-up over 5% of the steps then cosine decay to a
tenth, the gradient clipped at norm 1.

usage: llama_torch.py TOKENS.bin VOCAB EMBD LAYERS HEADS KV_HEADS FF CTX BATCH STEPS LR THREADS
prints: tokens_per_s=... loss=... val_loss=... (loss: mean of the last 10 steps)
"""
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

(path, V, D, L, H, HKV, FF, T, B, STEPS, LR, THREADS) = sys.argv[1:13]
V, D, L, H, HKV, FF, T, B, STEPS, THREADS = map(int, (V, D, L, H, HKV, FF, T, B, STEPS, THREADS))
LR = float(LR)
torch.set_num_threads(THREADS)
torch.manual_seed(42)
S = D // H

tok = torch.from_numpy(np.fromfile(path, dtype=np.int32).astype(np.int64))
windows = (len(tok) - 1) // T
n_val = max(1, int(windows * 0.05))
n_train = windows - n_val


def window(w):
    s = tok[w * T: w * T + T + 1]
    return s[:-1], s[1:]


class RMSNorm(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.w


theta = 10000.0 ** (-torch.arange(0, S, 2, dtype=torch.float32) / S)
ang = torch.arange(T, dtype=torch.float32)[:, None] * theta[None, :]
COS, SIN = torch.cos(ang), torch.sin(ang)


def rope(x):  # x [B, T, heads, S], pairs (2i, 2i+1)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = COS[None, :, None, :], SIN[None, :, None, :]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = RMSNorm(D), RMSNorm(D)
        self.q = torch.nn.Linear(D, H * S, bias=False)
        self.k = torch.nn.Linear(D, HKV * S, bias=False)
        self.v = torch.nn.Linear(D, HKV * S, bias=False)
        self.o = torch.nn.Linear(H * S, D, bias=False)
        self.gate = torch.nn.Linear(D, FF, bias=False)
        self.up = torch.nn.Linear(D, FF, bias=False)
        self.down = torch.nn.Linear(FF, D, bias=False)

    def forward(self, x, mask):
        b, t, _ = x.shape
        h = self.n1(x)
        q = rope(self.q(h).view(b, t, H, S))
        k = rope(self.k(h).view(b, t, HKV, S)).repeat_interleave(H // HKV, dim=2)
        v = self.v(h).view(b, t, HKV, S).repeat_interleave(H // HKV, dim=2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(S)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(b, t, H * S))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(V, D)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
        self.norm = RMSNorm(D)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if n.endswith(("o.weight", "down.weight")) else 0.02
                torch.nn.init.normal_(p, 0.0, std)

    def forward(self, x):
        mask = torch.triu(torch.ones(x.shape[1], x.shape[1], dtype=torch.bool), 1)
        h = self.emb(x)
        for b in self.blocks:
            h = b(h, mask)
        return self.norm(h) @ self.emb.weight.T


model = Model()
decay = [p for p in model.parameters() if p.dim() == 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=LR, betas=(0.9, 0.95), eps=1e-8)
warm = STEPS // 20
gen = np.random.default_rng(42)
order = []
losses = []
t0 = time.time()
for step in range(STEPS):
    if len(order) < B:
        order += list(gen.permutation(n_train))
    idx, order = order[:B], order[B:]
    xs, ys = zip(*(window(w) for w in idx))
    x, y = torch.stack(xs), torch.stack(ys)
    lr = LR * (step + 1) / warm if step < warm else \
        LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, STEPS - warm))))
    for g in opt.param_groups:
        g["lr"] = lr
    loss = F.cross_entropy(model(x).view(-1, V), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    losses.append(loss.item())
elapsed = time.time() - t0
with torch.no_grad():
    vw = range(n_train, n_train + min(n_val, 64))
    xs, ys = zip(*(window(w) for w in vw))
    val = F.cross_entropy(model(torch.stack(xs)).view(-1, V), torch.stack(ys).reshape(-1)).item()
print(f"tokens_per_s={STEPS * B * T / elapsed:.1f} loss={np.mean(losses[-10:]):.4f} val_loss={val:.4f} "
      f"first_loss={losses[0]:.4f} s={elapsed:.1f}")
