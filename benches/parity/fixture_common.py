"""What the fixture generators in this folder share: the `versions` block every fixture
JSON carries and the strict JSON they are written in. The generators run as
`python benches/parity/make_X.py`, so they import this module as a sibling.
"""
import importlib.metadata
import json
import math
import platform

# Packages of the fixture generators' environment, reported in every JSON (`versions`).
VERSION_PACKAGES = [
    "torch", "monai", "numpy", "scipy", "safetensors", "einops", "nibabel", "pydicom",
    "pydicom-data", "pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle",
    "SimpleITK", "nilearn", "dipy",
]


def installed_version(name):
    """A package's version, or None when it is not installed (so optional ones show as null)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(packages=VERSION_PACKAGES, uses_torch=True, version=installed_version):
    """The environment a fixture was made in, so a changed value can be traced to an
    upgrade. `version` reads one package's version; `torch_num_threads` is null for a
    generator that does not use torch."""
    out = {"python": platform.python_version()}
    for name in packages:
        out[name] = version(name)
    if uses_torch:
        import torch

        out["torch_num_threads"] = torch.get_num_threads()
    else:
        out["torch_num_threads"] = None
    out["device"] = "cpu"
    return out


def number(x):
    """A float for strict JSON: non-finite values as the strings 'nan' / 'inf' / '-inf'."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _has_dict(v):
    return isinstance(v, dict) or (isinstance(v, list) and any(_has_dict(x) for x in v))


def to_json(obj, level=0):
    """Strict JSON (NaN / Infinity refused), one-space indent; lists without objects
    inside stay on one line, which keeps long value lists readable and diffs small."""
    pad = " " * (level + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [pad + json.dumps(k) + ": " + to_json(v, level + 1) for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * level + "}"
    if isinstance(obj, list) and _has_dict(obj):
        return "[\n" + ",\n".join(pad + to_json(v, level + 1) for v in obj) + "\n" + " " * level + "]"
    return json.dumps(obj, allow_nan=False)


def write_json(path, obj):
    """`obj` as `to_json` text, newline-terminated."""
    with open(path, "w") as f:
        f.write(to_json(obj) + "\n")
