"""Writes the `cka/` reference fixtures: linear / RBF / debiased CKA (Kornblith et al. 2019)
on the vectors of that paper's demo notebook, and minibatch linear CKA with the unbiased
HSIC estimator (Song et al. 2012; Nguyen, Raghu & Kornblith 2021) on seeded batches.

Usage: python make_cka_fixtures.py OUT_DIR [--seed 4401] [--batches 5] [--n 32]
           [--dx 64] [--dy 40] [--thresholds 0.5,1.0] [--debiased-thresholds 0.5]

Writes OUT_DIR/cka/cka.safetensors (`demo_X`, `demo_Y` F64 [100, 10]; `minibatch_X` F32
[k, n, dx], `minibatch_Y` F32 [k, n, dy]) and OUT_DIR/cka/cka.json (the values, the
generation recipes, the formulas, versions). All values are computed here in float64
with our own numpy code written from the formulas in the JSON (`formulas`).

* demo: `np.random.seed(1337); X = np.random.randn(100, 10); Y = np.random.randn(100, 10)
  + 1.0 * X` (the Kornblith et al. demo vectors; not an option).
* minibatch: `rng = np.random.default_rng(seed)`; W = N(0,1)[dx,dy] / sqrt(dx);
  X = N(0,1)[k,n,dx]; Y = tanh(X @ W) + 0.5 * N(0,1)[k,n,dy] (drawn in that order), stored
  as float32; values from the stored float32 values, in float64.

The defaults are the reference set (testdata/ and the shared `dev` set). Deterministic;
needs numpy and safetensors (torch only to record its version and thread count).
"""
import argparse
import os

import numpy as np
from safetensors.numpy import load_file, save_file

from fixture_common import versions, write_json

FORMULAS = {
    "gram_linear": "K = X X^T",
    "gram_rbf": "D2_ij = |x_i - x_j|^2; K = exp(-D2 / (2 * threshold^2 * median(D2))) (median over all n*n entries incl. the zero diagonal)",
    "center_gram(biased)": "H K H with H = I - 11^T/n",
    "center_gram(unbiased)": "Kornblith et al. 2019 debiased centering (diag zeroed, column means /(n-2), minus sum/(2(n-1)), diag zeroed again)",
    "cka": "<Kc, Lc>_F / (||Kc||_F ||Lc||_F)",
    "hsic1": "Song et al. 2012: [tr(K~L~) + 1'K~1 1'L~1/((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)), K~,L~ = K,L with zeroed diagonal",
    "minibatch_cka": "mean_i HSIC1(K_i,L_i) / sqrt(mean_i HSIC1(K_i,K_i) * mean_i HSIC1(L_i,L_i)), linear kernel per batch (Nguyen, Raghu & Kornblith 2021)",
}
MINIBATCH_RECIPE = "rng=np.random.default_rng(seed); W=N(0,1)[dx,dy]/sqrt(dx); X=N(0,1)[k,n,dx]; Y=tanh(X@W)+0.5*N(0,1)[k,n,dy]; cast to float32"
DEMO_RECIPE = "np.random.seed(1337); X = np.random.randn(100, 10); Y = np.random.randn(100, 10) + 1.0 * X"


# ---- CKA, float64 -------------------------------------------------------------------

def gram_linear(x):
    return x @ x.T


def gram_rbf(x, threshold):
    g = x @ x.T
    sq = np.diag(g)
    d2 = sq[:, None] + sq[None, :] - 2.0 * g
    return np.exp(-d2 / (2.0 * threshold**2 * np.median(d2)))


def center_gram(k, unbiased):
    k = np.array(k, dtype=np.float64, copy=True)
    n = k.shape[0]
    if unbiased:
        np.fill_diagonal(k, 0.0)
        col = k.sum(axis=0) / (n - 2)
        col -= col.sum() / (2 * (n - 1))
        k -= col[:, None]
        k -= col[None, :]
        np.fill_diagonal(k, 0.0)
    else:
        col = k.mean(axis=0)
        col -= col.mean() / 2
        k -= col[:, None]
        k -= col[None, :]
    return k


def cka(k, l, debiased=False):
    kc, lc = center_gram(k, debiased), center_gram(l, debiased)
    return kc.ravel() @ lc.ravel() / (np.linalg.norm(kc) * np.linalg.norm(lc))


def linear_cka_features(x, y, debiased=False):
    """Linear CKA from the feature matrices (no n x n Gram)."""
    x = x - x.mean(axis=0, keepdims=True)
    y = y - y.mean(axis=0, keepdims=True)
    xy = np.linalg.norm(x.T @ y) ** 2
    xx = np.linalg.norm(x.T @ x)
    yy = np.linalg.norm(y.T @ y)
    if not debiased:
        return xy / (xx * yy)
    n = x.shape[0]
    rx, ry = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    nx, ny = rx.sum(), ry.sum()

    def unbias(dot, ra, rb, na, nb):
        return dot - n / (n - 2.0) * (ra @ rb) + na * nb / ((n - 1) * (n - 2))

    return unbias(xy, rx, ry, nx, ny) / (np.sqrt(unbias(xx**2, rx, rx, nx, nx)) * np.sqrt(unbias(yy**2, ry, ry, ny, ny)))


def hsic1(k, l):
    """Unbiased HSIC estimator (Song et al. 2012)."""
    n = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    ones = np.ones(n)
    trace = np.trace(kt @ lt)
    middle = (ones @ kt @ ones) * (ones @ lt @ ones) / ((n - 1) * (n - 2))
    last = 2.0 / (n - 2) * (ones @ kt @ lt @ ones)
    return (trace + middle - last) / (n * (n - 3))


# ---- fixture ------------------------------------------------------------------------

def demo_values(x, y, thresholds, debiased_thresholds):
    v = {
        "linear_cka_feature_form": linear_cka_features(x, y),
        "linear_cka_gram_form": cka(gram_linear(x), gram_linear(y)),
        "debiased_linear_cka_feature_form": linear_cka_features(x, y, debiased=True),
        "debiased_linear_cka_gram_form": cka(gram_linear(x), gram_linear(y), debiased=True),
    }
    for t in thresholds:
        v[f"rbf_cka_threshold_{t}"] = cka(gram_rbf(x, t), gram_rbf(y, t))
    for t in debiased_thresholds:
        v[f"debiased_rbf_cka_threshold_{t}"] = cka(gram_rbf(x, t), gram_rbf(y, t), debiased=True)
    return {k: float(val) for k, val in v.items()}


def minibatch_values(xs, ys):
    xs, ys = xs.astype(np.float64), ys.astype(np.float64)
    xy, xx, yy, sanity = [], [], [], 0.0
    for xb, yb in zip(xs, ys):
        k, l = gram_linear(xb), gram_linear(yb)
        xy.append(float(hsic1(k, l)))
        xx.append(float(hsic1(k, k)))
        yy.append(float(hsic1(l, l)))
        n = k.shape[0]
        product = np.sum(center_gram(k, True) * center_gram(l, True)) / (n * (n - 3))
        sanity = max(sanity, float(abs(product - xy[-1])))
    value = np.mean(xy) / np.sqrt(np.mean(xx) * np.mean(yy))
    xa, ya = xs.reshape(-1, xs.shape[-1]), ys.reshape(-1, ys.shape[-1])
    return {
        "minibatch_linear_cka": float(value),
        "hsic1_xy_per_batch": xy,
        "hsic1_xx_per_batch": xx,
        "hsic1_yy_per_batch": yy,
        "max_abs_diff_hsic1_vs_unbiased_center_gram_over_n_n_minus_3": sanity,
        "full_data_debiased_linear_cka_for_comparison": float(linear_cka_features(xa, ya, debiased=True)),
        "full_data_linear_cka_for_comparison": float(linear_cka_features(xa, ya)),
    }


def floats(text):
    return [float(v) for v in text.split(",") if v]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--seed", type=int, default=4401, help="minibatch generator seed")
    p.add_argument("--batches", type=int, default=5, help="k, number of minibatches")
    p.add_argument("--n", type=int, default=32, help="examples per minibatch (>= 4)")
    p.add_argument("--dx", type=int, default=64)
    p.add_argument("--dy", type=int, default=40)
    p.add_argument("--thresholds", default="0.5,1.0", help="RBF thresholds (biased CKA)")
    p.add_argument("--debiased-thresholds", default="0.5", help="RBF thresholds (debiased CKA)")
    a = p.parse_args()
    if a.n < 4:
        raise SystemExit("--n must be at least 4 (HSIC1 divides by n(n-3))")
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass

    np.random.seed(1337)
    demo_x = np.random.randn(100, 10)
    demo_y = np.random.randn(100, 10) + 1.0 * demo_x
    rng = np.random.default_rng(a.seed)
    w = rng.standard_normal((a.dx, a.dy)) / np.sqrt(a.dx)
    mb_x = rng.standard_normal((a.batches, a.n, a.dx))
    mb_y = np.tanh(mb_x @ w) + 0.5 * rng.standard_normal((a.batches, a.n, a.dy))
    tensors = {
        "demo_X": demo_x,
        "demo_Y": demo_y,
        "minibatch_X": mb_x.astype(np.float32),
        "minibatch_Y": mb_y.astype(np.float32),
    }
    out = os.path.join(a.out_dir, "cka")
    os.makedirs(out, exist_ok=True)
    st_path = os.path.join(out, "cka.safetensors")
    save_file(tensors, st_path, metadata={"format": "pt"})

    thresholds, debiased_thresholds = floats(a.thresholds), floats(a.debiased_thresholds)
    stored = load_file(st_path)
    demo = demo_values(stored["demo_X"], stored["demo_Y"], thresholds, debiased_thresholds)
    mb = minibatch_values(stored["minibatch_X"], stored["minibatch_Y"])
    meta = {
        "demo": {
            "tensors": {"X": "demo_X", "Y": "demo_Y"},
            "dtype": "float64",
            "generation": DEMO_RECIPE,
            "is_kornblith_2019_demo": True,
            "values": demo,
        },
        "minibatch": {
            "tensors": {"X": "minibatch_X", "Y": "minibatch_Y"},
            "dtype": "float32 (values computed in float64 from the stored float32 values)",
            "shapes": {"X": list(mb_x.shape), "Y": list(mb_y.shape)},
            "seed": a.seed,
            "generation": MINIBATCH_RECIPE,
            **mb,
        },
        "formulas": FORMULAS,
        "versions": versions(),
    }
    write_json(os.path.join(out, "cka.json"), meta)

    # Cross-checks: feature and Gram forms agree; HSIC1 equals the debiased-centred product.
    gap = max(abs(demo["linear_cka_feature_form"] - demo["linear_cka_gram_form"]),
              abs(demo["debiased_linear_cka_feature_form"] - demo["debiased_linear_cka_gram_form"]))
    if gap > 1e-12 or mb["max_abs_diff_hsic1_vs_unbiased_center_gram_over_n_n_minus_3"] > 1e-10 * max(mb["hsic1_xy_per_batch"]):
        raise SystemExit(f"CKA cross-checks failed (feature vs Gram form {gap})")
    print(f"wrote {out}: minibatch CKA {mb['minibatch_linear_cka']}, feature/Gram gap {gap:.2g}")


if __name__ == "__main__":
    main()
