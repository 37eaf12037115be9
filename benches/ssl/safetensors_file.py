"""Reading and writing safetensors files with the standard library only (the benchmark
scripts run with a bare Python): the header, the raw bytes of each tensor, float32
tensors as arrays."""

import array
import json
import os
import struct


def read(path):
    """The header (name → dtype, shape, data_offsets) and the data section of `path`."""
    with open(path, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    header.pop("__metadata__", None)
    return header, raw[8 + length :]


def float32(path, prefix=""):
    """The float32 tensors of `path` whose names start with `prefix`, flattened."""
    header, body = read(path)
    tensors = {}
    for name, info in header.items():
        if name.startswith(prefix) and info["dtype"] == "F32":
            start, end = info["data_offsets"]
            tensors[name] = array.array("f", body[start:end])
    return tensors


def write(path, header, body, names):
    """Writes the tensors `names` of (`header`, `body`) to `path`, atomically."""
    kept, chunks, offset = {}, [], 0
    for name in sorted(names):
        info = header[name]
        start, end = info["data_offsets"]
        chunks.append(body[start:end])
        kept[name] = {"dtype": info["dtype"], "shape": info["shape"], "data_offsets": [offset, offset + end - start]}
        offset += end - start
    text = json.dumps(kept).encode()
    text += b" " * (-len(text) % 8)
    partial = path + ".partial"
    with open(partial, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    os.replace(partial, path)
