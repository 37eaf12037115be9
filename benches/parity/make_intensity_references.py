"""Writes the MONAI reference outputs that `crates/medssl-data/tests/intensity_monai.rs`
compares the intensity transforms against, into `crates/medssl-data/tests/data/intensity/`:

- `inputs.json`: the small input images (`shape` [C, I, J, K], `data` row-major float32).
- `configured.json`: cases given as the TOML step a medssl configuration would hold, with
  the output of the MONAI dictionary transform that has the same parameters (random
  transforms with prob = 1 and a degenerate range, so the drawn value is fixed).
- `drawn.json`: random transforms run by MONAI with a seeded generator; each case records
  the parameter MONAI drew (factors, offsets, gamma, sigmas) and its output, so the
  application can be checked with the same drawn value; also MONAI's 1-D Gaussian
  kernels (`gaussian_1d`) for a few sigmas.

Deterministic: fixed seeds, one torch thread. Run with the venv that has monai 1.6.1:
    /work/.venv-torch/bin/python benches/parity/make_intensity_references.py
"""
import json
import os

import monai
import numpy as np
import torch
from monai.transforms import (
    ClipIntensityPercentilesd,
    NormalizeIntensityd,
    RandAdjustContrastd,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
)

torch.set_num_threads(1)
OUT = os.path.join(os.path.dirname(__file__), "../../crates/medssl-data/tests/data/intensity")


def make_inputs():
    rs = np.random.RandomState(20240611)
    ct = rs.uniform(-1100.0, 1500.0, size=(1, 7, 6, 5)).astype(np.float32)
    ct.flat[:4] = [-175.0, 250.0, -1024.0, 0.0]
    mr = np.stack(
        [rs.gamma(2.0, 150.0, size=(6, 5, 4)), rs.uniform(0.0, 1.0, size=(6, 5, 4))]
    ).astype(np.float32)
    mr[rs.uniform(size=mr.shape) < 0.3] = 0.0
    flat = np.zeros((2, 4, 4, 3), dtype=np.float32)
    flat[1] = 3.0
    smooth = rs.normal(100.0, 30.0, size=(2, 9, 8, 7)).astype(np.float32)
    return {"ct": ct, "mr": mr, "flat": flat, "smooth": smooth}


def run(transform, image):
    out = transform({"image": torch.from_numpy(image.copy())})["image"]
    return np.asarray(out.detach().cpu().numpy(), dtype=np.float32)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(float(v))


def toml_step(name, params):
    lines = [f'name = "{name}"'] + [f"{k} = {toml_value(v)}" for k, v in params.items() if v is not None]
    return "\n".join(lines) + "\n"


def flat(a):
    return [float(x) for x in np.asarray(a, dtype=np.float32).ravel()]


# (case, input, medssl name, parameters, MONAI transform); parameters left at None are
# absent from the TOML step, as MONAI's None.
CONFIGURED = [
    ("window_ct_clip", "ct", "scale_intensity_range",
     dict(a_min=-175.0, a_max=250.0, b_min=0.0, b_max=1.0, clip=True), ScaleIntensityRanged),
    ("window_ct_noclip", "ct", "scale_intensity_range",
     dict(a_min=-175.0, a_max=250.0, b_min=0.0, b_max=1.0, clip=False), ScaleIntensityRanged),
    ("window_ct_no_target", "ct", "scale_intensity_range",
     dict(a_min=-1000.0, a_max=1000.0), ScaleIntensityRanged),
    ("window_ct_upper_clip_only", "ct", "scale_intensity_range",
     dict(a_min=-1000.0, a_max=1000.0, b_max=0.25, clip=True), ScaleIntensityRanged),
    ("window_ct_degenerate", "ct", "scale_intensity_range",
     dict(a_min=100.0, a_max=100.0, b_min=0.5, b_max=1.0, clip=True), ScaleIntensityRanged),
    ("window_mr_inverted_target", "mr", "scale_intensity_range",
     dict(a_min=0.0, a_max=600.0, b_min=1.0, b_max=-1.0, clip=False), ScaleIntensityRanged),
    ("normalize_mr", "mr", "normalize_intensity", dict(), NormalizeIntensityd),
    ("normalize_mr_nonzero", "mr", "normalize_intensity", dict(nonzero=True), NormalizeIntensityd),
    ("normalize_mr_channel_wise", "mr", "normalize_intensity", dict(channel_wise=True), NormalizeIntensityd),
    ("normalize_mr_nonzero_channel_wise", "mr", "normalize_intensity",
     dict(nonzero=True, channel_wise=True), NormalizeIntensityd),
    ("normalize_flat_nonzero_channel_wise", "flat", "normalize_intensity",
     dict(nonzero=True, channel_wise=True), NormalizeIntensityd),
    ("normalize_flat_channel_wise", "flat", "normalize_intensity", dict(channel_wise=True), NormalizeIntensityd),
    ("normalize_flat_nonzero", "flat", "normalize_intensity", dict(nonzero=True), NormalizeIntensityd),
    ("normalize_ct_given", "ct", "normalize_intensity",
     dict(subtrahend=100.0, divisor=50.0), NormalizeIntensityd),
    ("normalize_ct_given_subtrahend", "ct", "normalize_intensity", dict(subtrahend=-300.0), NormalizeIntensityd),
    ("normalize_mr_given_channel_wise_nonzero", "mr", "normalize_intensity",
     dict(subtrahend=[10.0, 0.25], divisor=[2.0, 4.0], nonzero=True, channel_wise=True), NormalizeIntensityd),
    ("percentiles_ct_clip", "ct", "scale_intensity_range_percentiles",
     dict(lower=5.0, upper=95.0, b_min=0.0, b_max=1.0, clip=True), ScaleIntensityRangePercentilesd),
    ("percentiles_ct_relative", "ct", "scale_intensity_range_percentiles",
     dict(lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, relative=True), ScaleIntensityRangePercentilesd),
    ("percentiles_mr_channel_wise", "mr", "scale_intensity_range_percentiles",
     dict(lower=10.0, upper=90.0, b_min=-1.0, b_max=1.0, clip=True, channel_wise=True),
     ScaleIntensityRangePercentilesd),
    ("percentiles_flat_channel_wise_degenerate", "flat", "scale_intensity_range_percentiles",
     dict(lower=20.0, upper=80.0, b_min=0.2, b_max=1.0, clip=True, channel_wise=True),
     ScaleIntensityRangePercentilesd),
    ("percentiles_mr_no_target", "mr", "scale_intensity_range_percentiles",
     dict(lower=25.0, upper=75.0, b_min=None, b_max=None), ScaleIntensityRangePercentilesd),
    ("clip_ct", "ct", "clip_intensity_percentiles", dict(lower=5.0, upper=95.0), ClipIntensityPercentilesd),
    ("clip_ct_upper_only", "ct", "clip_intensity_percentiles", dict(lower=None, upper=90.0),
     ClipIntensityPercentilesd),
    ("clip_mr_channel_wise", "mr", "clip_intensity_percentiles",
     dict(lower=10.0, upper=80.0, channel_wise=True), ClipIntensityPercentilesd),
    ("clip_ct_soft", "ct", "clip_intensity_percentiles",
     dict(lower=10.0, upper=90.0, sharpness_factor=0.05), ClipIntensityPercentilesd),
    ("clip_mr_soft_upper_channel_wise", "mr", "clip_intensity_percentiles",
     dict(lower=None, upper=70.0, sharpness_factor=2.0, channel_wise=True), ClipIntensityPercentilesd),
    ("scale_mr_fixed_factor", "mr", "rand_scale_intensity",
     dict(factors=[0.3, 0.3], prob=1.0), RandScaleIntensityd),
    ("scale_ct_fixed_factor", "ct", "rand_scale_intensity",
     dict(factors=[-0.2, -0.2], prob=1.0), RandScaleIntensityd),
    ("shift_ct_fixed_offset", "ct", "rand_shift_intensity",
     dict(offsets=[25.5, 25.5], prob=1.0), RandShiftIntensityd),
    ("contrast_ct_fixed_gamma", "ct", "rand_adjust_contrast",
     dict(gamma=[1.7, 1.7], prob=1.0), RandAdjustContrastd),
    ("contrast_mr_fixed_gamma_retain_invert", "mr", "rand_adjust_contrast",
     dict(gamma=[0.6, 0.6], prob=1.0, invert_image=True, retain_stats=True), RandAdjustContrastd),
    ("smooth_fixed_sigma", "smooth", "rand_gaussian_smooth",
     dict(sigma_x=[0.8, 0.8], sigma_y=[1.1, 1.1], sigma_z=[0.3, 0.3], prob=1.0), RandGaussianSmoothd),
]


def configured(inputs):
    cases = []
    for case, inp, name, params, monai_cls in CONFIGURED:
        monai_params = {k: (tuple(v) if isinstance(v, list) and k != "subtrahend" and k != "divisor" else v)
                        for k, v in params.items()}
        t = monai_cls(keys="image", **monai_params)
        if hasattr(t, "set_random_state"):
            t.set_random_state(seed=0)
        cases.append({
            "case": case, "input": inp, "monai": monai_cls.__name__,
            "step": toml_step(name, params), "expected": flat(run(t, inputs[inp])),
        })
    return cases


def drawn(inputs):
    cases = []

    def add(case, inp, monai_transform, seed, read, **extra):
        monai_transform.set_random_state(seed=seed)
        out = run(monai_transform, inputs[inp])
        cases.append({"case": case, "input": inp, "monai": type(monai_transform).__name__,
                      "drawn": read(monai_transform), **extra, "expected": flat(out)})

    def listed(v):
        return [float(x) for x in np.atleast_1d(v)]

    add("scale_mr_channel_wise", "mr", RandScaleIntensityd(keys="image", factors=0.5, prob=1.0, channel_wise=True),
        1, lambda t: listed(t.scaler.factor), transform="rand_scale_intensity")
    add("scale_ct", "ct", RandScaleIntensityd(keys="image", factors=(-0.4, 0.9), prob=1.0),
        2, lambda t: listed(t.scaler.factor), transform="rand_scale_intensity")
    add("shift_mr_channel_wise", "mr", RandShiftIntensityd(keys="image", offsets=50.0, prob=1.0, channel_wise=True),
        3, lambda t: listed(t.shifter._offset), transform="rand_shift_intensity")
    add("shift_ct", "ct", RandShiftIntensityd(keys="image", offsets=(-200.0, 100.0), prob=1.0),
        4, lambda t: listed(t.shifter._offset), transform="rand_shift_intensity")
    for i, (inp, invert, retain) in enumerate([("ct", False, False), ("mr", False, True), ("ct", True, False),
                                              ("mr", True, True), ("smooth", False, True)]):
        add(f"contrast_{inp}_invert{int(invert)}_retain{int(retain)}", inp,
            RandAdjustContrastd(keys="image", prob=1.0, invert_image=invert, retain_stats=retain),
            10 + i, lambda t: [float(t.adjuster.gamma_value)], transform="rand_adjust_contrast",
            invert_image=invert, retain_stats=retain)
    for i, (kw, approx) in enumerate([(dict(), "erf"), (dict(sigma_x=(0.1, 0.3), sigma_y=(1.0, 2.0)), "erf"),
                                      (dict(sigma_z=(1.2, 1.6)), "sampled")]):
        add(f"smooth_{approx}_{i}", "smooth", RandGaussianSmoothd(keys="image", prob=1.0, approx=approx, **kw),
            20 + i, lambda t: [float(t.rand_smooth.x), float(t.rand_smooth.y), float(t.rand_smooth.z)],
            transform="rand_gaussian_smooth", approx=approx)
    return cases


def kernels():
    """MONAI's `gaussian_1d` (truncated=4.0) for sigmas around the tail-length edges."""
    from monai.networks.layers.convutils import gaussian_1d

    return [
        {"sigma": sigma, "approx": approx,
         "kernel": flat(gaussian_1d(torch.tensor(sigma), truncated=4.0, approx=approx).numpy())}
        for sigma in [0.1, 0.25, 0.375, 1.0, 1.37, 2.6] for approx in ["erf", "sampled"]
    ]


def write(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"{path}: {os.path.getsize(path)} bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    inputs = make_inputs()
    meta = {"monai": monai.__version__, "torch": torch.__version__}
    write("inputs.json", {**meta, "inputs": {k: {"shape": list(v.shape), "data": flat(v)} for k, v in inputs.items()}})
    write("configured.json", {**meta, "cases": configured(inputs)})
    write("drawn.json", {**meta, "cases": drawn(inputs), "kernels": kernels()})


if __name__ == "__main__":
    main()
