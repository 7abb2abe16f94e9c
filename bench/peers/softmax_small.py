"""bench/peers/softmax_small.py — the PyTorch peer of W8: the 10-line eager loop of BENCH.md
(zero-initialised W, b; SGD lr 0.1; cross_entropy(X @ W + b, y); loss.item() each epoch;
one thread) on the same 150 x 4, K=3 data as bench/small.py, 10000 epochs.
Usage: /usr/bin/python3 bench/peers/softmax_small.py [REPEAT]
Prints "<x> ms/job" per run and the median last (bench/run.sh reads that figure)."""
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from small import D, K, dataset  # noqa: E402  (the same data as traind's side)

torch.set_num_threads(1)
X, y = dataset()
figs = []
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    W = torch.zeros(D, K, requires_grad=True)
    b = torch.zeros(K, requires_grad=True)
    opt = torch.optim.SGD([W, b], lr=0.1)
    t = time.perf_counter()
    for _ in range(10000):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(Xt @ W + b, yt)
        loss.backward()
        opt.step()
        loss.item()
    figs.append(1e3 * (time.perf_counter() - t))
    print("W8 peer %.1f ms/job (loss %.5f)" % (figs[-1], loss.item()))
print("median %.1f ms/job" % statistics.median(figs))
