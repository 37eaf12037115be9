"""The MONAI side of the data-pipeline benchmark, built from the same TOML file as medssl.

Each `[[transforms]]` step of PIPELINE.toml maps to the MONAI dictionary transform of the
same semantics (keys image and label), after LoadImaged + EnsureChannelFirstd; unknown
steps or parameters are errors, so both sides run the same parameters by construction.

Timing (prints one JSON object per mode):
  monai_pipeline.py DATA_DIR PIPELINE.toml --threads N [--passes 2] [--mode loop|workers]
    loop:    the Compose applied case after case in this process, torch.set_num_threads(N)
             (torch's intra-op threads speed up the resampling; the rest is one thread);
             the seconds of each step are recorded, as medssl's example does.
    workers: monai.data.DataLoader with num_workers=N persistent worker processes (one
             torch thread each, PyTorch's default in workers), batch_size 1, crops handed
             back as a list: the usual way a MONAI training script runs its transforms.
Check:
  monai_pipeline.py DATA_DIR PIPELINE.toml --check DUMP_DIR
    runs the deterministic steps (those before the first random one) and compares shape,
    affine, image and label with what `pipeline_throughput --dump DUMP_DIR` wrote;
    exits with status 1 when they disagree beyond float rounding.
"""

import argparse
import json
import operator
import sys
import time
import tomllib
from functools import partial
from pathlib import Path

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    LoadImaged,
    Orientationd,
    RandCropByPosNegLabeld,
    Randomizable,
    ScaleIntensityRanged,
    Spacingd,
    apply_transform,
)

KEYS = ["image", "label"]

# Image-only tolerance for the deterministic part: both sides compute in float32 after
# MONAI's float64 resampling, on values in [0, 1].
IMAGE_TOL = 1e-5
AFFINE_TOL = 1e-6


def orientation(axcodes="RAS"):
    return Orientationd(KEYS, axcodes=axcodes)


def spacing(pixdim, mode="bilinear", padding_mode="border", diagonal=False):
    return Spacingd(KEYS, pixdim=pixdim, mode=(mode, "nearest"), padding_mode=padding_mode, diagonal=diagonal)


def scale_intensity_range(a_min, a_max, b_min=None, b_max=None, clip=False):
    return ScaleIntensityRanged("image", a_min=a_min, a_max=a_max, b_min=b_min, b_max=b_max, clip=clip)


def crop_foreground(threshold=0.0, margin=0, allow_smaller=False, k_divisible=1):
    # select_fn(x) = threshold < x, i.e. x > threshold (picklable, unlike a lambda).
    return CropForegroundd(
        KEYS,
        source_key="image",
        select_fn=partial(operator.lt, threshold),
        margin=margin,
        allow_smaller=allow_smaller,
        k_divisible=k_divisible,
    )


def rand_crop_by_pos_neg_label(spatial_size, pos=1.0, neg=1.0, num_samples=1, image_threshold=None):
    extra = {} if image_threshold is None else {"image_key": "image", "image_threshold": image_threshold}
    return RandCropByPosNegLabeld(
        KEYS, label_key="label", spatial_size=spatial_size, pos=pos, neg=neg, num_samples=num_samples, **extra
    )


STEPS = {f.__name__: f for f in (orientation, spacing, scale_intensity_range, crop_foreground, rand_crop_by_pos_neg_label)}


def build(config_path):
    """LoadImaged + EnsureChannelFirstd, then one MONAI transform per configured step."""
    tables = tomllib.loads(Path(config_path).read_text())["transforms"]
    names = ["load", "ensure_channel_first"]
    transforms = [LoadImaged(KEYS, image_only=True), EnsureChannelFirstd(KEYS)]
    for table in tables:
        params = dict(table)
        name = params.pop("name")
        if name not in STEPS:
            sys.exit(f"{config_path}: step `{name}` has no MONAI counterpart here; known: {', '.join(STEPS)}")
        try:
            transforms.append(STEPS[name](**params))
        except TypeError as e:
            sys.exit(f"{config_path}: step `{name}`: {e}")
        names.append(name)
    return names, Compose(transforms)


def cases(data_dir):
    images = sorted((Path(data_dir) / "imagesTr").glob("*.nii.gz"))
    if not images:
        sys.exit(f"{data_dir}/imagesTr: no .nii.gz images")
    return [{"image": str(p), "label": str(p.parent.parent / "labelsTr" / p.name)} for p in images]


def first(batch):
    """Collate for batch_size 1: the list of crops of the one volume, as they are."""
    return batch[0]


def time_loop(names, compose, files, args):
    torch.set_num_threads(args.threads)
    passes, best = [], None
    for p in range(args.passes):
        compose.set_random_state(seed=args.seed + p)
        steps = np.zeros(len(names))
        start = time.perf_counter()
        crops = []
        for case in files:
            data = dict(case)
            for s, t in enumerate(compose.transforms):
                t0 = time.perf_counter()
                data = apply_transform(t, data, map_items=True)
                steps[s] += time.perf_counter() - t0
            crops.extend(data)
        wall = time.perf_counter() - start
        passes.append(wall)
        if best is None or wall < best[0]:
            best = (wall, steps, crops)
    return passes, best[0], best[2], list(zip(names, best[1].tolist()))


def time_workers(compose, files, args):
    torch.set_num_threads(args.threads)
    compose.set_random_state(seed=args.seed)
    loader = DataLoader(
        Dataset(files, compose),
        batch_size=1,
        num_workers=args.threads,
        collate_fn=first,
        persistent_workers=True,
        shuffle=False,
    )
    passes, best = [], None
    for _ in range(args.passes):
        start = time.perf_counter()
        crops = [crop for volume in loader for crop in volume]
        wall = time.perf_counter() - start
        passes.append(wall)
        if best is None or wall < best[0]:
            best = (wall, crops)
    return passes, best[0], best[1], []


def check(names, compose, files, dump_dir):
    """Compares the deterministic steps' outputs with medssl's dumps."""
    from safetensors.numpy import load_file

    first_random = next((i for i, t in enumerate(compose.transforms) if isinstance(t, Randomizable)), len(names))
    prefix = Compose(compose.transforms[:first_random])
    worst = {"image_max_abs_diff": 0.0, "affine_max_abs_diff": 0.0, "label_mismatched_voxels": 0}
    shapes, ok = [], True
    for case in files:
        case_id = Path(case["image"]).name.removesuffix(".nii.gz")
        ours = load_file(str(Path(dump_dir) / f"{case_id}.safetensors"))
        theirs = prefix(dict(case))
        image, label = theirs["image"], theirs["label"]
        if tuple(ours["image"].shape) != tuple(image.shape) or tuple(ours["label"].shape) != tuple(label.shape):
            print(f"{case_id}: shape medssl {ours['image'].shape} vs MONAI {tuple(image.shape)}", file=sys.stderr)
            ok = False
            continue
        diffs = {
            "image_max_abs_diff": float(np.abs(ours["image"] - image.numpy()).max()),
            "affine_max_abs_diff": float(np.abs(ours["affine"] - image.affine.numpy()).max()),
            "label_mismatched_voxels": int((ours["label"] != label.numpy()).sum()),
        }
        worst = {k: max(worst[k], v) for k, v in diffs.items()}
        shapes.append(list(image.shape[1:]))
    ok = ok and worst["image_max_abs_diff"] <= IMAGE_TOL and worst["affine_max_abs_diff"] <= AFFINE_TOL
    ok = ok and worst["label_mismatched_voxels"] == 0
    worst.update(shapes=shapes, steps=names[:first_random], image_tol=IMAGE_TOL, affine_tol=AFFINE_TOL, agree=ok)
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("config")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=["loop", "workers"], default="loop")
    parser.add_argument("--check", metavar="DUMP_DIR")
    args = parser.parse_args()
    names, compose = build(args.config)
    files = cases(args.data)
    if args.check:
        torch.set_num_threads(args.threads)
        result = check(names, compose, files, args.check)
        print(json.dumps(result))
        sys.exit(0 if result["agree"] else 1)
    if args.mode == "loop":
        passes, wall, crops, steps = time_loop(names, compose, files, args)
    else:
        passes, wall, crops, steps = time_workers(compose, files, args)
    print(
        json.dumps(
            {
                "mode": args.mode,
                "threads": args.threads,
                "cases": len(files),
                "pass_seconds": passes,
                "volumes_per_second": len(files) / wall,
                "crops_per_pass": len(crops),
                "crop_shape": list(crops[0]["image"].shape[1:]),
                "step_seconds": steps,
            }
        )
    )


if __name__ == "__main__":
    main()
