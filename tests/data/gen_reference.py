#!/usr/bin/python3
"""gen_reference.py — the reference vectors the Check suites compare traind against.

Each file holds inputs drawn from one seeded numpy generator and the outputs PyTorch, numpy
or scikit-learn compute from them in float64 (the suites compare their float32 results with
a relative tolerance of about 1e-5 for one loss evaluation, 1e-4 for a trajectory). The
suites read every input from the file, so a set made with another seed is just as valid.
Beside the files, VERSIONS records the seed and the library versions that made them.

Usage: /usr/bin/python3 tests/data/gen_reference.py [SEED [OUTDIR]]
       (defaults: 1, tests/data/reference — what `make reference` runs; the set in the
       repository is seed 1). Needs Debian's python3-torch and python3-sklearn.

The draws happen in a fixed order (file 1's inputs, then file 2's, ...): adding a file goes
at the end, or every later file's inputs change.
"""
import json
import os
import platform
import subprocess
import sys
import warnings

import numpy as np
import scipy
import sklearn
import torch
from sklearn.mixture import GaussianMixture

F = torch.nn.functional
torch.set_default_dtype(torch.float64)


def L(a):
    """numpy / torch array -> nested lists of Python numbers (JSON)."""
    if isinstance(a, torch.Tensor):
        a = a.detach().numpy()
    return np.asarray(a).tolist()


# ---- losses (SPEC §2) ----------------------------------------------------------------------

def cross_entropy_index(rng, N=7, K=4):
    """F.cross_entropy on logits (N, K) with class-index targets, two of them ignored (-1),
    for reduction x class weights x label smoothing; returns the file and the shared inputs."""
    logits = rng.standard_normal((N, K)) * 2
    target = rng.integers(0, K, N)
    target[[1, 4]] = -1
    weights = rng.uniform(0.5, 2.0, K)
    cases = []
    for reduction in ["mean", "sum"]:
        for cw in [None, weights]:
            for smoothing in [0.0, 0.1]:
                z = torch.tensor(logits, requires_grad=True)
                loss = F.cross_entropy(z, torch.tensor(target),
                                       weight=None if cw is None else torch.tensor(cw),
                                       ignore_index=-1, reduction=reduction,
                                       label_smoothing=smoothing)
                loss.backward()
                cases.append({"reduction": reduction,
                              "class_weights": None if cw is None else L(cw),
                              "label_smoothing": smoothing,
                              "loss": loss.item(), "grad": L(z.grad)})
    doc = {"about": "torch.nn.functional.cross_entropy on logits with class-index targets, "
                    "ignore_index=-1; grad is dloss/dlogits",
           "logits": L(logits), "target": L(target), "ignore_index": -1, "cases": cases}
    return doc, logits, weights


def cross_entropy_probs(rng, logits, weights):
    """The same logits against probability targets (Dirichlet rows)."""
    N, K = logits.shape
    Y = rng.dirichlet(np.ones(K), N)
    cases = []
    for reduction in ["mean", "sum"]:
        for cw in [None, weights]:
            z = torch.tensor(logits, requires_grad=True)
            loss = F.cross_entropy(z, torch.tensor(Y),
                                   weight=None if cw is None else torch.tensor(cw),
                                   reduction=reduction)
            loss.backward()
            cases.append({"reduction": reduction,
                          "class_weights": None if cw is None else L(cw),
                          "loss": loss.item(), "grad": L(z.grad)})
    return {"about": "torch cross_entropy with probability targets (rows sum to 1); mean divides "
                     "by N even with class weights",
            "logits": L(logits), "target": L(Y), "cases": cases}


def categorical_crossentropy_probs(rng, N=7, K=4, eps=1e-7):
    """Keras categorical_crossentropy(from_logits=False), in numpy: one zero probability and
    one row that sums to 3 exercise the clip and the normalisation."""
    P = rng.uniform(0.0, 1.0, (N, K))
    P[0, 0] = 0.0
    P[2] = P[2] / P[2].sum() * 3
    onehot = np.eye(K)[rng.integers(0, K, N)]
    Pn = np.clip(P / P.sum(1, keepdims=True), eps, 1 - eps)
    per = -(onehot * np.log(Pn)).sum(1)
    return {"about": "Keras categorical_crossentropy(from_logits=False): p/=sum(p); "
                     "clip(p,1e-7,1-1e-7); -sum(y*log p); per-sample and mean",
            "probabilities": L(P), "target": L(onehot), "epsilon": eps,
            "per_sample": L(per), "mean": float(per.mean())}


# ---- optimizers and the softmax model (SPEC §3–4) ------------------------------------------

OPTIMIZER_CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.1, momentum=0.9)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.5)),
    ("sgd", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("adam", dict(lr=0.01)),
    ("adam", dict(lr=0.01, weight_decay=0.1)),
    ("adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("adamw", dict(lr=0.01)),
    ("adamw", dict(lr=0.01, weight_decay=0.1)),
]


def optimizers(rng, D=3, K=4, N=12, steps=5):
    """`steps` full-batch torch.optim steps on logits = X @ W + b, mean cross entropy."""
    X = rng.standard_normal((N, D))
    y = rng.integers(0, K, N)
    W0 = rng.standard_normal((D, K)) * 0.1
    b0 = np.zeros(K)
    optim = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    cases = []
    for name, params in OPTIMIZER_CASES:
        W = torch.tensor(W0, requires_grad=True)
        b = torch.tensor(b0, requires_grad=True)
        opt = optim[name]([W, b], **params)
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            loss = F.cross_entropy(torch.tensor(X) @ W + b, torch.tensor(y))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        cases.append({"optimizer": name,
                      "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
                      "losses": losses, "W": L(W), "b": L(b)})
    return {"about": "5 full-batch steps of torch.optim on logits = X@W + b, mean cross entropy; "
                     "weight_decay applies to W and b alike (torch semantics). losses[i] is the "
                     "loss before step i; W,b after step 5",
            "X": L(X), "y": L(y), "W0": L(W0), "b0": L(b0), "cases": cases}


def softmax_gd_intercept_column0(rng, D=3, K=4, N=40, lr=0.5, l2=0.1, epochs=30):
    """Softmax regression by full-batch GD in numpy, the intercept as X's first column of
    ones: W is (1+D, K) and its row 0 (the bias) is left out of the L2 penalty."""
    Xr = rng.standard_normal((N, D))
    y = rng.integers(0, K, N)
    X = np.hstack([np.ones((N, 1)), Xr])
    Y = np.eye(K)[y]
    W = np.zeros((D + 1, K))
    history = []
    for _ in range(epochs):
        s = X @ W
        s -= s.max(1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(1, keepdims=True)
        history.append([-np.log(p[np.arange(N), y]).mean(), l2 / 2 * (W[1:] ** 2).sum()])
        grad = -X.T @ (Y - p) / N
        reg = np.vstack([np.zeros((1, K)), W[1:]])
        W = W - lr * (grad + l2 * reg)
    return {"about": "full-batch GD, lr=0.5, l2=0.1 (reg loss = l2/2*sum W[1:]^2, gradient l2*W "
                     "with row 0 zeroed), 30 epochs from W=0; X here already holds the ones "
                     "column; history[i] = [data_loss, reg_loss] before update i; W after the "
                     "last update",
            "X": L(X), "y": L(y), "lr": lr, "l2": l2, "epochs": epochs,
            "history": L(history), "W": L(W)}


# ---- gmm (SPEC §5) -------------------------------------------------------------------------

def gmm_em_full(rng, M=3, E=2, N=300, iterations=8):
    """scikit-learn's EM, full covariances, from given means, weights 1/M, identity
    covariances, with no early stop (tol=0)."""
    centres = rng.standard_normal((M, E)) * 4
    X = centres[rng.integers(0, M, N)] + rng.standard_normal((N, E)) * rng.uniform(0.5, 1.5)
    means_init = centres + rng.standard_normal((M, E)) * 0.5
    gm = GaussianMixture(M, covariance_type="full", max_iter=iterations, tol=0, reg_covar=1e-6,
                         weights_init=np.full(M, 1.0 / M), means_init=means_init,
                         precisions_init=np.array([np.eye(E)] * M), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 never converges
        gm.fit(X)
    return {"about": "sklearn GaussianMixture(covariance_type='full', max_iter=8, tol=0, "
                     "reg_covar=1e-6) started from weights 1/M, means means_init, covariances "
                     "identity; 8 EM iterations (E-step then M-step); lower_bound is the mean "
                     "log-likelihood computed in the last E-step (before the last M-step); "
                     "mean_log_likelihood_after is under the final parameters",
            "X": L(X), "means_init": L(means_init), "iterations": iterations,
            "weights": L(gm.weights_), "means": L(gm.means_), "covariances": L(gm.covariances_),
            "lower_bound": float(gm.lower_bound_), "mean_log_likelihood_after": float(gm.score(X))}


def f32(a):
    """Rounded to float32 (what traind stores), back in float64: both sides see the same data."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def fit_quiet(gm, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 never converges
        return gm.fit(X)


def gmm_near_singular_full(rng, cases=40, N=30, D=10, M=5, iterations=20):
    """Full covariance on data where every component has N_k <= D rows, and on odd cases a
    collinear feature (x_9 = x_0 - 2 x_1): the scatters are singular and only reg_covar
    fills their null directions. From given weights, means (M rows of X) and identity
    covariances (precisions_init = inv(covariances)), 20 iterations, tol 0."""
    weights = np.array([0.25, 0.125, 0.25, 0.25, 0.125])  # exact in float32, sums to 1
    out = []
    for case in range(cases):
        centres = rng.standard_normal((M, D)) * 4
        X = centres[rng.integers(0, M, N)] + rng.standard_normal((N, D))
        if case % 2:
            X[:, D - 1] = X[:, 0] - 2 * X[:, 1]
        X = f32(X)
        means_init = X[rng.choice(N, M, replace=False)]
        gm = fit_quiet(GaussianMixture(M, covariance_type="full", max_iter=iterations, tol=0,
                                       reg_covar=1e-6, weights_init=weights,
                                       means_init=means_init,
                                       precisions_init=np.array([np.eye(D)] * M),
                                       random_state=0), X)
        out.append({"X": L(X), "means_init": L(means_init), "weights": L(gm.weights_),
                    "means": L(gm.means_), "covariances": L(gm.covariances_),
                    "lower_bound": float(gm.lower_bound_)})
    return {"about": "sklearn GaussianMixture(covariance_type='full', max_iter=20, tol=0, "
                     "reg_covar=1e-6) on N=30 rows of D=10 features around M=5 centres "
                     "(odd cases: feature 9 = feature 0 - 2 feature 1), from weights_init, "
                     "means_init and identity covariances (precisions_init = inv(covariances)"
                     "); X and means_init are float32 values",
            "iterations": iterations, "reg_covar": 1e-6, "weights_init": L(weights),
            "cases": out}


def gmm_tied(rng, cases=3, N=200, E=3, M=3, iterations=10):
    """Tied covariance from given weights and means and an identity covariance."""
    out = []
    for case in range(cases):
        centres = rng.standard_normal((M, E)) * 3
        A = rng.standard_normal((E, E)) * 0.6 + np.eye(E)  # one shared, correlated shape
        X = f32(centres[rng.integers(0, M, N)] + rng.standard_normal((N, E)) @ A)
        means_init = f32(centres + rng.standard_normal((M, E)) * 0.5)
        weights = np.array([0.25, 0.25, 0.5])
        gm = fit_quiet(GaussianMixture(M, covariance_type="tied", max_iter=iterations, tol=0,
                                       reg_covar=1e-6, weights_init=weights,
                                       means_init=means_init, precisions_init=np.eye(E),
                                       random_state=0), X)
        out.append({"X": L(X), "means_init": L(means_init), "weights_init": L(weights),
                    "weights": L(gm.weights_), "means": L(gm.means_),
                    "covariance": L(gm.covariances_), "lower_bound": float(gm.lower_bound_),
                    "mean_log_likelihood_after": float(gm.score(X))})
    return {"about": "sklearn GaussianMixture(covariance_type='tied', max_iter=10, tol=0, "
                     "reg_covar=1e-6) from weights_init, means_init and an identity covariance; "
                     "covariance is the shared (E, E) matrix",
            "iterations": iterations, "cases": out}


def gmm_n_init(rng, N=300, E=2, M=4, runs=20):
    """Blobs where one k-means-initialised EM run sometimes stops in a local optimum: data
    sets are drawn until 10-50% of 20 single runs (random_state 0..19) end more than 1e-3
    below the n_init=20 fit's lower bound and the best single run reaches it."""
    kw = dict(covariance_type="full", max_iter=200, tol=1e-6, reg_covar=1e-6)
    for _ in range(100):
        centres = rng.standard_normal((M, E)) * 3
        X = f32(centres[rng.integers(0, M, N)] + rng.standard_normal((N, E)) *
                rng.uniform(0.3, 1.2, (N, 1)))
        single = [float(fit_quiet(GaussianMixture(M, random_state=rs, **kw), X).lower_bound_)
                  for rs in range(runs)]
        best = fit_quiet(GaussianMixture(M, n_init=runs, random_state=0, **kw), X)
        local = np.mean(np.array(single) < best.lower_bound_ - 1e-3)
        if 0.1 <= local <= 0.5 and max(single) > best.lower_bound_ - 1e-5:
            break
    return {"about": "sklearn GaussianMixture(M=4, covariance_type='full', max_iter=200, "
                     "tol=1e-6) with init_params='kmeans': single_lower_bounds are n_init=1 "
                     "fits with random_state 0..19 (10-50% stop in a local optimum), "
                     "lower_bound is the n_init=20 fit's (the best)",
            "X": L(X), "components": M, "max_iter": 200, "tol": 1e-6,
            "single_lower_bounds": single, "lower_bound": float(best.lower_bound_)}


# ---- embed_gmm's pair loss and the grouped head (SPEC §2) ---------------------------------

def contrastive(rng, margin=1.5):
    """Hadsell et al. 2006, mean over 6 pairs of 3-vectors at spreads from 0.2 to 2."""
    A = rng.standard_normal((6, 3))
    B = A + rng.standard_normal((6, 3)) * rng.uniform(0.2, 2, (6, 1))
    s = np.array([1, 0, 1, 0, 0, 1])
    a = torch.tensor(A, requires_grad=True)
    b = torch.tensor(B, requires_grad=True)
    st = torch.tensor(s)
    d = (a - b).norm(dim=1)
    loss = (st * 0.5 * d ** 2 + (1 - st) * 0.5 * torch.clamp(margin - d, min=0) ** 2).mean()
    loss.backward()
    return {"about": "mean over pairs of s*d^2/2 + (1-s)*max(0,margin-d)^2/2, d=||a-b||, "
                     "s=1 similar",
            "a": L(A), "b": L(B), "similar": L(s), "margin": margin,
            "loss": loss.item(), "grad_a": L(a.grad), "grad_b": L(b.grad)}


def grouped_softmax_monotone(rng, N=5, G=3, S=5, weight=0.3, margin=0.0):
    """Logits (N, G*S) as G softmax groups of S; cross entropy over the non-ignored (n, g)
    plus weight * the squared hinge on consecutive groups' expected indices."""
    Z = rng.standard_normal((N, G * S)) * 2
    y = rng.integers(0, S, (N, G))
    y[1, 2] = -1
    y[3, 0] = -1
    z = torch.tensor(Z, requires_grad=True)
    zg = z.view(N, G, S)
    ce = F.cross_entropy(zg.permute(0, 2, 1), torch.tensor(y), ignore_index=-1)
    expected = (torch.softmax(zg, 2) * torch.arange(S, dtype=torch.float64)).sum(2)
    penalty = (torch.clamp(expected[:, :-1] - expected[:, 1:] + margin, min=0) ** 2).sum(1).mean()
    loss = ce + weight * penalty
    loss.backward()
    return {"about": "logits (N, G*S) split into G groups of S; ce = mean over non-ignored (n,g) "
                     "of group cross entropy (ignore_index=-1); E_g = sum_k k*softmax(z_g)_k; "
                     "penalty = mean_n sum_g max(0, E_g - E_{g+1} + margin)^2; loss = ce + "
                     "weight*penalty; grad = dloss/dlogits",
            "logits": L(Z), "target": L(y), "groups": G, "ignore_index": -1,
            "weight": weight, "margin": margin, "cross_entropy": ce.item(),
            "penalty": penalty.item(), "loss": loss.item(), "expected_index": L(expected),
            "grad": L(z.grad)}


# ---- main ----------------------------------------------------------------------------------

# ---- POST /v1/jobs/{id}/evaluate (issue 16) -------------------------------------------------

def evaluate_metrics(rng, N=40, D=3, K=4, Ng=200, M=3, E=2):
    """The numbers of scikit-learn's classification metrics for the predictions of a fixed
    softmax model (W, b: traind holds them exactly with lr 0), over every class 0..K-1
    (labels=range(K)) with zero_division=0: class 2 never occurs in y (recall 0/0) and
    class 3 is never predicted (precision 0/0). And GaussianMixture's score, bic and aic
    after one EM iteration from given weights, means and identity covariances (full and
    diag)."""
    from sklearn.metrics import (accuracy_score, confusion_matrix, log_loss,
                                 precision_recall_fscore_support)
    X = rng.standard_normal((N, D))
    W = rng.standard_normal((D, K)) * 1.5
    b = np.array([0.3, -0.2, 0.1, -8.0])
    logits = X @ W + b
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    pred = probs.argmax(1)
    y = rng.choice([0, 1, 3], N)
    labels = list(range(K))
    p, r, f, sup = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    avg = {a: precision_recall_fscore_support(y, pred, labels=labels, zero_division=0,
                                              average=a)[:3] for a in ("macro", "weighted")}
    cls = {"X": L(X), "y": L(y), "W": L(W), "b": L(b), "K": K, "predicted": L(pred),
           "accuracy": float(accuracy_score(y, pred)),
           "confusion_matrix": L(confusion_matrix(y, pred, labels=labels)),
           "precision": L(p), "recall": L(r), "f1": L(f), "support": L(sup),
           "macro_avg": [float(v) for v in avg["macro"]],
           "weighted_avg": [float(v) for v in avg["weighted"]],
           "log_loss": float(log_loss(y, probs, labels=labels))}
    centres = rng.standard_normal((M, E)) * 4
    Xg = centres[rng.integers(0, M, Ng)] + rng.standard_normal((Ng, E))
    means_init = centres + rng.standard_normal((M, E)) * 0.5
    gmm = {"X": L(Xg), "means_init": L(means_init), "components": M}
    for cov in ("full", "diag"):
        prec = np.array([np.eye(E)] * M) if cov == "full" else np.ones((M, E))
        gm = GaussianMixture(M, covariance_type=cov, max_iter=1, tol=0, reg_covar=1e-6,
                             weights_init=np.full(M, 1.0 / M), means_init=means_init,
                             precisions_init=prec, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning after one iteration
            gm.fit(Xg)
        gmm[cov] = {"score": float(gm.score(Xg)), "bic": float(gm.bic(Xg)),
                    "aic": float(gm.aic(Xg)), "n_parameters": int(gm._n_parameters())}
    return {"about": "classifier: sklearn accuracy_score, confusion_matrix, "
                     "precision_recall_fscore_support and log_loss with labels=range(K), "
                     "zero_division=0, of probs = softmax(X W + b); gmm: GaussianMixture("
                     "max_iter=1, tol=0, reg_covar=1e-6, weights 1/M, means means_init, "
                     "identity covariances).fit(X) then score, bic, aic on X",
            "classifier": cls, "gmm": gmm}


def debian_version(pkg):
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a Debian package"


def main():
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "reference")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = {}
    files["cross_entropy_index"], logits, weights = cross_entropy_index(rng)
    files["cross_entropy_probs"] = cross_entropy_probs(rng, logits, weights)
    files["categorical_crossentropy_probs"] = categorical_crossentropy_probs(rng)
    files["optimizers"] = optimizers(rng)
    files["softmax_gd_intercept_column0"] = softmax_gd_intercept_column0(rng)
    files["gmm_em_full"] = gmm_em_full(rng)
    files["contrastive"] = contrastive(rng)
    files["grouped_softmax_monotone"] = grouped_softmax_monotone(rng)
    files["gmm_near_singular_full"] = gmm_near_singular_full(rng)
    files["gmm_tied"] = gmm_tied(rng)
    files["gmm_n_init"] = gmm_n_init(rng)
    files["evaluate_metrics"] = evaluate_metrics(rng)
    for name, doc in files.items():
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(doc, f, indent=None if name == "gmm_near_singular_full" else 1)  # 40 cases
            f.write("\n")
    with open(os.path.join(out, "VERSIONS"), "w") as f:
        f.write("# made by tests/data/gen_reference.py %d; float64 throughout\n" % seed)
        f.write("seed          %d\n" % seed)
        f.write("python        %s\n" % platform.python_version())
        f.write("numpy         %s\n" % np.__version__)
        f.write("scipy         %s\n" % scipy.__version__)
        f.write("torch         %s (Debian python3-torch %s)\n"
                % (torch.__version__, debian_version("python3-torch")))
        f.write("scikit-learn  %s (Debian python3-sklearn %s)\n"
                % (sklearn.__version__, debian_version("python3-sklearn")))
    print("gen_reference: seed %d, %d files in %s" % (seed, len(files), out))


if __name__ == "__main__":
    main()
