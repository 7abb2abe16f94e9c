"""bench/peers/softmax.py — the PyTorch peer of W1 (full-batch GD) and W2 (Adam, batch 256).
Same data as bench_softmax's workload: X standard normal float32 (seed 0), y the argmax of
X @ W_true; an idiomatic torch.nn.Linear with l2 1e-3 on the weight (not the bias).
Usage: /usr/bin/python3 bench/peers/softmax.py gd|adam N D K EPOCHS
Prints "<x> ms/epoch" (bench/run.sh reads that figure)."""
import sys
import time

import numpy as np
import torch

opt_name = sys.argv[1]
N, D, K, E = map(int, sys.argv[2:6])
rng = np.random.default_rng(0)
X = rng.standard_normal((N, D), dtype=np.float32)
y = (X @ rng.standard_normal((D, K), dtype=np.float32)).argmax(1)
lr, l2, batch = 0.5, 1e-3, 256
torch.manual_seed(0)
Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
model = torch.nn.Linear(D, K)
if opt_name == "gd":
    opt = torch.optim.SGD(model.parameters(), lr=lr)
else:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)


def step(xb, yb):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(xb), yb) + l2 / 2 * (model.weight ** 2).sum()
    loss.backward()
    opt.step()
    return loss


t = time.perf_counter()
for _ in range(E):
    if opt_name == "gd":
        loss = step(Xt, yt)
    else:
        perm = torch.randperm(N)
        for i in range(0, N, batch):
            idx = perm[i:i + batch]
            loss = step(Xt[idx], yt[idx])
dt = time.perf_counter() - t
print(f"torch {opt_name} N={N} D={D} K={K} epochs={E}: {dt:.3f} s total, "
      f"{dt / E * 1e3:.1f} ms/epoch, final loss {float(loss):.4f}")
