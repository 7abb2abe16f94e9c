"""bench/peers/mlp.py — the PyTorch peer of W7: an MLP classifier D-H1-H2-K with ReLU,
Adam lr 1e-3, shuffled mini-batches, 2 threads; X standard normal (seed 0), y the argmax
of a random linear map.
Usage: /usr/bin/python3 bench/peers/mlp.py N D H1 H2 K BATCH EPOCHS
Prints "<x> ms/epoch"."""
import sys
import time

import numpy as np
import torch

N, D, H1, H2, K, batch, E = map(int, sys.argv[1:8])
torch.manual_seed(0)
torch.set_num_threads(2)
rng = np.random.default_rng(0)
X = torch.tensor(rng.standard_normal((N, D)), dtype=torch.float32)
y = (X @ torch.tensor(rng.standard_normal((D, K)), dtype=torch.float32)).argmax(1)
net = torch.nn.Sequential(torch.nn.Linear(D, H1), torch.nn.ReLU(),
                          torch.nn.Linear(H1, H2), torch.nn.ReLU(),
                          torch.nn.Linear(H2, K))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
t = time.perf_counter()
for _ in range(E):
    perm = torch.randperm(N)
    for i in range(0, N, batch):
        idx = perm[i:i + batch]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(X[idx]), y[idx])
        loss.backward()
        opt.step()
dt = time.perf_counter() - t
print(f"torch mlp N={N} D={D} H={H1},{H2} K={K} batch={batch} epochs={E}: "
      f"{dt / E * 1e3:.0f} ms/epoch, final loss {float(loss):.4f}")
