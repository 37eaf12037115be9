"""Write the encoder (the `swinViT.*` tensors) of a SwinUNETR safetensors file as a file
of its own, so that a fine-tune can start from that encoder with a fresh decoder, as it
does from a pretrained one. Usage: encoder_only.py IN OUT"""

import sys

import safetensors_file


def main():
    source, target = sys.argv[1], sys.argv[2]
    header, body = safetensors_file.read(source)
    names = [name for name in header if name.startswith("swinViT.")]
    if not names:
        sys.exit(f"{source}: no swinViT.* tensors")
    safetensors_file.write(target, header, body, names)


if __name__ == "__main__":
    main()
