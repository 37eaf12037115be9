"""Writes the `losses/` reference fixtures: MONAI `DiceLoss` / `DiceCELoss` and the bare
cross-entropy term on seeded random logits and labels.

Usage: python make_loss_fixtures.py OUT_DIR [--set NAME:B,C,D,H,W:SEED:SCALE[:ABSENT]]...

Writes OUT_DIR/losses/dicece.safetensors (`<set>__logits` F32 [B,C,D,H,W],
`<set>__labels` I64 [B,1,D,H,W]) and OUT_DIR/losses/dicece.json (inputs, every set x
every variant with MONAI's value on the float32 logits and on `logits.double()`, a plain
numpy float64 re-implementation, checks, notes, versions).

Inputs per set: `torch.manual_seed(SEED)`, logits = `torch.randn([B,C,D,H,W]) * SCALE`,
then labels = `torch.randint(0, C, [B,1,D,H,W])` (same global generator); with ABSENT,
that class is replaced by 0 so it does not occur in the labels (smoothing terms).

The defaults are the reference set (what testdata/ and the shared `dev` set carry):
    --set set_a:2,4,16,16,16:1101:2.0 --set set_b:1,3,12,10,8:1102:3.0:2
Deterministic: CPU, torch.set_num_threads(2); re-running gives identical bytes.
Needs torch, monai, numpy, safetensors (versions in testdata/README.md).
"""
import argparse
import math
import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from fixture_common import versions, write_json

DEFAULT_SETS = ["set_a:2,4,16,16,16:1101:2.0", "set_b:1,3,12,10,8:1102:3.0:2"]

SMOOTH = {"smooth_nr": 1e-05, "smooth_dr": 1e-05}
# (name, MONAI class or None for the bare CE term, kwargs); every input set x every variant.
VARIANTS = [
    ("dicece_default", "DiceCELoss", {"to_onehot_y": True, "softmax": True}),
    ("dicece_nobg", "DiceCELoss", {"to_onehot_y": True, "softmax": True, "include_background": False}),
    ("dicece_squared", "DiceCELoss", {"to_onehot_y": True, "softmax": True, "squared_pred": True}),
    ("dice_bg_linear", "DiceLoss", {"to_onehot_y": True, "softmax": True, "include_background": True, "squared_pred": False, **SMOOTH}),
    ("dice_bg_squared", "DiceLoss", {"to_onehot_y": True, "softmax": True, "include_background": True, "squared_pred": True, **SMOOTH}),
    ("dice_nobg_linear", "DiceLoss", {"to_onehot_y": True, "softmax": True, "include_background": False, "squared_pred": False, **SMOOTH}),
    ("dice_nobg_squared", "DiceLoss", {"to_onehot_y": True, "softmax": True, "include_background": False, "squared_pred": True, **SMOOTH}),
    ("dice_bg_linear_batch", "DiceLoss", {"to_onehot_y": True, "softmax": True, "include_background": True, "squared_pred": False, **SMOOTH, "batch": True}),
    ("dice_bg_linear_none", "DiceLoss", {"to_onehot_y": True, "softmax": True, "include_background": True, "squared_pred": False, **SMOOTH, "reduction": "none"}),
    ("ce_only", None, {}),
]
CE_CALL = "torch.nn.functional.cross_entropy(logits, labels[:,0])"

NOTES = [
    "value_f32: MONAI loss on the stored float32 logits; value_f64: same loss on logits.double() (reference).",
    "labels are int64 class indices [B,1,D,H,W]; to_onehot_y=True one-hot encodes them to C channels.",
    "independent_f64: plain numpy float64 implementation of the formula below (cross-check of MONAI).",
    "squared_pred=True quirk: MONAI computes tp/fp/fn from vector norms, tp = (|p|^2 + |g|^2 - |p-g|^2)/2, and the one-hot target is float32, so |g|^2 = (float32 sqrt(count))^2 carries ~1e-5 absolute error even when the logits are float64. MONAI's squared-pred values therefore differ from the exact formula (independent_f64) by up to ~1e-8; use a tolerance >= 1e-6 for the loss values.",
    "DiceCELoss = lambda_dice*DiceLoss + lambda_ce*CrossEntropy (both lambdas 1); the CE term always uses ALL channels, include_background=False only affects the Dice term (see checks: differences are ~0).",
    "dice per (b,c): 1 - (2*sum(p*g) + smooth_nr) / (sum(g^k) + sum(p^k) + smooth_dr), k=2 if squared_pred else 1, p = softmax over channel dim, sums over spatial dims (and also over batch when batch=True); reduction mean averages over all remaining (b,c) entries.",
]


def parse_set(text):
    parts = text.split(":")
    if len(parts) not in (4, 5):
        raise SystemExit(f"--set {text!r}: expected NAME:B,C,D,H,W:SEED:SCALE[:ABSENT]")
    shape = [int(v) for v in parts[1].split(",")]
    if len(shape) != 5:
        raise SystemExit(f"--set {text!r}: the shape needs 5 entries")
    absent = int(parts[4]) if len(parts) == 5 else None
    return {"name": parts[0], "shape": shape, "seed": int(parts[2]), "scale": float(parts[3]), "absent": absent}


def make_inputs(spec):
    b, c = spec["shape"][:2]
    torch.manual_seed(spec["seed"])
    logits = torch.randn(spec["shape"]) * spec["scale"]
    labels = torch.randint(0, c, [b, 1] + spec["shape"][2:])
    if spec["absent"] is not None:
        labels[labels == spec["absent"]] = 0
    return logits.contiguous(), labels.contiguous()


def monai_value(cls, kwargs, logits, labels):
    import monai.losses

    if cls is None:
        return F.cross_entropy(logits, labels[:, 0])
    return getattr(monai.losses, cls)(**kwargs)(logits, labels)


def independent_dice(logits, labels, kwargs):
    """Plain numpy float64 Dice loss (the formula in the notes)."""
    x = logits.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    c = x.shape[1]
    g = (labels == np.arange(c).reshape(1, c, 1, 1, 1)).astype(np.float64)
    if not kwargs.get("include_background", True):
        p, g = p[:, 1:], g[:, 1:]
    k = 2 if kwargs.get("squared_pred", False) else 1
    axes = (0, 2, 3, 4) if kwargs.get("batch", False) else (2, 3, 4)
    inter = (p * g).sum(axis=axes)
    denom = (g**k).sum(axis=axes) + (p**k).sum(axis=axes)
    f = 1.0 - (2.0 * inter + kwargs.get("smooth_nr", 1e-05)) / (denom + kwargs.get("smooth_dr", 1e-05))
    if kwargs.get("reduction", "mean") == "none":
        return f
    return f.mean()


def independent_ce(logits, labels):
    x = logits.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    logp = x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))
    picked = np.take_along_axis(logp, labels, axis=1)
    return -picked.mean()


def independent_value(cls, kwargs, logits, labels):
    if cls is None:
        return independent_ce(logits, labels)
    dice = independent_dice(logits, labels, kwargs)
    if cls == "DiceCELoss":
        return dice + independent_ce(logits, labels)
    return dice


def as_list(t):
    """A scalar as a float, anything else flattened to a list of floats."""
    a = np.asarray(t, dtype=np.float64)
    return float(a) if a.ndim == 0 else [float(v) for v in a.ravel()]


def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def compute_cases(sets, tensors):
    cases, warns = [], []
    for spec in sets:
        logits = tensors[f"{spec['name']}__logits"]
        labels = tensors[f"{spec['name']}__labels"]
        for loss, cls, kwargs in VARIANTS:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with torch.no_grad():
                    v32 = monai_value(cls, kwargs, logits, labels)
                    v64 = monai_value(cls, kwargs, logits.double(), labels)
            warns += [f"{spec['name']} {loss}: {w.category.__name__}: {w.message}" for w in caught]
            ind = independent_value(cls, kwargs, logits.numpy(), labels.numpy()).reshape(tuple(v64.shape))
            cases.append({
                "input": spec["name"],
                "loss": loss,
                "class": f"monai.losses.{cls}" if cls else CE_CALL,
                "kwargs": kwargs,
                "value_shape": list(v32.shape),
                "value_f32": as_list(v32),
                "value_f64": as_list(v64),
                "abs_diff_f32_f64": max_abs(v32.double(), v64),
                "independent_f64": as_list(ind),
                "abs_diff_independent_f64_vs_value_f64": max_abs(ind, v64),
            })
    return cases, warns


def checks(sets, cases):
    v = {(c["input"], c["loss"]): c["value_f64"] for c in cases}
    out = {}
    for spec in sets:
        n = spec["name"]
        out[n] = {
            "dicece_default_minus_dice_bg_linear_minus_ce": v[n, "dicece_default"] - v[n, "dice_bg_linear"] - v[n, "ce_only"],
            "dicece_nobg_minus_dice_nobg_linear_minus_ce": v[n, "dicece_nobg"] - v[n, "dice_nobg_linear"] - v[n, "ce_only"],
        }
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--set", dest="sets", action="append", metavar="NAME:B,C,D,H,W:SEED:SCALE[:ABSENT]",
                   help="an input set (repeatable); default: the reference sets above")
    a = p.parse_args()
    torch.set_num_threads(2)
    sets = [parse_set(s) for s in (a.sets or DEFAULT_SETS)]

    tensors, inputs = {}, []
    for spec in sets:
        logits, labels = make_inputs(spec)
        n = spec["name"]
        tensors[f"{n}__logits"], tensors[f"{n}__labels"] = logits, labels
        c = spec["shape"][1]
        counts = [np.bincount(labels[i].numpy().ravel(), minlength=c).tolist() for i in range(labels.shape[0])]
        inputs.append({
            "name": n,
            "logits": f"{n}__logits",
            "labels": f"{n}__labels",
            "logits_shape": list(logits.shape),
            "labels_shape": list(labels.shape),
            "seed": spec["seed"],
            "logit_scale": spec["scale"],
            "absent_class": spec["absent"],
            "label_counts_per_batch_item": counts,
        })

    out = os.path.join(a.out_dir, "losses")
    os.makedirs(out, exist_ok=True)
    st_path = os.path.join(out, "dicece.safetensors")
    save_file(tensors, st_path, metadata={"format": "pt"})

    cases, warns = compute_cases(sets, tensors)
    meta = {
        "inputs": inputs,
        "cases": cases,
        "checks": checks(sets, cases),
        "notes": NOTES,
        "versions": versions(),
    }
    write_json(os.path.join(out, "dicece.json"), meta)

    # Reload the written tensors and recompute every value: must be identical.
    again, _ = compute_cases(sets, load_file(st_path))
    diff = max(max_abs(x[k], y[k]) for x, y in zip(cases, again) for k in ("value_f32", "value_f64", "independent_f64"))
    if diff != 0.0:
        raise SystemExit(f"recomputing from the written file differs by {diff}")
    worst = max(c["abs_diff_f32_f64"] for c in cases)
    worst_ind = max(c["abs_diff_independent_f64_vs_value_f64"] for c in cases)
    for w in sorted(set(warns)):
        print("warning:", w)
    print(f"wrote {out}: {len(cases)} cases; max |f32-f64| {worst:.3g}, max |independent-f64| {worst_ind:.3g}, reload diff 0")
    if not math.isfinite(worst) or worst_ind > 1e-6:
        raise SystemExit("independent implementation disagrees with MONAI")


if __name__ == "__main__":
    main()
