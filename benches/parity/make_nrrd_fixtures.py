"""Writes the NRRD reader fixtures: `OUT_DIR/io/nrrd/` (replaced), a handful of small
NRRD files and `expected.json`, what a correct reader returns for each.

Usage:

    python make_nrrd_fixtures.py OUT_DIR [--no-simpleitk]

    python make_nrrd_fixtures.py testdata        # the repository's testdata/io/nrrd/

The files are written by this script's own few lines of NRRD writing (`write_nrrd`:
header text exactly as given in CASES, then the data raw, gzip or ascii), so that they
cover header forms a library writer would not produce: long and short space names,
`byte skip` (and -1), `line skip`, detached data, comments and `key:=value` pairs, the
old `spacings` without `space directions`, and a vector image whose non-spatial axis
comes first on disk. Gzip streams are written with mtime 0, so the bytes are
deterministic for a given zlib.

The reference values are computed from what pynrrd (pinned in requirements.txt) reads:
the array (`index_order='F'`: axis a = NRRD axis a, first index fastest) and the header
fields. medssl's order puts the three spatial axes first (in file order) and the
non-spatial axes (direction `none`, or a non-domain kind) last; `shape`, `probes` and
`sha256_f64le_first_index_fastest` are in that order. The RAS affine is built from the
header (`space directions` as columns, `space origin`; LPS negates x and y, LAS x); for a
file with only `spacings` it is ITK's reading: identity direction in LPS, origin 0, i.e.
`diag(-s0, -s1, s2)` in RAS. Every file is read again with SimpleITK (unless
`--no-simpleitk` or it is not installed): its voxel array (transposed to our order) and
its LPS geometry (turned into a RAS affine) are compared with the reference and the
agreement is recorded per case under `simpleitk`.
"""
import argparse
import gzip
import hashlib
import os
import shutil
import sys

import numpy as np

from fixture_common import number, versions, write_json

SCRIPT = "make_nrrd_fixtures.py"
PACKAGES = ["numpy", "pynrrd", "SimpleITK"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
SPACE_FLIP = {
    "ras": [1.0, 1.0, 1.0],
    "right-anterior-superior": [1.0, 1.0, 1.0],
    "las": [-1.0, 1.0, 1.0],
    "left-anterior-superior": [-1.0, 1.0, 1.0],
    "lps": [-1.0, -1.0, 1.0],
    "left-posterior-superior": [-1.0, -1.0, 1.0],
}
NUMPY_TYPES = {
    "short": np.int16,
    "int16": np.int16,
    "float": np.float32,
    "unsigned short": np.uint16,
    "int": np.int32,
    "double": np.float64,
    "uchar": np.uint8,
    "int8_t": np.int8,
}


def field(x, i, j, k, scale, offset):
    """A smooth deterministic pattern, different per case."""
    return offset + scale * (np.sin(0.37 * i + 0.1 * x) * np.cos(0.29 * j) + 0.05 * (k - 3) * (i - j))


def volume(sizes_xyz, dtype, x, scale, offset, seed):
    """An (i, j, k) array (numpy axis 0 = i) of the pattern plus small noise, cast to dtype."""
    i, j, k = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in sizes_xyz], indexing="ij")
    rng = np.random.default_rng(seed)
    v = field(x, i, j, k, scale, offset) + rng.normal(0.0, scale * 0.01, size=i.shape)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        v = np.clip(np.round(v), info.min, info.max)
    return v.astype(dtype)


# Each case: file name, header lines after the magic (data-dependent `sizes` included
# as written), how the data are stored, and the array in NRRD axis order (numpy axis a =
# NRRD axis a).
def cases():
    out = []

    a = volume((20, 16, 12), np.int16, 0.0, 900.0, -200.0, 7101)
    out.append({
        "file": "lps_oblique_int16.nrrd",
        "what": "raw little-endian int16, long space name, oblique anisotropic directions, "
        "origin, a comment and a key:=value pair",
        "magic": "NRRD0004",
        "header": [
            "# Complete NRRD file format specification at:",
            "# http://teem.sourceforge.net/nrrd/format.html",
            "type: short",
            "dimension: 3",
            "space: left-posterior-superior",
            "sizes: 20 16 12",
            "space directions: (0.9659258262890683,0.25881904510252074,0) "
            "(-0.2588190451,0.9659258263,0.0) (0,0,2.5)",
            "kinds: domain domain domain",
            "endian: little",
            "encoding: raw",
            "space origin: (-41.5,17.25,-60.125)",
            "medssl_note:=written by make_nrrd_fixtures.py",
        ],
        "array": a,
        "store": {"encoding": "raw", "endian": "little"},
    })

    b = volume((16, 14, 10), np.float32, 1.0, 3.5, 0.25, 7102)
    out.append({
        "file": "ras_gzip_float32.nrrd",
        "what": "gzip float32, space RAS, permuted axes (axis 0 runs along S)",
        "magic": "NRRD0005",
        "header": [
            "type: float",
            "dimension: 3",
            "space: RAS",
            "sizes: 16 14 10",
            "space directions: (0,0,1.25) (0.8,0,0) (0,-0.8,0)",
            "kinds: space space space",
            "endian: little",
            "encoding: gzip",
            "space origin: (10,-20,30.5)",
        ],
        "array": b,
        "store": {"encoding": "gzip", "endian": "little"},
    })

    c = volume((18, 12, 9), np.uint16, 2.0, 1500.0, 2000.0, 7103)
    out.append({
        "file": "big_endian_uint16.nrrd",
        "what": "raw big-endian uint16, space left-anterior-superior, one line and 6 bytes "
        "skipped before the data",
        "magic": "NRRD0004",
        "header": [
            "type: unsigned short",
            "dimension: 3",
            "space: left-anterior-superior",
            "sizes: 18 12 9",
            "space directions: (1.5,0,0) (0,1.5,0) (0,0,3)",
            "endian: big",
            "encoding: raw",
            "line skip: 1",
            "byte skip: 6",
            "space origin: (0,0,0)",
        ],
        "array": c,
        "store": {"encoding": "raw", "endian": "big", "prefix": b"skipped line\nSKIPME"},
    })
    # byte skip 6 skips "SKIPME" (6 bytes) after the skipped line.

    d = volume((12, 10, 8), np.int32, 3.0, 40000.0, -5000.0, 7104)
    out.append({
        "file": "detached.nhdr",
        "data_file": "detached.raw",
        "what": "detached header + raw int32 data file with 64 leading bytes, byte skip -1",
        "magic": "NRRD0004",
        "header": [
            "type: int",
            "dimension: 3",
            "space: LPS",
            "sizes: 12 10 8",
            "space directions: (0.7,0,0) (0,0.7,0) (0,0,1.8)",
            "kinds: domain domain domain",
            "endian: little",
            "encoding: raw",
            "byte skip: -1",
            "space origin: (-3.5,-2,7)",
            "data file: detached.raw",
        ],
        "array": d,
        "store": {"encoding": "raw", "endian": "little", "prefix": bytes(range(64))},
    })

    e = np.stack(
        [volume((10, 9, 6), np.float32, 4.0 + c, 1.0 + c, 0.5 * c, 7105 + c) for c in range(3)]
    )  # (c, i, j, k): the vector axis first on disk
    out.append({
        "file": "vector_first_axis.nrrd",
        "what": "4-D gzip float32 vector image, the 3-component axis first on disk "
        "(kinds vector domain domain domain, direction none)",
        "magic": "NRRD0004",
        "header": [
            "type: float",
            "dimension: 4",
            "space: left-posterior-superior",
            "sizes: 3 10 9 6",
            "space directions: none (1.1,0,0) (0,1.2,0) (0,0.1,2.0)",
            "kinds: vector domain domain domain",
            "endian: little",
            "encoding: gzip",
            "space origin: (5,6,-7)",
        ],
        "array": e,
        "store": {"encoding": "gzip", "endian": "little"},
    })

    f = np.stack(
        [volume((9, 8, 5), np.int16, 5.0 + c, 300.0, 10.0 * c, 7110 + c) for c in range(2)],
        axis=-1,
    )  # (i, j, k, c): the list axis last on disk
    out.append({
        "file": "list_last_axis.nrrd",
        "what": "4-D gzip big-endian int16 with a list axis last on disk (no reordering)",
        "magic": "NRRD0004",
        "header": [
            "type: int16",
            "dimension: 4",
            "space: RAS",
            "sizes: 9 8 5 2",
            "space directions: (-1,0,0) (0,-1,0) (0,0,1.5) none",
            "kinds: domain domain domain list",
            "endian: big",
            "encoding: gz",
            "space origin: (1,2,3)",
        ],
        "array": f,
        "store": {"encoding": "gzip", "endian": "big"},
    })

    g = volume((8, 6, 5), np.uint8, 6.0, 100.0, 120.0, 7120)
    out.append({
        "file": "spacings_ascii.nrrd",
        "what": "old-style: spacings only (no space, no directions, no origin), NRRD0001, "
        "ascii uchar",
        "magic": "NRRD0001",
        "header": [
            "type: uchar",
            "dimension: 3",
            "sizes: 8 6 5",
            "spacings: 0.9 1.1 2.5",
            "encoding: ascii",
        ],
        "array": g,
        "store": {"encoding": "ascii"},
    })
    return out


def encode(array, store):
    """The data bytes of `array` (NRRD axis 0 fastest) as `store` says."""
    flat = array.ravel(order="F")
    if store["encoding"] == "ascii":
        lines = []
        for start in range(0, flat.size, 8):
            lines.append(" ".join(str(x) for x in flat[start:start + 8].tolist()))
        return ("\n".join(lines) + "\n").encode()
    dtype = flat.dtype.newbyteorder("<" if store["endian"] == "little" else ">")
    raw = flat.astype(dtype).tobytes()
    if store["encoding"] == "gzip":
        return gzip.compress(raw, compresslevel=9, mtime=0)
    return raw


def write_case(folder, case):
    header = (case["magic"] + "\n" + "\n".join(case["header"]) + "\n").encode()
    data = case["store"].get("prefix", b"") + encode(case["array"], case["store"])
    if "data_file" in case:
        with open(os.path.join(folder, case["file"]), "wb") as fh:
            fh.write(header)
        with open(os.path.join(folder, case["data_file"]), "wb") as fh:
            fh.write(data)
    else:
        with open(os.path.join(folder, case["file"]), "wb") as fh:
            fh.write(header + b"\n" + data)


def ras_affine(header, spatial):
    """RAS affine from a pynrrd header dict and the spatial NRRD axes."""
    if "space directions" in header:
        flip = np.array(SPACE_FLIP[header["space"].lower()])
        dirs = np.asarray(header["space directions"], dtype=np.float64)
        affine = np.eye(4)
        for o, a in enumerate(spatial):
            affine[:3, o] = flip * dirs[a]
        origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
        affine[:3, 3] = flip * origin
        return affine, "space directions"
    spacings = np.asarray(header["spacings"], dtype=np.float64)
    s = [spacings[a] for a in spatial]
    return np.diag([-s[0], -s[1], s[2], 1.0]), "spacings (ITK: LPS axis-aligned, origin 0)"


def spatial_axes(header, ndim):
    if "space directions" in header:
        dirs = np.asarray(header["space directions"], dtype=np.float64)
        return [a for a in range(ndim) if not np.isnan(dirs[a]).any()]
    kinds = header.get("kinds", ["domain"] * ndim)
    return [a for a in range(ndim) if kinds[a] in ("domain", "space", "time")][:3]


def sha256_f64(values_f_order):
    return hashlib.sha256(values_f_order.astype("<f8").tobytes()).hexdigest()


def reference(path, case):
    import nrrd

    data, header = nrrd.read(path, index_order="F")
    assert data.shape == case["array"].shape, (path, data.shape)
    assert np.array_equal(data, case["array"]), path
    ndim = data.ndim
    spatial = spatial_axes(header, ndim)
    others = [a for a in range(ndim) if a not in spatial]
    ours = np.transpose(data, spatial + others)  # our index order, numpy axis 0 = i
    affine, source = ras_affine(header, spatial)
    values = ours.astype(np.float64)
    flat = values.ravel(order="F")
    probes = []
    shape = list(ours.shape)
    picks = [
        [0] * ndim,
        [n - 1 for n in shape],
        [n // 2 for n in shape],
        [min(1, shape[0] - 1), shape[1] - 1, 0] + [shape[a] - 1 for a in range(3, ndim)],
        [shape[0] - 1, 0, shape[2] // 3] + [0 for _ in range(3, ndim)],
    ]
    for index in picks:
        world = affine @ np.array([index[0], index[1], index[2], 1.0])
        probes.append({
            "index": index,
            "value": number(values[tuple(index)]),
            "world_mm_from_affine": [number(x) for x in world[:3]],
        })
    finite = np.isfinite(flat)
    entry = {
        "file": case["file"],
        "what": case["what"],
        "header": {
            "magic": case["magic"],
            "type": header["type"],
            "encoding": header["encoding"],
            "endian": header.get("endian"),
            "sizes": [int(x) for x in header["sizes"]],
            "space": header.get("space"),
            "kinds": header.get("kinds"),
            "data_file": case.get("data_file"),
        },
        "shape": shape,
        "spatial_file_axes": spatial,
        "channel_file_axes": others,
        "on_disk_dtype_name": np.dtype(data.dtype).newbyteorder("=").name,
        "affine": [[number(x) for x in row] for row in affine],
        "affine_source": source,
        "values_f64": {
            "count": int(flat.size),
            "non_finite": int((~finite).sum()),
            "sum": number(flat[finite].sum()),
            "min": number(flat[finite].min()),
            "max": number(flat[finite].max()),
            "probes": probes,
            "sha256_f64le_first_index_fastest": sha256_f64(flat),
        },
    }
    return entry, values, affine


def simpleitk_check(path, values, affine):
    try:
        import SimpleITK as sitk
    except ImportError:
        return {"available": False}
    img = sitk.ReadImage(path)
    arr = sitk.GetArrayFromImage(img)  # [z, y, x] or [z, y, x, c]
    ours = np.transpose(arr, (2, 1, 0) + tuple(range(3, arr.ndim))).astype(np.float64)
    if ours.ndim == 3 and values.ndim == 4 and values.shape[3] == 1:
        ours = ours[..., None]
    same_shape = list(ours.shape) == list(values.shape)
    direction = np.array(img.GetDirection()).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    return {
        "available": True,
        "version": sitk.Version_VersionString(),
        "shape_xyz_c": list(ours.shape),
        "pixel_type": img.GetPixelIDTypeAsString(),
        "components_per_pixel": img.GetNumberOfComponentsPerPixel(),
        "values_equal": bool(same_shape and np.array_equal(ours, values)),
        "affine_max_abs_diff": number(np.abs(ras - affine).max()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--no-simpleitk", action="store_true")
    args = parser.parse_args()
    folder = os.path.join(args.out_dir, "io", "nrrd")
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    entries = []
    for case in cases():
        write_case(folder, case)
        path = os.path.join(folder, case["file"])
        entry, values, affine = reference(path, case)
        entry["simpleitk"] = (
            {"available": False} if args.no_simpleitk else simpleitk_check(path, values, affine)
        )
        entries.append(entry)
    doc = {
        "generator": SCRIPT,
        "versions": versions(packages=PACKAGES, uses_torch=False),
        "conventions": {
            "shape": "medssl order: the three spatial NRRD axes in file order, then the "
            "non-spatial (channel) axes; first index fastest",
            "sha256": "sha256 of the float64 little-endian values in that order (numpy "
            "order='F' of the array shaped 'shape')",
            "affine": "voxel index (i, j, k) of the spatial axes to RAS+ mm; LPS negates x "
            "and y, LAS x; spacings-only files: ITK's identity LPS direction, origin 0",
            "probes": "0-based indices in 'shape' order",
            "simpleitk": "SimpleITK.ReadImage of the same file: values_equal compares its "
            "array (transposed to our order) exactly; affine_max_abs_diff is against the "
            "reference RAS affine",
            "non_finite": "JSON strings 'nan'/'inf' stand for non-finite floats",
        },
        "cases": entries,
    }
    write_json(os.path.join(folder, "expected.json"), doc)
    total = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    for e in entries:
        s = e["simpleitk"]
        print(f"{e['file']}: shape {e['shape']} {e['on_disk_dtype_name']}; SimpleITK "
              f"values_equal={s.get('values_equal')} affine diff={s.get('affine_max_abs_diff')}")
    print(f"{folder}: {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
