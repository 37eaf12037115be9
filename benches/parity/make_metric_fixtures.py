"""Writes the `metrics/` reference fixtures: MONAI's Dice, HD95, HD, ASD and NSD (surface
Dice) on synthetic 3-D label maps, with a plain float64 numpy/scipy re-implementation of
the same rules next to every MONAI value.

Usage: python make_metric_fixtures.py OUT_DIR [--preset repo|dev] [--seed 3301]
           [--label-maps FILE.safetensors]

Writes OUT_DIR/metrics/cases.safetensors (`<case>__pred`, `<case>__gt`: uint8 label maps
[D,H,W], value = class index) and OUT_DIR/metrics/cases.json.

Cases (every preset has all of them; class counts, spacings and NSD tolerances are the
same in both presets, only the array shapes differ):

  binary_overlap     (perturbed)  one blob, prediction = a perturbed copy
  multiclass_4       (perturbed)  three blobs (later classes paint over earlier ones)
  empty_pred         (empty_pred) prediction all background
  empty_gt           (empty_gt)   ground truth all background
  identical          (identical)  prediction == ground truth, two classes
  absent_classes     (absent)     class 1 in both, class 2 only in the GT, class 3 in neither
  border_touching    (border)     both masks touch faces of the volume
  outlier_component  (outlier)    prediction = perturbed copy + a small far-away cube

--preset repo (default) is the in-repository set (testdata/metrics, ~0.36 MB);
--preset dev uses the array shapes of the shared `dev` set ([40,48,32] etc., ~0.88 MB).
The shared `dev` set's label maps were drawn by a generator whose recipe it does not
record, so this script cannot redraw them; `--label-maps FILE` instead takes the label
maps from an existing cases.safetensors (with --preset dev: the shared set's case table)
and recomputes every JSON value from them:

    python make_metric_fixtures.py OUT --preset dev \
        --label-maps ../shared/fixtures/metrics/cases.safetensors

Recipe of the drawn maps: case i (0-based, in the order above) uses
`np.random.default_rng(seed + i)`. A blob is an ellipsoid (random rotation, centre and
semi-axes as fractions of the shape) whose implicit function is perturbed by a
Gaussian-smoothed N(0,1) field (scipy.ndimage.gaussian_filter, sigma 2 voxels, scaled to
unit std): voxel x is inside when |diag(1/r) R^T (x - c)|^2 + amp * field(x) <= 1,
amp = 0.25 (0.15 for the outlier case's prediction). A prediction redraws the blob with the
centre shifted by N(0, 0.8) voxels per axis, the semi-axes scaled by U(0.88, 1.12) and
a fresh field. Checked by the script: every NSD tolerance is at least 0.01 mm from any
achievable voxel-to-voxel distance (so float32 rounding cannot move a distance across
it), each case shows the property it is there for, MONAI's values are within 5e-6
(relative, 5e-7 absolute near 0) of the float64 re-implementation, and re-reading the
written file reproduces every value exactly.

Deterministic: CPU, torch.set_num_threads(2). Needs torch, monai, numpy, scipy,
safetensors (versions in testdata/README.md).
"""
import argparse
import math
import os
import warnings

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from scipy import ndimage
from scipy.spatial import cKDTree

from fixture_common import number, to_json, versions, write_json

METRICS = ["dice", "hd95", "hd_max", "asd_symmetric", "asd_pred_to_gt", "nsd"]

# name, kind, classes, spacing (mm, per array axis), NSD tolerance per foreground class,
# shape per preset.
CASES = [
    ("binary_overlap", "perturbed", 2, [0.8, 0.8, 2.5], [1.5], {"repo": [32, 36, 24], "dev": [40, 48, 32]}),
    ("multiclass_4", "perturbed", 4, [1.0, 0.75, 2.0], [1.1, 1.9, 1.6], {"repo": [32, 36, 24], "dev": [40, 48, 32]}),
    ("empty_pred", "empty_pred", 2, [0.8, 0.8, 2.5], [1.5], {"repo": [24, 28, 20], "dev": [40, 48, 32]}),
    ("empty_gt", "empty_gt", 2, [1.0, 1.0, 3.0], [2.3], {"repo": [24, 28, 20], "dev": [32, 40, 24]}),
    ("identical", "identical", 3, [0.9, 0.9, 1.8], [1.0, 1.0], {"repo": [28, 32, 24], "dev": [40, 48, 32]}),
    ("absent_classes", "absent", 4, [1.0, 1.0, 2.5], [1.5, 1.5, 1.5], {"repo": [32, 36, 24], "dev": [40, 48, 32]}),
    ("border_touching", "border", 2, [1.2, 0.9, 0.9], [1.0], {"repo": [28, 32, 20], "dev": [36, 40, 28]}),
    ("outlier_component", "outlier", 2, [0.6, 0.6, 1.5], [1.25], {"repo": [36, 32, 24], "dev": [48, 40, 32]}),
]

CALLS = {
    "dice": "monai.metrics.DiceMetric(include_background=False, reduction='none')(y_pred_onehot, y_onehot)[0] (ignore_empty=True default)",
    "hd95": "monai.metrics.compute_hausdorff_distance(y_pred_onehot, y_onehot, include_background=False, distance_metric='euclidean', percentile=95, directed=False, spacing=spacing_mm)[0]",
    "hd_max": "same with percentile=None",
    "asd_symmetric": "monai.metrics.compute_average_surface_distance(..., include_background=False, symmetric=True, distance_metric='euclidean', spacing=spacing_mm)[0]",
    "asd_pred_to_gt": "same with symmetric=False (mean distance of prediction surface voxels to the GT surface)",
    "nsd": "monai.metrics.compute_surface_dice(y_pred_onehot, y_onehot, class_thresholds=class_thresholds_mm, include_background=False, distance_metric='euclidean', spacing=spacing_mm, use_subvoxels=False)[0]",
    "one_hot": "y_onehot = one_hot(label_map uint8 [D,H,W] -> [1,C,D,H,W] float32)",
}
RESULT_LAYOUT = "each results entry is a list over foreground classes 1..C-1 (include_background=False)"
NON_FINITE = "JSON strings 'nan' / 'inf' / '-inf' stand for IEEE NaN / +Inf / -Inf"
INDEPENDENT = "plain numpy/scipy float64 re-implementation (erosion edges, cKDTree, torch.quantile-style lerp) of the algorithm described in README.md; MONAI itself stores surface distances as float32, so expect ~1e-6 relative differences"
SITUATIONS = ["gt_nonempty_pred_empty", "gt_empty_pred_nonempty", "identical_nonempty", "both_empty"]


# ---- label maps ---------------------------------------------------------------------

def rotation(rng):
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def smooth_field(rng, shape):
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=2.0, mode="reflect")
    return f / f.std()


def blob(rng, shape, centre, radii, rot, amp):
    """Voxels inside a rotated ellipsoid whose implicit function carries smooth noise."""
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij"), axis=-1)
    local = (grid - np.asarray(centre)) @ rot / np.asarray(radii)
    level = (local**2).sum(axis=-1) + amp * smooth_field(rng, shape)
    return level <= 1.0


def blob_params(rng, shape, centre_frac, radius_frac, jitter=0.08):
    shape = np.asarray(shape, dtype=np.float64)
    centre = (np.asarray(centre_frac) + rng.uniform(-jitter, jitter, 3)) * (shape - 1)
    radii = np.asarray(radius_frac) * shape * rng.uniform(0.9, 1.1, 3)
    return centre, radii, rotation(rng)


def perturbed(rng, shape, params, amp):
    centre, radii, rot = params
    centre = centre + rng.normal(0.0, 0.8, 3)
    radii = radii * rng.uniform(0.88, 1.12, 3)
    return blob(rng, shape, centre, radii, rot, amp)


def paint(shape, masks):
    out = np.zeros(shape, dtype=np.uint8)
    for c, m in enumerate(masks, start=1):
        out[m] = c
    return out


def draw_maps(kind, num_classes, shape, rng):
    amp = 0.25
    shape = tuple(shape)
    if kind == "perturbed":
        if num_classes == 2:
            layout = [([0.5, 0.5, 0.5], [0.3, 0.3, 0.3])]
        else:
            layout = [([0.45, 0.55, 0.35], [0.2, 0.22, 0.24]), ([0.55, 0.3, 0.4], [0.25, 0.24, 0.25]),
                      ([0.5, 0.68, 0.65], [0.22, 0.2, 0.2])][: num_classes - 1]
        params = [blob_params(rng, shape, c, r) for c, r in layout]
        gt = paint(shape, [blob(rng, shape, *p, amp) for p in params])
        pred = paint(shape, [perturbed(rng, shape, p, amp) for p in params])
    elif kind in ("empty_pred", "empty_gt"):
        p = blob_params(rng, shape, [0.5, 0.45, 0.5], [0.27, 0.24, 0.2])
        full = paint(shape, [blob(rng, shape, *p, amp)])
        empty = np.zeros(shape, dtype=np.uint8)
        pred, gt = (empty, full) if kind == "empty_pred" else (full, empty)
    elif kind == "identical":
        layout = [([0.5, 0.6, 0.45], [0.27, 0.25, 0.2]), ([0.4, 0.65, 0.65], [0.2, 0.18, 0.2])]
        gt = paint(shape, [blob(rng, shape, *blob_params(rng, shape, c, r), amp) for c, r in layout])
        pred = gt.copy()
    elif kind == "absent":
        p1 = blob_params(rng, shape, [0.35, 0.65, 0.65], [0.2, 0.2, 0.22])
        p2 = blob_params(rng, shape, [0.55, 0.33, 0.4], [0.22, 0.2, 0.22])
        gt = paint(shape, [blob(rng, shape, *p1, amp), blob(rng, shape, *p2, amp)])
        pred = paint(shape, [perturbed(rng, shape, p1, amp)])
    elif kind == "border":
        # centred on the low face of axis 0 and near the high face of axis 2
        p = blob_params(rng, shape, [0.1, 0.5, 0.8], [0.5, 0.32, 0.3], jitter=0.03)
        gt = paint(shape, [blob(rng, shape, *p, amp)])
        centre, radii, rot = p
        grown = (centre + np.array([2.0, -1.5, -1.0]), radii * np.array([1.15, 1.05, 1.1]), rot)
        pred = paint(shape, [blob(rng, shape, *grown, amp)])
    elif kind == "outlier":
        p = blob_params(rng, shape, [0.62, 0.58, 0.6], [0.2, 0.22, 0.22], jitter=0.04)
        gt = paint(shape, [blob(rng, shape, *p, amp)])
        pred = paint(shape, [perturbed(rng, shape, p, amp * 0.6)])
        # a small false-positive cube near the far corner (side 3 voxels, 4 for shapes
        # >= 32: enough surface voxels to move the 95th percentile)
        side = max(3, min(shape) // 8)
        pred[2:2 + side, 2:2 + side, 1:1 + side] = 1
    else:
        raise ValueError(kind)
    return pred, gt


# ---- metrics: MONAI -----------------------------------------------------------------

def one_hot(label_map, c):
    t = torch.from_numpy(label_map.astype(np.int64))
    return torch.nn.functional.one_hot(t, c).permute(3, 0, 1, 2)[None].float().contiguous()


def monai_results(pred, gt, c, spacing, tolerances):
    from monai.metrics import (DiceMetric, compute_average_surface_distance, compute_hausdorff_distance,
                               compute_surface_dice)

    yp, y = one_hot(pred, c), one_hot(gt, c)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = {
            "dice": DiceMetric(include_background=False, reduction="none")(yp, y)[0],
            "hd95": compute_hausdorff_distance(yp, y, include_background=False, distance_metric="euclidean",
                                               percentile=95, directed=False, spacing=spacing)[0],
            "hd_max": compute_hausdorff_distance(yp, y, include_background=False, distance_metric="euclidean",
                                                 percentile=None, directed=False, spacing=spacing)[0],
            "asd_symmetric": compute_average_surface_distance(yp, y, include_background=False, symmetric=True,
                                                              distance_metric="euclidean", spacing=spacing)[0],
            "asd_pred_to_gt": compute_average_surface_distance(yp, y, include_background=False, symmetric=False,
                                                               distance_metric="euclidean", spacing=spacing)[0],
            "nsd": compute_surface_dice(yp, y, class_thresholds=tolerances, include_background=False,
                                        distance_metric="euclidean", spacing=spacing, use_subvoxels=False)[0],
        }
    seen = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.append(text)
    return {k: [float(x) for x in v.reshape(-1).tolist()] for k, v in res.items()}, seen


# ---- metrics: independent float64 ---------------------------------------------------

def surface(mask):
    """Voxels of the mask with a 6-neighbour outside it (outside the volume counts as outside)."""
    return mask ^ ndimage.binary_erosion(mask)


def directed_distances(a, b, spacing):
    """Distance (mm) from every surface voxel of a to the nearest surface voxel of b, with
    MONAI's rule for an empty side: inf for every surface voxel of the non-empty one."""
    if not b.any():
        return np.full(int(a.sum()), np.inf)
    if not a.any():
        return np.full(int(b.sum()), np.inf)
    s = np.asarray(spacing, dtype=np.float64)
    tree = cKDTree(np.argwhere(b) * s)
    return tree.query(np.argwhere(a) * s, k=1)[0]


def lerp_quantile(d, q):
    """torch.quantile / numpy 'linear' quantile in float64 (sorted, rank q*(n-1), lerp)."""
    if d.size == 0:
        return np.nan
    s = np.sort(d)
    rank = q * (s.size - 1)
    lo = int(math.floor(rank))
    hi = min(lo + 1, s.size - 1)
    w = rank - lo
    a, b = s[lo], s[hi]
    with np.errstate(invalid="ignore"):  # inf - inf: nan, as torch.quantile gives
        return a + w * (b - a) if w < 0.5 else b - (b - a) * (1.0 - w)


def independent_results(pred, gt, c, spacing, tolerances):
    out = {k: [] for k in METRICS}
    for k in range(1, c):
        p, g = pred == k, gt == k
        np_, ng = int(p.sum()), int(g.sum())
        out["dice"].append(2.0 * int((p & g).sum()) / (np_ + ng) if ng > 0 else np.nan)
        ep, eg = surface(p), surface(g)
        d_pg = directed_distances(ep, eg, spacing)
        d_gp = directed_distances(eg, ep, spacing)
        both = np.concatenate([d_pg, d_gp])
        if both.size == 0:
            for m in ("hd95", "hd_max", "asd_symmetric", "asd_pred_to_gt", "nsd"):
                out[m].append(np.nan)
            continue
        out["hd95"].append(max(lerp_quantile(d_pg, 0.95), lerp_quantile(d_gp, 0.95)))
        out["hd_max"].append(both.max())
        out["asd_symmetric"].append(both.mean())
        out["asd_pred_to_gt"].append(d_pg.mean() if d_pg.size else np.nan)
        t = tolerances[k - 1]
        out["nsd"].append((int((d_pg <= t).sum()) + int((d_gp <= t).sum())) / both.size)
    return {k: [float(v) for v in vals] for k, vals in out.items()}


def threshold_gap(spacing, tolerance, shape):
    """Distance (mm) from the tolerance to the nearest achievable voxel-to-voxel distance."""
    ranges = [np.arange(0, min(n - 1, int(math.ceil(tolerance / s)) + 1) + 1) for s, n in zip(spacing, shape)]
    best = math.inf
    for i in ranges[0]:
        for j in ranges[1]:
            for k in ranges[2]:
                d = math.sqrt((i * spacing[0]) ** 2 + (j * spacing[1]) ** 2 + (k * spacing[2]) ** 2)
                best = min(best, abs(d - tolerance))
    return best


# ---- fixture ------------------------------------------------------------------------

def max_abs_finite(a, b):
    worst = 0.0
    for m in METRICS:
        for x, y in zip(a[m], b[m]):
            if math.isfinite(x) and math.isfinite(y):
                worst = max(worst, abs(x - y))
            elif not (x == y or (math.isnan(x) and math.isnan(y))):
                raise SystemExit(f"non-finite pattern differs: {m} {x} vs {y}")
    return worst


def worst_relative(a, b):
    return max((abs(x - y) / max(abs(y), 0.1) for m in METRICS for x, y in zip(a[m], b[m])
                if math.isfinite(x) and math.isfinite(y)), default=0.0)


def situation(p, g):
    if not g.any():
        return "both_empty" if not p.any() else "gt_empty_pred_nonempty"
    if not p.any():
        return "gt_nonempty_pred_empty"
    if np.array_equal(p, g):
        return "identical_nonempty"
    return None


def case_entry(name, kind, c, spacing, tolerances, pred, gt):
    results, warns = monai_results(pred, gt, c, spacing, tolerances)
    ind = independent_results(pred, gt, c, spacing, tolerances)
    return {
        "name": name,
        "kind": kind,
        "pred": f"{name}__pred",
        "gt": f"{name}__gt",
        "shape": list(pred.shape),
        "num_classes": c,
        "spacing_mm": spacing,
        "class_thresholds_mm": tolerances,
        "threshold_gap_to_nearest_possible_distance_mm": [threshold_gap(spacing, t, pred.shape) for t in tolerances],
        "voxel_counts_pred": np.bincount(pred.ravel(), minlength=c).tolist(),
        "voxel_counts_gt": np.bincount(gt.ravel(), minlength=c).tolist(),
        "results": {k: [number(v) for v in vals] for k, vals in results.items()},
        "independent_f64_results": {k: [number(v) for v in vals] for k, vals in ind.items()},
        "max_abs_diff_monai_vs_independent_f64": max_abs_finite(results, ind),
        "monai_warnings": warns,
    }, results, ind


def empty_mask_behaviour(entries, maps):
    table = {}
    for e in entries:
        pred, gt = maps[e["pred"]], maps[e["gt"]]
        for k in range(1, e["num_classes"]):
            s = situation(pred == k, gt == k)
            if s is None:
                continue
            values = {m: [e["results"][m][k - 1]] for m in METRICS}
            if s in table:
                if any(table[s][m] != values[m] for m in METRICS):
                    raise SystemExit(f"{s}: MONAI returned different values in {e['name']}[class {k}]")
                table[s]["seen_in"].append(f"{e['name']}[class {k}]")
            else:
                table[s] = {"seen_in": [f"{e['name']}[class {k}]"], **values}
    return {s: table[s] for s in SITUATIONS if s in table}


def check_purpose(e, pred, gt):
    """Each case must show what it is there for."""
    name, kind, c = e["name"], e["kind"], e["num_classes"]
    fg = lambda m, k: bool((m == k).any())
    if kind == "perturbed":
        ok = all(fg(pred, k) and fg(gt, k) and not np.array_equal(pred == k, gt == k) for k in range(1, c))
        ok = ok and all(0.5 < d < 0.97 for d in e["results"]["dice"])
    elif kind == "empty_pred":
        ok = not pred.any() and gt.any()
    elif kind == "empty_gt":
        ok = pred.any() and not gt.any()
    elif kind == "identical":
        ok = np.array_equal(pred, gt) and all(fg(gt, k) for k in range(1, c))
    elif kind == "absent":
        ok = (c == 4 and fg(pred, 1) and fg(gt, 1) and not fg(pred, 2) and fg(gt, 2)
              and not fg(pred, 3) and not fg(gt, 3))
    elif kind == "border":
        def faces(m):
            return sum(bool(np.take(m, 0, axis=a).any()) + bool(np.take(m, -1, axis=a).any()) for a in range(3))
        ok = faces(pred == 1) >= 2 and faces(gt == 1) >= 2 and 0.5 < e["results"]["dice"][0] < 0.95
    elif kind == "outlier":
        _, n_pred = ndimage.label(pred == 1)
        _, n_gt = ndimage.label(gt == 1)
        r = e["results"]
        ok = n_pred == 2 and n_gt == 1 and r["dice"][0] > 0.75 and r["hd95"][0] > 4 * r["asd_symmetric"][0]
    else:
        ok = False
    if not ok:
        raise SystemExit(f"case {name} ({kind}) does not show its property")
    if min(e["threshold_gap_to_nearest_possible_distance_mm"]) < 0.01:
        raise SystemExit(f"case {name}: an NSD tolerance is within 0.01 mm of an achievable distance")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--preset", choices=["repo", "dev"], default="repo",
                   help="array shapes: repo (in-repository set, default) or dev (the shared set's shapes)")
    p.add_argument("--seed", type=int, default=3301, help="case i draws from default_rng(seed + i)")
    p.add_argument("--label-maps", metavar="FILE",
                   help="take the label maps from an existing cases.safetensors instead of drawing them")
    a = p.parse_args()
    torch.set_num_threads(2)

    given = load_file(a.label_maps) if a.label_maps else None
    maps = {}
    for i, (name, kind, c, spacing, tolerances, shapes) in enumerate(CASES):
        if given is not None:
            pred, gt = given[f"{name}__pred"], given[f"{name}__gt"]
        else:
            pred, gt = draw_maps(kind, c, shapes[a.preset], np.random.default_rng(a.seed + i))
        maps[f"{name}__pred"], maps[f"{name}__gt"] = np.ascontiguousarray(pred, dtype=np.uint8), np.ascontiguousarray(gt, dtype=np.uint8)

    out = os.path.join(a.out_dir, "metrics")
    os.makedirs(out, exist_ok=True)
    st_path = os.path.join(out, "cases.safetensors")
    save_file(maps, st_path, metadata={"format": "pt"})

    stored = load_file(st_path)
    entries, worst_rel = [], 0.0
    for name, kind, c, spacing, tolerances, _ in CASES:
        e, res, ind = case_entry(name, kind, c, spacing, tolerances, stored[f"{name}__pred"], stored[f"{name}__gt"])
        if given is None:
            check_purpose(e, stored[f"{name}__pred"], stored[f"{name}__gt"])
        worst_rel = max(worst_rel, worst_relative(res, ind))
        entries.append(e)
    meta = {
        "empty_mask_behaviour": empty_mask_behaviour(entries, stored),
        "cases": entries,
        "result_layout": RESULT_LAYOUT,
        "calls": CALLS,
        "non_finite_encoding": NON_FINITE,
        "independent_f64_results": INDEPENDENT,
        "versions": versions(),
    }
    write_json(os.path.join(out, "cases.json"), meta)

    # Recompute from the written file: must be identical.
    again = load_file(st_path)
    for e in entries:
        e2, _, _ = case_entry(e["name"], e["kind"], e["num_classes"], e["spacing_mm"], e["class_thresholds_mm"],
                              again[e["pred"]], again[e["gt"]])
        if to_json(e2) != to_json(e):
            raise SystemExit(f"recomputing {e['name']} from the written file differs")
    worst = max(e["max_abs_diff_monai_vs_independent_f64"] for e in entries)
    gap = min(min(e["threshold_gap_to_nearest_possible_distance_mm"]) for e in entries)
    size = os.path.getsize(st_path)
    print(f"wrote {out}: {len(entries)} cases, {size} bytes of label maps; MONAI vs float64: max abs {worst:.3g}, "
          f"max relative {worst_rel:.3g}; smallest NSD tolerance gap {gap:.4g} mm")
    if worst_rel > 5e-6:
        raise SystemExit("MONAI and the float64 re-implementation differ by more than 5e-6 (relative)")


if __name__ == "__main__":
    main()
