"""Writes the NIfTI / DICOM reader fixtures in the format of `$MEDSSL_FIXTURES/io/`.

Usage (OUT_DIR is the fixture root; everything goes to OUT_DIR/io/, which is replaced):

    python make_io_fixtures.py OUT_DIR [--no-simpleitk]

    python make_io_fixtures.py testdata        # the repository's testdata/io/

What it writes:

* `io/nifti/`: five files copied byte for byte from nibabel's test data
  (`nibabel/tests/data`: anatomical.nii, functional.nii, example4d.nii.gz,
  reoriented_anat_moved.nii, example_nifti2.nii.gz) and `nan_slope.nii`, a 14x11x9 int16
  volume (round(400 sin(i/3) cos(j/4) + 25 (k - 4))) written with nibabel whose scl_slope
  bytes (offset 112) are then patched to NaN and scl_inter (offset 116) to 0.0.
* `io/dicom/`: five files copied byte for byte from pydicom's own test files
  (`pydicom.data.get_testdata_file`: CT_small.dcm, MR_small.dcm, MR_small_RLE.dcm,
  MR_small_bigendian.dcm, MR_small_jp2klossless.dcm; all ship inside the pydicom wheel).
* `io/ct_series_oblique/`: a synthetic 40-slice oblique CT series (64 x 64, int16, HU =
  stored - 1024, smooth analytic phantom, see `_phantom_hu`) written with pydicom: the
  j-th written file is IM{(13 + 7919 j) mod 100000:05d}.dcm, the write order is
  `np.random.default_rng(5501).permutation(40)` of the slices, files written at odd j are
  RLE Lossless (pydicom's own encoder), the others Explicit VR Little Endian; plus a
  README.txt that a series reader must skip. UIDs are `pydicom.uid.generate_uid` of fixed
  strings.
* `io/expected.json`: what a correct reader returns for every file, computed here with
  nibabel / pydicom / numpy, and cross-checked with SimpleITK when it is installed (with
  `--no-simpleitk` or without SimpleITK the cross-check blocks say `"available": false`;
  the series block then still gives `spacing`, from the DICOM geometry).

Everything is deterministic (no clocks, no unseeded randomness, UIDs derived from fixed
strings, slice positions computed with exactly rounded arithmetic): running it twice
gives identical bytes.

Against the shared `dev` set (`../shared/fixtures/io`, made by an earlier generator):
the 12 copied / nan_slope files are byte-identical; the series files hold the same pixel
values and elements, except their UIDs and Manufacturer (this script's name); every
value in expected.json is identical, only the nan_slope `source` text, the series
`generation.phantom` text and `versions` differ.

Needs (the fixture README's versions): numpy 2.4.6, nibabel 5.4.2, pydicom 3.0.2,
pylibjpeg 2.1.0 + pylibjpeg-openjpeg 2.6.0 (to decode the JPEG 2000 test file);
optionally SimpleITK 2.5.7 (cross-checks).
"""
import argparse
import hashlib
import io
import json
import math
import os
import shutil
import struct
import sys
import tempfile
from decimal import Decimal
from fractions import Fraction

import nibabel as nib
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, RLELossless, generate_uid

from fixture_common import number, versions

SCRIPT = "make_io_fixtures.py"

NIBABEL_FILES = [
    "anatomical.nii",
    "functional.nii",
    "example4d.nii.gz",
    "reoriented_anat_moved.nii",
    "example_nifti2.nii.gz",
]
PYDICOM_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_jp2klossless.dcm",
]

SCALING_RULE = (
    "nibabel: if scl_slope is 0 or not finite -> no scaling (slope 1, inter 0, scl_inter "
    "ignored); otherwise value = float64(raw) * float64(scl_slope) + float64(scl_inter)"
)
MODALITY_LUT_RULE = (
    "value = stored * RescaleSlope + RescaleIntercept when the Rescale tags are present "
    "(pydicom.pixels.apply_modality_lut); otherwise value = stored"
)
SORT_RULE = (
    "sort image files by ascending projection of ImagePositionPatient onto the slice normal "
    "N = normalize(cross(row_dir, col_dir)), row_dir = IOP[0:3], col_dir = IOP[3:6]. "
    "File-name order is wrong; InstanceNumber order happens to agree here."
)
CONVENTIONS = {
    "nifti_shape": "NIfTI index order (i, j, k[, t]) = dim[1..]; first index fastest on disk",
    "nifti_sha256": "sha256 of the float64 little-endian scaled values, NIfTI storage order "
    "(first index fastest, i.e. numpy order='F')",
    "nifti_affine": "nibabel img.affine: sform if sform_code > 0, else qform if qform_code > 0, "
    "else diag(pixdim) fallback; maps (i, j, k) to RAS+ mm",
    "dicom_shape": "[frames, rows, cols]; single-frame files have frames = 1",
    "dicom_sha256": "sha256 of the float64 little-endian modality-LUT values, row-major "
    "[frame, row, col]",
    "dicom_values": "modality LUT applied (Rescale Slope/Intercept -> HU for CT); no VOI LUT / "
    "windowing",
    "probes": "index lists are 0-based, in the same index order as 'shape'",
    "non_finite": "JSON strings 'nan'/'inf' stand for non-finite floats",
}

# ---------------------------------------------------------------------------------------
# The synthetic CT series. Geometry is given as exact decimal strings; positions and
# directions are computed in Decimal so that the DS values written are exact.
SERIES = {
    "dir": "ct_series_oblique",
    "seed": 5501,  # np.random.default_rng(seed).permutation(n_slices) = write order
    "n_slices": 40,
    "rows": 64,
    "cols": 64,
    "pixel_spacing": ["0.9", "0.75"],  # (row spacing, column spacing)
    "slice_spacing": "2.5",
    "slice_thickness": "2.5",
    "base_x": ["1", "0", "0"],
    "base_y": ["0", "1", "0"],
    # rotations applied in turn to the axial axes: (axis, cos, sin) with cos^2 + sin^2 = 1
    "rot": [["x", "0.99712", "0.07584"], ["z", "0.96", "0.28"]],
    "origin": ["-30.5", "-20.25", "-52.5"],
    "instance_order": "ascending",
    "slope": "1",
    "intercept": "-1024",
    "compress": "odd",  # files written at odd positions of the write order are RLE Lossless
    "series_number": 7,
}
# File name of the j-th written file: IM{(NAME_START + NAME_STEP * j) % 100000:05d}.dcm.
NAME_START = 13
NAME_STEP = 7919
README_TXT = (
    "This folder holds a synthetic CT series written with pydicom.\n"
    "This text file is NOT a DICOM file; a series reader must skip it.\n"
)
# Phantom, in LPS mm relative to the centre of the voxel grid (u = p - centre):
# body ellipsoid (semi-axes 21, 25, 48 mm, logistic edge of steepness 25 in the normalised
# radius) of soft tissue (40 HU) in air (-1000 HU), a smooth texture of +-25 HU inside it,
# a bone-like ellipsoid (+700 HU) and a small fat-like ellipsoid (-55 HU).
BODY_AXES = (21.0, 25.0, 48.0)
BODY_STEEPNESS = 25.0
TEXTURE = 25.0
INCLUSIONS = [
    # (HU added, steepness, centre (u mm), semi-axes (mm))
    (700.0, 18.0, (4.410815, -4.751533, 2.165976), (7.0, 6.0, 30.0)),
    (-55.0, 10.0, (-7.978733, 8.081357, -11.896878), (5.0, 4.0, 6.0)),
]
# The inclusion centres were fitted (to 1e-6 mm) so that this phantom reproduces the
# shared `dev` set's series voxel for voxel (the closest voxel lies 2.2e-7 HU from a
# rounding tie, far above last-bit differences between maths libraries); any other
# values would do for the tests.
PHANTOM_TEXT = (
    "smooth analytic CT-like phantom defined in LPS patient space (see _phantom_hu): "
    "u = LPS position - centre of the voxel grid (mm); q(c, a) = |(u - c) / a|; "
    "s(t) = 1 / (1 + exp(-t)); body = s(25 (1 - q(0, [21, 25, 48]))); "
    "HU = -1000 + (1040 + 25 sin(u_x / 6.3) cos(u_y / 7.9) sin(u_z / 11 + 0.4)) * body "
    "+ 700 s(18 (1 - q([4.410815, -4.751533, 2.165976], [7, 6, 30]))) "
    "- 55 s(10 (1 - q([-7.978733, 8.081357, -11.896878], [5, 4, 6]))); stored = round(HU) + 1024"
)


def _phantom_hu(u):
    """HU at positions `u` ([3, ...] LPS mm relative to the grid centre), float64."""

    def sig(t):
        return 1.0 / (1.0 + np.exp(-t))

    def q(centre, axes):
        return np.sqrt(sum(((u[a] - centre[a]) / axes[a]) ** 2 for a in range(3)))

    body = sig(BODY_STEEPNESS * (1.0 - q((0.0, 0.0, 0.0), BODY_AXES)))
    texture = TEXTURE * np.sin(u[0] / 6.3) * np.cos(u[1] / 7.9) * np.sin(u[2] / 11.0 + 0.4)
    hu = -1000.0 + (1040.0 + texture) * body
    for value, steep, centre, axes in INCLUSIONS:
        hu = hu + value * sig(steep * (1.0 - q(centre, axes)))
    return hu


# ---------------------------------------------------------------------------------------
# Helpers


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(path):
    with open(path, "rb") as f:
        return sha256_bytes(f.read())


def floats(values):
    return [number(v) for v in values]


def matrix(m):
    return [floats(row) for row in np.asarray(m, dtype=np.float64)]


def value_summary(values, probes, sha_key, order="C"):
    """What a reader's decoded float64 values are checked against: sum, min, max, the
    probes, the sha256 of the little-endian bytes in `order` (`sha_key` names that
    order) and the count."""
    return {
        "sum": number(values.sum()),
        "min": number(values.min()),
        "max": number(values.max()),
        "probes": probes,
        sha_key: sha256_bytes(values.astype("<f8").tobytes(order=order)),
        "count": int(values.size),
    }


def fma(a, b, c):
    """a * b + c rounded once (exact rational arithmetic): platform-independent."""
    return float(Fraction(a) * Fraction(b) + Fraction(c))


def dot3(p, n):
    """p . n as fma(p2, n2, fma(p1, n1, p0 * n0)): the same bits on every machine."""
    return fma(p[2], n[2], fma(p[1], n[1], float(p[0]) * float(n[0])))


def dec_str(d):
    """Plain decimal string of a Decimal ('-30.5', '0', '0.07584')."""
    d = d.normalize()
    if d == 0:
        return "0"
    s = format(d, "f")
    return s


def dump_json(obj):
    """JSON with indent 1; lists of scalars on one line, short matrices on one line."""

    def scalar(v):
        return json.dumps(v, allow_nan=False)

    def is_scalar(v):
        return not isinstance(v, (list, dict))

    def enc(v, level):
        pad = " " * (level + 1)
        end = " " * level
        if isinstance(v, dict):
            if not v:
                return "{}"
            items = [f"{pad}{json.dumps(k)}: {enc(x, level + 1)}" for k, x in v.items()]
            return "{\n" + ",\n".join(items) + "\n" + end + "}"
        if isinstance(v, list):
            if all(is_scalar(x) for x in v):
                return "[" + ", ".join(scalar(x) for x in v) + "]"
            if all(isinstance(x, list) and all(is_scalar(y) for y in x) for x in v):
                one = "[" + ", ".join(enc(x, level + 1) for x in v) + "]"
                if len(one) <= 150:
                    return one
            items = [pad + enc(x, level + 1) for x in v]
            return "[\n" + ",\n".join(items) + "\n" + end + "]"
        return scalar(v)

    return enc(obj, 0) + "\n"


# ---------------------------------------------------------------------------------------
# SimpleITK (optional cross-checks)


def load_sitk(enabled):
    if not enabled:
        return None
    try:
        import SimpleITK as sitk  # noqa: N813
    except ImportError:
        return None
    return sitk


def sitk_unavailable(reason):
    return {"available": False, "reason": reason}


def itk_affine_ras(img):
    """(i, j, k) -> RAS mm affine of a SimpleITK image (3-D part of a 4-D one)."""
    dim = img.GetDimension()
    direction = np.array(img.GetDirection(), dtype=np.float64).reshape(dim, dim)[:3, :3]
    spacing = np.array(img.GetSpacing(), dtype=np.float64)[:3]
    origin = np.array(img.GetOrigin(), dtype=np.float64)[:3]
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing[None, :]
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def sitk_nifti_check(sitk, path, expected_affine, shape, values_f):
    out = {"simpleitk_version": sitk.Version_VersionString(), "read_ok": True}
    try:
        img = sitk.ReadImage(path)
    except RuntimeError as e:
        first = [ln.strip() for ln in str(e).splitlines() if "ERROR" in ln]
        msg = first[0] if first else str(e).strip().splitlines()[-1]
        if "sitk::ERROR:" in msg:
            msg = msg[msg.index("sitk::ERROR:"):]
        msg = msg.replace(os.path.dirname(path) + os.sep, "")
        return {"simpleitk_version": sitk.Version_VersionString(), "read_ok": False, "error": msg}
    arr = sitk.GetArrayFromImage(img)
    arr = np.transpose(arr, tuple(range(arr.ndim - 1, -1, -1))).astype(np.float64)
    aff = itk_affine_ras(img)
    out["pixel_type"] = img.GetPixelIDTypeAsString()
    out["itk_affine_as_ras"] = matrix(aff)
    out["itk_affine_equals_expected_affine"] = bool(
        np.allclose(aff, expected_affine, rtol=1e-6, atol=1e-5)
    )
    out["shape_matches"] = list(arr.shape) == list(shape)
    ok = out["shape_matches"] and sha256_bytes(arr.tobytes(order="F")) == sha256_bytes(
        values_f.tobytes(order="F")
    )
    out["values_sha256_match"] = bool(ok)
    if out["shape_matches"] and not ok:
        d = np.abs(arr - values_f)
        out["max_abs_diff"] = number(d.max())
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(values_f != 0, d / np.abs(values_f), 0.0)
        out["max_rel_diff"] = number(rel.max())
    return out


# ---------------------------------------------------------------------------------------
# NIfTI


def make_nan_slope(path):
    i, j, k = np.meshgrid(np.arange(14), np.arange(11), np.arange(9), indexing="ij")
    data = np.round(400.0 * np.sin(i / 3) * np.cos(j / 4) + 25.0 * (k - 4)).astype(np.int16)
    affine = np.array(
        [[-1.5, 0, 0, 20], [0, 1.25, 0, -15], [0, 0, 3, -12], [0, 0, 0, 1]], dtype=np.float64
    )
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=2)
    img.header.set_xyzt_units("mm", "sec")
    buf = io.BytesIO()
    img.to_file_map({"image": nib.FileHolder(fileobj=buf)})
    b = bytearray(buf.getvalue())
    b[112:116] = struct.pack("<f", float("nan"))
    b[116:120] = struct.pack("<f", 0.0)
    with open(path, "wb") as f:
        f.write(bytes(b))


def raw_nifti_header(path):
    """Header fields parsed straight from the file bytes."""
    opener = nib.openers.Opener(path)
    with opener as f:
        raw = f.read(560)
    n2 = struct.unpack("<i", raw[:4])[0] in (540, 0x1C020000)
    if n2:
        hdr = nib.Nifti2Header(raw[:540], check=False)
        magic, ext = raw[4:8], raw[540:544]
    else:
        hdr = nib.Nifti1Header(raw[:348], check=False)
        magic, ext = raw[344:348], raw[348:352]
    h = {}
    h["sizeof_hdr"] = int(hdr["sizeof_hdr"])
    h["magic"] = magic.decode("latin-1")
    h["datatype"] = int(hdr["datatype"])
    h["bitpix"] = int(hdr["bitpix"])
    h["dim"] = [int(x) for x in hdr["dim"]]
    h["pixdim"] = floats(hdr["pixdim"])
    vox = hdr["vox_offset"]
    h["vox_offset"] = int(vox) if n2 else number(vox)
    h["scl_slope"] = number(hdr["scl_slope"])
    h["scl_inter"] = number(hdr["scl_inter"])
    for key in ("qform_code", "sform_code"):
        h[key] = int(hdr[key])
    for key in ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z"):
        h[key] = number(hdr[key])
    for key in ("srow_x", "srow_y", "srow_z"):
        h[key] = floats(hdr[key])
    h["xyzt_units"] = int(hdr["xyzt_units"])
    h["intent_code"] = int(hdr["intent_code"])
    h["cal_min"] = number(hdr["cal_min"])
    h["cal_max"] = number(hdr["cal_max"])
    h["slice_code"] = int(hdr["slice_code"])
    h["dim_info"] = int(hdr["dim_info"])
    h["extension_flag"] = list(ext)
    return h, n2, hdr.endianness


def nifti_probes(shape):
    n = len(shape)
    half = [s // 2 for s in shape]
    three_q = [3 * s // 4 for s in shape]
    small = [min(v, s - 1) for v, s in zip([1, 2, 3, 4, 5, 6, 7][:n], shape)]
    return [half, three_q, small]


def nifti_entry(io_dir, name, source, note, sitk):
    path = os.path.join(io_dir, "nifti", name)
    raw, n2, endian = raw_nifti_header(path)
    img = nib.load(path)
    hdr = img.header
    shape = [int(s) for s in img.shape]
    dtype = hdr.get_data_dtype()
    e = {"file": f"nifti/{name}"}
    e["format"] = "NIfTI-2 single file (n+2)" if n2 else "NIfTI-1 single file (n+1)"
    e["gzipped"] = name.endswith(".gz")
    e["endianness"] = "big" if endian == ">" else "little"
    e["header_raw"] = raw
    e["shape"] = shape
    e["on_disk_dtype"] = dtype.str
    e["on_disk_dtype_name"] = dtype.name
    e["datatype_code"] = raw["datatype"]
    e["data_offset_bytes"] = int(raw["vox_offset"])
    affine = np.asarray(img.affine, dtype=np.float64)
    e["affine"] = matrix(affine)
    qcode, scode = raw["qform_code"], raw["sform_code"]
    e["affine_source"] = "sform" if scode > 0 else ("qform" if qcode > 0 else "fallback")
    e["qform_code"] = qcode
    e["sform_code"] = scode
    e["qform_affine"] = matrix(hdr.get_qform())
    e["sform_affine"] = matrix(hdr.get_sform())
    e["voxel_spacing_pixdim"] = floats(hdr.get_zooms())
    e["voxel_spacing_from_affine_columns"] = floats(np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    slope, inter = raw["scl_slope"], raw["scl_inter"]
    fs = float("nan") if slope == "nan" else float(slope)
    if fs == 0 or not math.isfinite(fs):
        a_slope, a_inter = 1.0, 0.0
    else:
        a_slope, a_inter = fs, float(inter)
    e["scaling"] = {
        "raw_scl_slope": slope,
        "raw_scl_inter": inter,
        "applied_slope": a_slope,
        "applied_inter": a_inter,
        "applied": bool(a_slope != 1.0 or a_inter != 0.0),
        "rule": SCALING_RULE,
    }
    stored = np.asanyarray(img.dataobj.get_unscaled())
    values = stored.astype(np.float64) * np.float64(a_slope) + np.float64(a_inter)
    # Cross-check against nibabel's own scaled read.
    nib_values = img.get_fdata(dtype=np.float64)
    if not np.array_equal(nib_values, values):
        raise SystemExit(f"{name}: nibabel get_fdata differs from the scaling rule")
    probes = []
    for idx in nifti_probes(shape):
        world = affine @ np.array([idx[0], idx[1], idx[2], 1.0])
        probes.append(
            {
                "index": idx,
                "value": number(values[tuple(idx)]),
                "world_mm_from_affine": floats(world[:3]),
            }
        )
    e["values_after_scaling_f64"] = value_summary(values, probes, "sha256_f64le_first_index_fastest", "F")
    e["source"] = source
    e["file_sha256"] = sha256_file(path)
    if sitk is None:
        e["simpleitk_crosscheck"] = sitk_unavailable("SimpleITK not installed or --no-simpleitk")
    else:
        e["simpleitk_crosscheck"] = sitk_nifti_check(sitk, path, affine, shape, values)
    if note:
        e["note"] = note
    return e


# ---------------------------------------------------------------------------------------
# DICOM


def opt_float(ds, keyword):
    v = ds.get(keyword)
    return None if v is None or v == "" else float(v)


def opt_floats(ds, keyword):
    v = ds.get(keyword)
    return None if v is None or v == "" else [float(x) for x in v]


def dicom_entry(io_dir, name, source, sitk):
    path = os.path.join(io_dir, "dicom", name)
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    stored = arr.reshape(frames, rows, cols)
    has_rescale = "RescaleSlope" in ds and "RescaleIntercept" in ds
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    values = values.reshape(frames, rows, cols)
    if not has_rescale and not np.array_equal(values, stored.astype(np.float64)):
        raise SystemExit(f"{name}: modality LUT changed values without Rescale tags")
    ts = ds.file_meta.TransferSyntaxUID
    e = {"file": f"dicom/{name}"}
    e["transfer_syntax_uid"] = str(ts)
    e["transfer_syntax_name"] = ts.name
    e["sop_class_uid"] = str(ds.SOPClassUID)
    e["modality"] = ds.get("Modality")
    e["photometric_interpretation"] = ds.PhotometricInterpretation
    e["samples_per_pixel"] = int(ds.SamplesPerPixel)
    e["shape"] = [frames, rows, cols]
    nf = ds.get("NumberOfFrames")
    e["number_of_frames_tag"] = None if nf is None else int(nf)
    e["bits_allocated"] = int(ds.BitsAllocated)
    e["bits_stored"] = int(ds.BitsStored)
    e["high_bit"] = int(ds.HighBit)
    e["pixel_representation"] = int(ds.PixelRepresentation)
    e["stored_dtype"] = arr.dtype.name
    e["stored_min"] = int(stored.min())
    e["stored_max"] = int(stored.max())
    e["rescale_slope"] = opt_float(ds, "RescaleSlope")
    e["rescale_intercept"] = opt_float(ds, "RescaleIntercept")
    e["rescale_type"] = ds.get("RescaleType")
    e["modality_lut_applied"] = bool(has_rescale)
    e["modality_lut_rule"] = MODALITY_LUT_RULE
    e["pixel_spacing"] = opt_floats(ds, "PixelSpacing")
    e["slice_thickness"] = opt_float(ds, "SliceThickness")
    e["spacing_between_slices"] = opt_float(ds, "SpacingBetweenSlices")
    e["image_position_patient"] = opt_floats(ds, "ImagePositionPatient")
    e["image_orientation_patient"] = opt_floats(ds, "ImageOrientationPatient")
    probes = []
    probe_index = (
        [frames // 2, rows // 2, cols // 2],
        [0, rows // 3, 2 * cols // 3],
        [frames - 1, rows - 1, 0],
    )
    for idx in probe_index:
        probes.append({"index_frame_row_col": idx, "value": number(values[tuple(idx)])})
    e["values_after_modality_lut_f64"] = value_summary(values, probes, "sha256_f64le_frame_row_col")
    e["source"] = source
    e["file_sha256"] = sha256_file(path)
    if sitk is None:
        e["simpleitk_crosscheck"] = sitk_unavailable("SimpleITK not installed or --no-simpleitk")
    else:
        c = {"simpleitk_version": sitk.Version_VersionString(), "read_ok": True}
        try:
            img = sitk.ReadImage(path)
            sa = sitk.GetArrayFromImage(img).astype(np.float64).reshape(-1, rows, cols)
            c["pixel_type"] = img.GetPixelIDTypeAsString()
            c["shape_matches"] = list(sa.shape) == [frames, rows, cols]
            want = e["values_after_modality_lut_f64"]["sha256_f64le_frame_row_col"]
            c["values_sha256_match"] = bool(
                c["shape_matches"] and sha256_bytes(sa.astype("<f8").tobytes()) == want
            )
        except RuntimeError as err:
            c = {
                "simpleitk_version": sitk.Version_VersionString(),
                "read_ok": False,
                "error": str(err).strip().splitlines()[-1],
            }
        e["simpleitk_crosscheck"] = c
    return e


# ---------------------------------------------------------------------------------------
# Synthetic CT series


def series_geometry():
    """Exact (Decimal) row / column directions, normal and slice positions."""
    g = SERIES
    x = [Decimal(v) for v in g["base_x"]]
    y = [Decimal(v) for v in g["base_y"]]

    def rotate(v, axis, c, s):
        a, b, d = v
        if axis == "x":
            return [a, c * b - s * d, s * b + c * d]
        if axis == "y":
            return [c * a + s * d, b, -s * a + c * d]
        return [c * a - s * b, s * a + c * b, d]

    for axis, c, s in g["rot"]:
        c, s = Decimal(c), Decimal(s)
        x, y = rotate(x, axis, c, s), rotate(y, axis, c, s)
    n = [x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], x[0] * y[1] - x[1] * y[0]]
    origin = [Decimal(v) for v in g["origin"]]
    step = Decimal(g["slice_spacing"])
    ipps = [[origin[a] + k * step * n[a] for a in range(3)] for k in range(g["n_slices"])]
    return x, y, n, ipps


def series_volume():
    """Stored int16 volume [slice, row, col] along +N (slice 0 at the origin)."""
    g = SERIES
    x, y, n, _ = series_geometry()
    rs, cs = (float(v) for v in g["pixel_spacing"])
    step = float(g["slice_spacing"])
    rows, cols, ns = g["rows"], g["cols"], g["n_slices"]
    lin = np.stack([np.array([float(v) for v in d]) for d in (x, y, n)], axis=1)
    lin = lin * np.array([cs, rs, step])[None, :]
    origin = np.array([float(v) for v in g["origin"]])
    centre = lin @ np.array([(cols - 1) / 2, (rows - 1) / 2, (ns - 1) / 2]) + origin
    k, r, c = np.meshgrid(np.arange(ns), np.arange(rows), np.arange(cols), indexing="ij")
    idx = np.stack([c, r, k]).astype(np.float64)
    p = np.einsum("ij,j...->i...", lin, idx) + origin[:, None, None, None]
    u = p - centre[:, None, None, None]
    hu = np.round(_phantom_hu(u))
    stored = (hu - float(g["intercept"])) / float(g["slope"])
    return stored.astype(np.int16)


def write_series(io_dir):
    g = SERIES
    d = os.path.join(io_dir, g["dir"])
    os.makedirs(d)
    x, y, n, ipps = series_geometry()
    stored = series_volume()
    ns = g["n_slices"]
    order = np.random.default_rng(g["seed"]).permutation(ns)
    if g["instance_order"] != "ascending":
        raise SystemExit("only ascending instance order is implemented")
    tag = f"medssl {SCRIPT} {g['dir']}"
    study_uid = generate_uid(entropy_srcs=[tag, " study"])
    series_uid = generate_uid(entropy_srcs=[tag, " series"])
    for_uid = generate_uid(entropy_srcs=[tag, " frame of reference"])
    iop = [dec_str(v) for v in x + y]
    names = []
    for j, k in enumerate(order):
        k = int(k)
        name = f"IM{(NAME_START + NAME_STEP * j) % 100000:05d}.dcm"
        names.append(name)
        sop_uid = generate_uid(entropy_srcs=[tag, f" instance {k + 1}"])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = "20240101"
        ds.SeriesDate = "20240101"
        ds.StudyTime = "120000"
        ds.Modality = "CT"
        ds.Manufacturer = f"{SCRIPT} (synthetic)"
        ds.PatientName = "Phantom^Synthetic"
        ds.PatientID = "FIXTURE-DEV"
        ds.SliceThickness = g["slice_thickness"]
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = str(g["series_number"])
        ds.InstanceNumber = str(k + 1)
        ds.ImagePositionPatient = [dec_str(v) for v in ipps[k]]
        ds.ImageOrientationPatient = iop
        ds.FrameOfReferenceUID = for_uid
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = g["rows"]
        ds.Columns = g["cols"]
        ds.PixelSpacing = list(g["pixel_spacing"])
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.RescaleIntercept = g["intercept"]
        ds.RescaleSlope = g["slope"]
        ds.RescaleType = "HU"
        pixels = np.ascontiguousarray(stored[k])
        compress = (j % 2 == 1) if g["compress"] == "odd" else (j % 2 == 0)
        if compress:
            ds.compress(RLELossless, pixels, encoding_plugin="pydicom", generate_instance_uid=False)
        else:
            ds.PixelData = pixels.astype("<i2").tobytes()
            ds["PixelData"].VR = "OW"
        ds.save_as(os.path.join(d, name), enforce_file_format=True)
    with open(os.path.join(d, "README.txt"), "w", newline="\n") as f:
        f.write(README_TXT)
    return names


def series_entry(io_dir, sitk):
    g = SERIES
    d = os.path.join(io_dir, g["dir"])
    all_files = sorted(os.listdir(d))
    images, skipped = [], []
    for f in all_files:
        try:
            ds = pydicom.dcmread(os.path.join(d, f))
            if "PixelData" not in ds:
                raise pydicom.errors.InvalidDicomError("no pixel data")
            images.append((f, ds))
        except pydicom.errors.InvalidDicomError:
            skipped.append(f)
    ds0 = images[0][1]
    iop = np.array([float(v) for v in ds0.ImageOrientationPatient], dtype=np.float64)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    normal = normal / np.linalg.norm(normal)
    recs = []
    for f, ds in images:
        ipp = np.array([float(v) for v in ds.ImagePositionPatient], dtype=np.float64)
        recs.append((dot3(ipp, normal), f, ds, ipp))
    recs.sort(key=lambda r: r[0])
    pos = np.array([r[0] for r in recs])
    gaps = np.diff(pos)
    spacing = round(float(np.median(gaps)), 6)
    if np.abs(gaps - spacing).max() > 1e-4:
        raise SystemExit("uneven slice spacing in the synthetic series")
    slope = float(ds0.RescaleSlope)
    inter = float(ds0.RescaleIntercept)
    stored = np.stack([r[2].pixel_array for r in recs])
    volume = np.stack(
        [np.asarray(apply_modality_lut(r[2].pixel_array, r[2]), dtype=np.float64) for r in recs]
    )
    ns, rows, cols = volume.shape
    ps = [float(v) for v in ds0.PixelSpacing]
    inst = [int(r[2].InstanceNumber) for r in recs]
    e = {"dir": g["dir"]}
    e["num_files_in_dir"] = len(all_files)
    e["num_image_files"] = len(images)
    e["non_image_files_to_skip"] = skipped
    e["sort_rule"] = SORT_RULE
    if inst == sorted(inst):
        e["instance_number_order"] = "ascending along +N"
    elif inst == sorted(inst, reverse=True):
        e["instance_number_order"] = "descending along +N"
    else:
        e["instance_number_order"] = "unordered"
    e["sorted_files"] = [r[1] for r in recs]
    e["sorted_instance_numbers"] = inst
    e["shape_slice_row_col"] = [ns, rows, cols]
    e["stored_dtype"] = (
        f"{stored.dtype.name} (BitsAllocated {int(ds0.BitsAllocated)}, "
        f"BitsStored {int(ds0.BitsStored)}, PixelRepresentation {int(ds0.PixelRepresentation)})"
    )
    e["transfer_syntaxes"] = sorted({ds.file_meta.TransferSyntaxUID.name for _, ds in images})
    e["rle_compressed_files"] = sorted(
        f for f, ds in images if ds.file_meta.TransferSyntaxUID == RLELossless
    )
    e["rescale_slope"] = slope
    e["rescale_intercept"] = inter
    e["stored_min"] = int(stored.min())
    e["stored_max"] = int(stored.max())
    e["image_orientation_patient"] = floats(iop)
    e["row_direction_X"] = floats(row_dir)
    e["column_direction_Y"] = floats(col_dir)
    e["slice_normal_N"] = floats(normal)
    e["pixel_spacing_row_col"] = ps
    e["slice_thickness"] = float(ds0.SliceThickness)
    e["slice_spacing_from_ipp"] = spacing
    e["ipp_first_sorted_slice"] = floats(recs[0][3])
    e["ipp_last_sorted_slice"] = floats(recs[-1][3])
    lps = np.eye(4)
    lps[:3, 0] = row_dir * ps[1]
    lps[:3, 1] = col_dir * ps[0]
    lps[:3, 2] = normal * spacing
    lps[:3, 3] = recs[0][3]
    e["lps_geometry"] = {
        "convention": "DICOM patient coordinates (LPS: +x left, +y posterior, +z superior). Voxel index "
        "(i=col, j=row, k=sorted slice) -> LPS mm = affine_lps @ [i, j, k, 1]. Column 0 = row_dir*col "
        "spacing (PixelSpacing[1]), column 1 = col_dir*row spacing (PixelSpacing[0]), column 2 = "
        "N*slice_spacing_from_ipp, column 3 = IPP of sorted slice 0.",
        "affine_lps": matrix(lps),
        "itk_origin": floats(recs[0][3]),
        "itk_spacing": [ps[1], ps[0], spacing],
        "itk_direction_rowmajor": floats(np.stack([row_dir, col_dir, normal], axis=1).ravel()),
    }
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    e["ras_geometry"] = {
        "convention": "NIfTI / nibabel world (RAS: +x right, +y anterior, +z superior) = diag(-1,-1,1) @ "
        "LPS. affine_ras maps the same index (i=col, j=row, k=sorted slice) to RAS mm; the matching "
        "NIfTI data array is volume.transpose(2,1,0) with shape [cols, rows, slices]. This is what "
        "ITK/SimpleITK writes to NIfTI and what nibabel then reports as img.affine.",
        "affine_ras": matrix(ras),
        "nifti_shape": [cols, rows, ns],
    }
    e["per_slice"] = [
        {
            "file": r[1],
            "instance_number": int(r[2].InstanceNumber),
            "ipp": floats(r[3]),
            "position_along_N": r[0],
        }
        for r in recs
    ]
    probes = []
    for idx in ([0, rows // 2, cols // 2], [ns - 1, rows // 3, 2 * cols // 3],
                [ns // 2, rows - 1, 0]):
        k, j, i = idx
        p = lps @ np.array([i, j, k, 1.0])
        probes.append(
            {
                "index_slice_row_col": idx,
                "value": number(volume[k, j, i]),
                "lps_mm": floats(p[:3]),
                "ras_mm": floats((ras @ np.array([i, j, k, 1.0]))[:3]),
            }
        )
    e["values_after_modality_lut_f64"] = value_summary(volume, probes, "sha256_f64le_slice_row_col")
    if sitk is None:
        c = sitk_unavailable(
            "SimpleITK not installed or --no-simpleitk; spacing from the DICOM geometry above"
        )
        c["spacing"] = [ps[1], ps[0], spacing]
    else:
        c = {"available": True, "simpleitk_version": sitk.Version_VersionString()}
        reader = sitk.ImageSeriesReader()
        files = reader.GetGDCMSeriesFileNames(d)
        reader.SetFileNames(files)
        img = reader.Execute()
        sa = sitk.GetArrayFromImage(img).astype(np.float64)
        origin = np.array(img.GetOrigin())
        sp = np.array(img.GetSpacing())
        direction = np.array(img.GetDirection()).reshape(3, 3)
        c["num_files_used"] = len(files)
        c["files_in_gdcm_order"] = [os.path.basename(f) for f in files]
        c["origin"] = floats(origin)
        c["spacing"] = floats(sp)
        c["direction_rowmajor"] = floats(direction.ravel())
        same_shape = sa.shape == volume.shape
        c["array_equal_to_expected_volume"] = bool(same_shape and np.array_equal(sa, volume))
        c["array_equal_after_slice_flip"] = bool(same_shape and np.array_equal(sa[::-1], volume))
        itk_lps = np.eye(4)
        itk_lps[:3, :3] = direction * sp[None, :]
        itk_lps[:3, 3] = origin
        c["itk_index_to_lps_equals_affine_lps"] = bool(np.allclose(itk_lps, lps, rtol=0, atol=1e-6))
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "series.nii")
            sitk.WriteImage(img, out)
            nimg = nib.load(out)
            naff = np.asarray(nimg.affine, dtype=np.float64)
            ndata = np.asarray(nimg.dataobj).astype(np.float64)
        c["nibabel_affine_of_sitk_nifti"] = matrix(naff)
        c["nibabel_affine_equals_affine_ras"] = bool(np.allclose(naff, ras, rtol=0, atol=1e-5))
        c["nifti_array_equals_volume_transposed"] = bool(
            np.array_equal(ndata, volume.transpose(2, 1, 0))
        )
    e["simpleitk_crosscheck"] = c
    gen = {k: v for k, v in SERIES.items()}
    gen["phantom"] = PHANTOM_TEXT
    e["generation"] = gen
    return e


# ---------------------------------------------------------------------------------------


NIFTI_NOTES = {
    "example_nifti2.nii.gz": "NIfTI-2 (540-byte header, int64 dims, float64 pixdim/srow). "
    "A correct reader must read it.",
    "nan_slope.nii": "scl_slope is NaN: nibabel (and nifti_clib, which maps non-finite scl_slope to 0) treat it "
    "as 'no scaling'. Raw stored int16 values are returned. A reader that computes raw*slope+inter blindly "
    "returns NaN everywhere.",
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", help="fixture root; files go to OUT_DIR/io/")
    ap.add_argument("--no-simpleitk", action="store_true", help="skip the SimpleITK cross-checks")
    args = ap.parse_args()
    sitk = load_sitk(not args.no_simpleitk)
    if sitk is not None:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)

    io_dir = os.path.join(args.out_dir, "io")
    if os.path.isdir(io_dir):
        shutil.rmtree(io_dir)
    os.makedirs(os.path.join(io_dir, "nifti"))
    os.makedirs(os.path.join(io_dir, "dicom"))

    nib_dir = os.path.join(os.path.dirname(nib.__file__), "tests", "data")
    for name in NIBABEL_FILES:
        shutil.copyfile(os.path.join(nib_dir, name), os.path.join(io_dir, "nifti", name))
    make_nan_slope(os.path.join(io_dir, "nifti", "nan_slope.nii"))
    for name in PYDICOM_FILES:
        shutil.copyfile(get_testdata_file(name), os.path.join(io_dir, "dicom", name))
    write_series(io_dir)

    nv, pv = nib.__version__, pydicom.__version__
    expected = {"nifti": [], "dicom": [], "dicom_series": []}
    for name in NIBABEL_FILES + ["nan_slope.nii"]:
        if name == "nan_slope.nii":
            source = (
                f"written by {SCRIPT} with nibabel, then scl_slope bytes (offset 112) patched to NaN, "
                "scl_inter (offset 116) to 0.0"
            )
        else:
            source = f"nibabel {nv}: nibabel/tests/data/{name}"
        expected["nifti"].append(nifti_entry(io_dir, name, source, NIFTI_NOTES.get(name), sitk))
    for name in PYDICOM_FILES:
        expected["dicom"].append(dicom_entry(io_dir, name, f"pydicom {pv}: pydicom/data/test_files/{name}", sitk))
    expected["dicom_series"].append(series_entry(io_dir, sitk))
    expected["conventions"] = CONVENTIONS
    expected["versions"] = versions(uses_torch=False)
    with open(os.path.join(io_dir, "expected.json"), "w", newline="\n") as f:
        f.write(dump_json(expected))

    total = 0
    for root, _, files in os.walk(io_dir):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"wrote {io_dir} ({total / 1e6:.3f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
