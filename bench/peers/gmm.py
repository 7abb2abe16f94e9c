"""bench/peers/gmm.py — the scikit-learn peer of W3: GaussianMixture, full covariance, a
fixed number of EM iterations (tol=0), on M well-separated centres (x5) plus unit noise.
Usage: /usr/bin/python3 bench/peers/gmm.py N E M ITERS
Prints "<x> ms/iter": the whole fit (its k-means init included) / iterations."""
import sys
import time

import numpy as np
from sklearn.mixture import GaussianMixture

N, E, M, iters = map(int, sys.argv[1:5])
rng = np.random.default_rng(0)
centres = rng.standard_normal((M, E)) * 5
X = centres[rng.integers(0, M, N)] + rng.standard_normal((N, E))
gm = GaussianMixture(M, covariance_type="full", max_iter=iters, tol=0,
                     means_init=centres + 0.5, random_state=0)
t = time.perf_counter()
gm.fit(X)
dt = time.perf_counter() - t
print(f"sklearn gmm N={N} E={E} M={M} iters={gm.n_iter_}: {dt:.3f} s, "
      f"{dt / gm.n_iter_ * 1e3:.1f} ms/iter, lower_bound {gm.lower_bound_:.4f}")
