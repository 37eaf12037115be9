"""Writes the MONAI 1.6.1 reference outputs of medssl-data's spatial transforms into
crates/medssl-data/tests/data/spatial/ (deterministic: fixed inputs, no random draws).

- inputs.safetensors: a 2-channel float32 image and a uint8 label map on a 20x17x13 grid,
  a second image that is zero outside a box (for crop_foreground), and the input affines
  (`affine.<name>`, float64): RAS-aligned, permuted/flipped (PSL), oblique and sheared.
- cases.json: one entry per case: the medssl transform (`transform` + `params`, exactly as
  a configuration table; random ones with fixed choices: prob 1, zero-width ranges) or
  the medssl function (`function` + `args`) it is compared with, which input image and affine it starts from, and the safetensors file holding
  MONAI's output (`image`, `label`, `affine`). Also MONAI's `correct_crop_centers` on a
  list of raw centres.

Nearest-neighbour outputs are only comparable exactly where no sample sits on a rounding
tie between voxels of different value (float noise could break it either way); the script
checks that for every case that rounds and fails otherwise.

Usage: /work/.venv-torch/bin/python benches/parity/make_spatial_references.py
"""
import json
import os

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    CenterSpatialCropd,
    CropForegroundd,
    Flipd,
    Orientationd,
    RandAffined,
    Rotate90d,
    Spacingd,
    SpatialPadd,
)
from monai.transforms.utils import correct_crop_centers
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "medssl-data", "tests", "data", "spatial")
SHAPE = (20, 17, 13)
KEYS = ["image", "label"]


def make_inputs():
    rng = np.random.default_rng(20240611)
    i, j, k = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in SHAPE], indexing="ij")
    smooth = 0.5 + 0.25 * np.sin(i / 3.1) * np.cos(j / 4.3) + 0.1 * np.cos(k / 2.2)
    image = np.stack([smooth + 0.15 * rng.random(SHAPE), 1.0 - smooth + 0.1 * rng.random(SHAPE)])
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[((i - 9.5) / 6) ** 2 + ((j - 8) / 5) ** 2 + ((k - 6) / 4) ** 2 < 1] = 1
    label[((i - 12) / 3) ** 2 + ((j - 6) / 3) ** 2 + ((k - 7) / 2.5) ** 2 < 1] = 2
    label[2:5, 11:15, 1:4] = 3
    box = np.zeros(SHAPE)
    box[5:14, 3:12, 2:10] = 1.0
    box[6, 2, 2] = 1.0  # one stray voxel widens the box along axis 1
    fg_image = (image * box[None]).astype(np.float32)
    return image.astype(np.float32), label, fg_image


def rotation_xyz(radians):
    """MONAI's create_rotate for 3-D with the default intrinsic "XYZ" order: Rx @ Ry @ Rz."""
    ax, ay, az = radians
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def make_affines():
    ras = np.diag([1.25, 0.9, 2.5, 1.0])
    ras[:3, 3] = [-10.0, 5.0, 20.0]
    psl = np.array(
        [[0.0, 0.0, -1.1, 30.0], [-0.9, 0.0, 0.0, 12.0], [0.0, 2.0, 0.0, -40.0], [0.0, 0.0, 0.0, 1.0]]
    )
    oblique = np.eye(4)
    oblique[:3, :3] = rotation_xyz((0.35, -0.2, 0.5)) @ np.diag([1.25, 0.9, 2.5])
    oblique[:3, 3] = [3.0, -7.5, 11.0]
    sheared = ras.copy()
    sheared[0, 1] = 0.15
    sheared[2, 0] = -0.1
    return {"ras": ras, "psl": psl, "oblique": oblique, "sheared": sheared}


def source_index(x, n, padding):
    """grid_sample's source index along one axis (align_corners=False) before rounding."""
    if padding == "reflection":
        x = np.abs(x + 0.5) % (2 * n)
        x = np.where(x > n, 2 * n - x, x) - 0.5
    if padding in ("border", "reflection"):
        x = np.clip(x, 0, n - 1)
    return x


def ambiguous_nearest(volume, coords, padding, margin):
    """How many nearest-neighbour samples of `volume` (C, I, J, K) change value when a
    sampling coordinate moves by `margin` (a rounding tie that float noise may break
    either way)."""
    shape = volume.shape[1:]
    xs = [source_index(coords[a], shape[a], padding) for a in range(3)]

    def pick(idx):
        inside = np.all([(idx[a] >= 0) & (idx[a] < shape[a]) for a in range(3)], axis=0)
        clamped = [np.clip(idx[a], 0, shape[a] - 1).astype(int) for a in range(3)]
        return np.where(inside, volume[:, clamped[0], clamped[1], clamped[2]], 0.0)

    nominal = [np.rint(x) for x in xs]
    base = pick(nominal)
    bad = 0
    for a in range(3):
        for shift in (-margin, margin):
            moved = list(nominal)
            moved[a] = np.rint(xs[a] + shift)
            bad += int(np.any(pick(moved) != base, axis=0).sum())
    return bad


def grid(shape):
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")).reshape(3, -1)


def run(transform, image, label, affine):
    data = {
        "image": MetaTensor(torch.as_tensor(image), affine=torch.as_tensor(affine, dtype=torch.float64)),
        "label": MetaTensor(torch.as_tensor(label[None].astype(np.float32)), affine=torch.as_tensor(affine, dtype=torch.float64)),
    }
    out = transform(data)
    img, lab = out["image"], out["label"]
    return (
        np.ascontiguousarray(img.numpy().astype(np.float32)),
        np.ascontiguousarray(lab.numpy()),
        np.ascontiguousarray(img.affine.numpy().astype(np.float64)),
        np.ascontiguousarray(lab.affine.numpy().astype(np.float64)),
    )


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    image, label, fg_image = make_inputs()
    affines = make_affines()
    inputs = {"image": image, "label": label, "fg_image": fg_image}
    inputs.update({f"affine.{name}": a for name, a in affines.items()})
    save_file(inputs, os.path.join(OUT, "inputs.safetensors"))
    images = {"image": image, "fg_image": fg_image}

    cases = []

    def add(name, monai_transform, medssl, source="image", affine="ras", nearest_coords=None, tie_margin=1e-9):
        padding = medssl.get("params", {}).get("padding_mode")
        img, lab, aff, lab_aff = run(monai_transform, images[source], label, affines[affine])
        assert np.allclose(aff, lab_aff), name
        assert np.array_equal(lab, np.round(lab)), name
        if nearest_coords is not None:
            coords = nearest_coords(img.shape[1:])
            nearest = [label[None].astype(np.float64)]
            if medssl["params"]["mode"] == "nearest":
                nearest.append(images[source].astype(np.float64))
            for volume in nearest:
                bad = ambiguous_nearest(volume, coords, padding, tie_margin)
                assert bad == 0, f"{name}: {bad} nearest-neighbour samples sit on a rounding tie"
        file = f"{name}.safetensors"
        save_file(
            {"image": img, "label": lab[0].astype(np.uint8), "affine": aff},
            os.path.join(OUT, file),
        )
        case = {"name": name, "source": source, "affine": affine, "file": file, **medssl}
        cases.append(case)

    # Orientation: nibabel's io_orientation through MONAI's Orientationd.
    for name, axcodes, affine in [
        ("orientation_psl_to_ras", "RAS", "psl"),
        ("orientation_oblique_to_ras", "RAS", "oblique"),
        ("orientation_ras_to_lps", "LPS", "ras"),
        ("orientation_psl_to_ial", "IAL", "psl"),
    ]:
        add(name, Orientationd(KEYS, axcodes=axcodes), {"transform": "orientation", "params": {"axcodes": axcodes}}, affine=affine)

    # Spacing: output shape/affine from zoom_affine + compute_shape_offset, trilinear image,
    # nearest label; default padding "border".
    def spacing_coords(affine_name, pixdim, diagonal):
        def coords(out_shape):
            tr = Spacingd(["image"], pixdim=pixdim, diagonal=diagonal)
            out = tr({"image": MetaTensor(torch.zeros((1,) + SHAPE), affine=torch.as_tensor(affines[affine_name]))})
            xform = np.linalg.solve(affines[affine_name], out["image"].affine.numpy())
            return (xform @ np.vstack([grid(out_shape), np.ones((1, int(np.prod(out_shape))))]))[:3]

        return coords

    spacing_cases = [
        ("spacing_ras_iso", "ras", (1.0, 1.0, 1.0), {}, ("bilinear", "nearest"), "border"),
        ("spacing_ras_aniso", "ras", (1.7, 0.66, 1.9), {}, ("bilinear", "nearest"), "border"),
        ("spacing_ras_keep", "ras", (1.2504, 1.3, -1.0), {}, ("bilinear", "nearest"), "border"),
        ("spacing_ras_zeros", "ras", (0.95, 1.3, 2.1), {}, ("bilinear", "nearest"), "zeros"),
        ("spacing_ras_reflection", "ras", (0.95, 1.3, 2.1), {}, ("bilinear", "nearest"), "reflection"),
        ("spacing_ras_nearest", "ras", (1.45, 0.8, 1.9), {}, ("nearest", "nearest"), "border"),
        ("spacing_psl", "psl", (1.3, 0.72, 1.6), {}, ("bilinear", "nearest"), "border"),
        ("spacing_oblique", "oblique", (0.85, 1.4, 1.9), {}, ("bilinear", "nearest"), "border"),
        ("spacing_oblique_diagonal", "oblique", (1.4, 1.1, 1.7), {"diagonal": True}, ("bilinear", "nearest"), "zeros"),
        ("spacing_sheared", "sheared", (1.3, 1.05, 1.9), {}, ("bilinear", "nearest"), "border"),
    ]
    for name, affine, pixdim, extra, mode, padding in spacing_cases:
        diagonal = extra.get("diagonal", False)
        params = {"pixdim": list(pixdim), "mode": mode[0], "padding_mode": padding, **extra}
        add(
            name,
            Spacingd(KEYS, pixdim=pixdim, mode=mode, padding_mode=padding, diagonal=diagonal),
            {"transform": "spacing", "params": params},
            affine=affine,
            nearest_coords=spacing_coords(affine, pixdim, diagonal),
        )

    # Crop foreground of the box image (selected by the image, applied to image and label).
    for name, thr, margin, k, smaller, source in [
        ("crop_foreground_plain", 0.0, 0, 1, False, "fg_image"),
        ("crop_foreground_margin_k", 0.0, [2, 1, 0], [4, 4, 3], False, "fg_image"),
        ("crop_foreground_past_border", 0.0, 4, 1, False, "fg_image"),
        ("crop_foreground_allow_smaller", 0.0, 4, [1, 3, 1], True, "fg_image"),
        ("crop_foreground_threshold", 0.8, [1, 0, 2], 1, False, "image"),
    ]:
        add(
            name,
            CropForegroundd(KEYS, source_key="image", select_fn=lambda x, t=thr: x > t, margin=margin, k_divisible=k, allow_smaller=smaller),
            {"transform": "crop_foreground", "params": {"threshold": thr, "margin": margin, "k_divisible": k, "allow_smaller": smaller}},
            source=source,
            affine="oblique",
        )

    for name, size, method in [
        ("spatial_pad_symmetric", [25, 20, 13], "symmetric"),
        ("spatial_pad_odd_even", [21, 22, 16], "symmetric"),
        ("spatial_pad_end", [24, 10, 15], "end"),
    ]:
        add(name, SpatialPadd(KEYS, spatial_size=size, method=method), {"transform": "spatial_pad", "params": {"spatial_size": size, "method": method}}, affine="psl")

    for name, roi in [("center_crop_clipped", [10, 9, 20]), ("center_crop_odd", [7, 17, 4])]:
        add(name, CenterSpatialCropd(KEYS, roi_size=roi), {"transform": "center_spatial_crop", "params": {"roi_size": roi}}, affine="psl")

    # Flips and quarter turns with fixed choices.
    for name, axes in [("flip_0", [0]), ("flip_1_2", [1, 2]), ("flip_all", None), ("flip_last", [-1])]:
        params = {"prob": 1.0} if axes is None else {"prob": 1.0, "spatial_axis": axes}
        add(name, Flipd(KEYS, spatial_axis=axes), {"transform": "rand_flip", "params": params}, affine="oblique")
    for name, k, axes in [
        ("rot90_k1_01", 1, (0, 1)),
        ("rot90_k2_12", 2, (1, 2)),
        ("rot90_k3_02", 3, (0, 2)),
        ("rot90_k1_20", 1, (2, 0)),
        ("rot90_k3_m1_1", 3, (-1, 1)),
    ]:
        if k == 1:  # the transform itself, with its only choice k = 1
            medssl = {"transform": "rand_rotate90", "params": {"prob": 1.0, "max_k": 1, "spatial_axes": list(axes)}}
        else:  # the quarter-turn move the transform applies for k = 2, 3
            medssl = {"function": "rotate90", "args": {"k": k, "spatial_axes": list(axes)}}
        add(name, Rotate90d(KEYS, k=k, spatial_axes=axes), medssl, affine="oblique")

    # RandAffined with prob 1 and zero-width ranges: fixed rotation, scale and translation.
    def affine_coords(rot, scale, trans):
        def coords(out_shape):
            r = rotation_xyz(rot)
            a = np.eye(4)
            a[:3, :3] = r
            t = np.eye(4)
            t[:3, 3] = trans
            s = np.diag(list(scale) + [1.0])
            m = a @ t @ s
            centred = grid(out_shape) - ((np.array(out_shape) - 1) / 2)[:, None]
            src = (m @ np.vstack([centred, np.ones((1, centred.shape[1]))]))[:3]
            return src + ((np.array(SHAPE) - 1) / 2)[:, None]

        return coords

    affine_cases = [
        ("rand_affine_rotate_scale", (0.3, -0.2, 0.45), (1.1, 0.9, 1.2), (0.0, 0.0, 0.0), None, "reflection", "bilinear"),
        ("rand_affine_zeros_translate", (0.0, 0.25, -0.4), (0.85, 1.15, 1.0), (1.5, -2.25, 0.75), None, "zeros", "bilinear"),
        ("rand_affine_border_size", (-0.15, 0.1, 0.3), (1.05, 1.0, 0.9), (0.0, 1.0, 0.0), [15, 18, 11], "border", "bilinear"),
        ("rand_affine_nearest", (0.2, 0.0, -0.3), (0.95, 1.1, 1.05), (0.0, 0.0, 0.0), None, "zeros", "nearest"),
    ]
    for name, rot, scale, trans, size, padding, mode in affine_cases:
        params = {
            "prob": 1.0,
            "rotate_range": [[r, r] for r in rot],
            "scale_range": [[s - 1.0, s - 1.0] for s in scale],
            "translate_range": [[t, t] for t in trans],
            "padding_mode": padding,
            "mode": mode,
        }
        if size is not None:
            params["spatial_size"] = size
        add(
            name,
            RandAffined(
                KEYS,
                prob=1.0,
                rotate_range=[(r, r) for r in rot],
                scale_range=[(s - 1.0, s - 1.0) for s in scale],
                translate_range=[(t, t) for t in trans],
                spatial_size=size,
                padding_mode=padding,
                mode=(mode, "nearest"),
            ),
            {"transform": "rand_affine", "params": params},
            affine="oblique",
            nearest_coords=affine_coords(rot, scale, trans),
            tie_margin=1e-5,
        )

    centres = []
    for size in [(8, 7, 13), (5, 6, 4), (20, 1, 2)]:
        for centre in [(0, 0, 0), (19, 16, 12), (10, 3, 6), (4, 16, 1), (17, 8, 11)]:
            corrected = correct_crop_centers(list(centre), size, SHAPE)
            centres.append({"centre": list(centre), "size": list(size), "corrected": [int(c) for c in corrected]})

    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"shape": list(SHAPE), "cases": cases, "crop_centres": centres}, f, indent=1)
        f.write("\n")



if __name__ == "__main__":
    main()
