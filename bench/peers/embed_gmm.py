"""bench/peers/embed_gmm.py — the PyTorch peer of W4: a network D-H-E (ReLU) trained on the
contrastive pair loss jointly with a full-covariance GMM in embedding space, written the
natural torch way: each iteration embeds every row, takes one EM step with the network
fixed (out of the graph), then one combined backward of contrastive + 0.1 * gmm_nll with
the GMM fixed; Adam lr 1e-3, weight_decay 1e-4, 2 threads. Data: M centres (x3) in D
dimensions, labels uniform, unit noise (seed 0); the GMM starts from M random rows.
Usage: /usr/bin/python3 bench/peers/embed_gmm.py N D H E M PAIRS ITERS
Prints the mean "<x> ms/iter" and "first k: <a> ms, last k: <b> ms" (k = ITERS/10), from
which bench/run.sh takes the flatness ratio b/a."""
import math
import sys
import time

import numpy as np
import torch

N, D, H, E, M, P, iters = map(int, sys.argv[1:8])
torch.manual_seed(0)
torch.set_num_threads(2)
rng = np.random.default_rng(0)
centres = rng.standard_normal((M, D)) * 3
labels = rng.integers(0, M, N)
X = torch.tensor(centres[labels] + rng.standard_normal((N, D)), dtype=torch.float32)
labels = torch.tensor(labels)
net = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(), torch.nn.Linear(H, E))
opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)


def log_joint(z, pi, mu, cov):
    """log pi_m + log N(z_n; mu_m, cov_m): (N, M), through the Cholesky factors."""
    chol = torch.linalg.cholesky(cov)                                   # (M, E, E)
    diff = z[:, None, :] - mu[None]                                     # (N, M, E)
    sol = torch.linalg.solve_triangular(chol[None].expand(z.shape[0], -1, -1, -1),
                                        diff[..., None], upper=False)[..., 0]
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (E * math.log(2 * math.pi) + logdet + (sol ** 2).sum(-1)) + torch.log(pi)


def m_step(z, lp):
    r = torch.softmax(lp, 1)
    nk = r.sum(0) + 1e-10
    mu = r.T @ z / nk[:, None]
    d = z[:, None, :] - mu[None]
    cov = torch.einsum("nm,nmi,nmj->mij", r, d, d) / nk[:, None, None] + 1e-6 * torch.eye(E)
    return nk / nk.sum(), mu, cov


with torch.no_grad():
    z = net(X)
    pi = torch.full((M,), 1.0 / M)
    mu = z[torch.randperm(N)[:M]].clone()
    cov = torch.eye(E).repeat(M, 1, 1)
times = []
for _ in range(iters):
    t = time.perf_counter()
    opt.zero_grad()
    a, b = torch.randint(0, N, (P,)), torch.randint(0, N, (P,))
    same = (labels[a] == labels[b]).float()
    dist = (net(X[a]) - net(X[b])).norm(dim=1)
    pair_loss = (same * dist ** 2 + (1 - same) * torch.clamp(1.0 - dist, min=0) ** 2).mean() / 2
    z = net(X)
    with torch.no_grad():
        pi, mu, cov = m_step(z.detach(), log_joint(z.detach(), pi, mu, cov))
    gmm_loss = -torch.logsumexp(log_joint(z, pi, mu, cov), 1).mean()
    (pair_loss + 0.1 * gmm_loss).backward()
    opt.step()
    times.append(time.perf_counter() - t)
k = max(1, iters // 10)
print(f"torch embed_gmm N={N} D={D} H={H} E={E} M={M} pairs={P} iters={iters}: "
      f"{sum(times) / iters * 1e3:.1f} ms/iter, first {k}: {sum(times[:k]) / k * 1e3:.1f} ms, "
      f"last {k}: {sum(times[-k:]) / k * 1e3:.1f} ms, "
      f"loss {float(pair_loss):.4f} + {float(gmm_loss):.4f}")
