"""Write the encoder (the `swinViT.*` tensors) of a SwinUNETR safetensors file as a file
of its own, so that a fine-tune can start from that encoder with a fresh decoder, as it
does from a pretrained one. Usage: encoder_only.py IN OUT"""

import json
import os
import struct
import sys


def main():
    source, target = sys.argv[1], sys.argv[2]
    with open(source, "rb") as f:
        raw = f.read()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    body = raw[8 + length :]
    kept, chunks, offset = {}, [], 0
    for name in sorted(header):
        if not name.startswith("swinViT."):
            continue
        info = header[name]
        start, end = info["data_offsets"]
        chunks.append(body[start:end])
        kept[name] = {"dtype": info["dtype"], "shape": info["shape"], "data_offsets": [offset, offset + end - start]}
        offset += end - start
    if not kept:
        sys.exit(f"{source}: no swinViT.* tensors")
    text = json.dumps(kept).encode()
    text += b" " * (-len(text) % 8)
    partial = target + ".partial"
    with open(partial, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    os.replace(partial, target)


if __name__ == "__main__":
    main()
