"""Deterministic abdominal-CT-like volumes for the data-pipeline benchmark.

Writes DIR/imagesTr/case_NNN.nii.gz (int16 HU) and DIR/labelsTr/case_NNN.nii.gz (uint8:
0 background, 1 liver, 2 kidneys), 512 x 512 x (112..127) voxels of 0.75 x 0.75 x 2.5 mm
stored LPS (the first two axes run towards patient left and posterior, as DICOM-derived
CT usually is), so reorienting to RAS really flips two axes. Each case is a body
ellipse of fat and muscle in air, with liver, kidneys, spine, aorta and noise; the seed
is the case index, so every run writes the same files. Existing files are kept.

Usage: make_volumes.py DIR [--cases 6]
"""

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np

SIZE = 512
SPACING = (0.75, 0.75, 2.5)


def ellipsoid(x, y, z, centre, radii):
    """Boolean mask of the ellipsoid with the given centre and semi-axes (mm)."""
    return (
        ((x - centre[0]) / radii[0]) ** 2
        + ((y - centre[1]) / radii[1]) ** 2
        + ((z - centre[2]) / radii[2]) ** 2
    ) <= 1.0


def make_case(index):
    rng = np.random.default_rng(index)
    depth = 112 + int(rng.integers(0, 16))
    # World coordinates (mm, RAS: +x is patient right) of the voxel centres; axes 0/1 run
    # towards -x/-y (LPS).
    half = (SIZE - 1) * SPACING[0] / 2
    x = (half - np.arange(SIZE, dtype=np.float32) * SPACING[0])[:, None, None]
    y = (half - np.arange(SIZE, dtype=np.float32) * SPACING[1])[None, :, None]
    z = (np.arange(depth, dtype=np.float32) * SPACING[2] - depth * SPACING[2] / 2)[None, None, :]

    ax, ay = 165 + rng.uniform(-10, 10), 120 + rng.uniform(-8, 8)
    image = np.full((SIZE, SIZE, depth), -1000.0, dtype=np.float32)
    body = (x / ax) ** 2 + (y / ay) ** 2 <= 1.0
    muscle = (x / (ax - 18)) ** 2 + (y / (ay - 16)) ** 2 <= 1.0
    image = np.where(body, -100.0, image)
    image = np.where(body & muscle, 45.0, image)

    label = np.zeros((SIZE, SIZE, depth), dtype=np.uint8)
    liver_c = (60 + rng.uniform(-8, 8), 15 + rng.uniform(-8, 8), 40 + rng.uniform(-20, 20))
    liver = ellipsoid(x, y, z, liver_c, (75, 60, 90))
    image = np.where(liver, 60.0, image)
    label[liver] = 1
    for side in (-1, 1):
        kc = (side * 65 + rng.uniform(-5, 5), -55 + rng.uniform(-5, 5), rng.uniform(-20, 0))
        kidney = ellipsoid(x, y, z, kc, (28, 22, 55))
        image = np.where(kidney, 160.0, image)
        label[kidney] = 2
    spine = (x / 18) ** 2 + ((y + 85) / 16) ** 2 <= 1.0
    image = np.where(spine & body, 700.0, image)
    aorta = ((x + 15) / 11) ** 2 + ((y + 55) / 11) ** 2 <= 1.0
    image = np.where(aorta & body, 200.0, image)
    image += rng.normal(0.0, 12.0, image.shape).astype(np.float32)

    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    affine[:3, 3] = [half, half, -depth * SPACING[2] / 2]
    return np.round(image).astype(np.int16), label, affine


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--cases", type=int, default=6)
    args = parser.parse_args()
    for sub in ("imagesTr", "labelsTr"):
        (args.dir / sub).mkdir(parents=True, exist_ok=True)
    for index in range(args.cases):
        name = f"case_{index:03d}.nii.gz"
        paths = [args.dir / "imagesTr" / name, args.dir / "labelsTr" / name]
        if all(p.exists() for p in paths):
            continue
        image, label, affine = make_case(index)
        for path, data in zip(paths, (image, label)):
            img = nib.Nifti1Image(data, affine)
            img.header.set_xyzt_units("mm", "sec")
            tmp = path.with_name(path.name.replace(".nii.gz", ".tmp.nii.gz"))
            nib.save(img, tmp)
            tmp.rename(path)
        print(f"wrote {paths[0]} ({image.shape}, labels {np.bincount(label.ravel()).tolist()})")


if __name__ == "__main__":
    main()
