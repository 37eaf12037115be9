"""Writes an extra SwinUNETR parity case in the fixture format (`<case>.safetensors` with
MONAI weights, `__input__`, `__output__`, `__hidden_i__`, and `<case>.json`), so
`MEDSSL_FIXTURES=DIR cargo test fixture_swinunetr` checks another configuration.

Usage: python make_swinunetr_case.py OUT_DIR CASE --feature-size 24 --window 7
           --size 64 [--use-v2] [--depths 2,2,2,2] [--heads 3,6,12,24] [--in 1] [--out 3]
"""
import argparse
import json
import os

import monai
import torch
from monai.networks.nets import SwinUNETR
from safetensors.torch import save_file

p = argparse.ArgumentParser()
p.add_argument("out_dir")
p.add_argument("case")
p.add_argument("--feature-size", type=int, default=24)
p.add_argument("--window", type=int, default=7)
p.add_argument("--size", default="64")
p.add_argument("--use-v2", action="store_true")
p.add_argument("--depths", default="2,2,2,2")
p.add_argument("--heads", default="3,6,12,24")
p.add_argument("--in", dest="cin", type=int, default=1)
p.add_argument("--out", dest="cout", type=int, default=3)
p.add_argument("--seed", type=int, default=7)
a = p.parse_args()
torch.set_num_threads(2)
torch.manual_seed(a.seed)
depths = [int(v) for v in a.depths.split(",")]
heads = [int(v) for v in a.heads.split(",")]
size = [int(v) for v in a.size.split(",")]
if len(size) == 1:
    size = size * 3
model = SwinUNETR(
    in_channels=a.cin, out_channels=a.cout, feature_size=a.feature_size, depths=depths,
    num_heads=heads, window_size=a.window, use_v2=a.use_v2, normalize=True,
)
with torch.no_grad():
    g = torch.Generator().manual_seed(a.seed + 1)
    for _, param in model.named_parameters():
        param += 0.02 * torch.randn(param.shape, generator=g)
model.eval()
x = torch.randn([1, a.cin] + size, generator=torch.Generator().manual_seed(a.seed + 2))
with torch.no_grad():
    out = model(x)
    hidden = model.swinViT(x, normalize=True)
tensors = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("relative_position_index")}
num_params = len(tensors)
tensors["__input__"] = x
tensors["__output__"] = out
for i, h in enumerate(hidden):
    tensors[f"__hidden_{i}__"] = h.contiguous()
os.makedirs(os.path.join(a.out_dir, "swinunetr"), exist_ok=True)
save_file(tensors, os.path.join(a.out_dir, "swinunetr", f"{a.case}.safetensors"))
meta = {
    "case": a.case, "model": "monai.networks.nets.SwinUNETR", "in_channels": a.cin,
    "out_channels": a.cout, "feature_size": a.feature_size, "depths": depths, "num_heads": heads,
    "window_size": a.window, "patch_size": 2, "use_v2": a.use_v2, "normalize": True,
    "qkv_bias": True, "mlp_ratio": 4.0, "num_parameter_tensors": num_params,
    "input_shape": list(x.shape),
    "skipped_buffers": [k for k in model.state_dict() if k.endswith("relative_position_index")], "monai_version": monai.__version__, "torch_version": torch.__version__,
}
with open(os.path.join(a.out_dir, "swinunetr", f"{a.case}.json"), "w") as f:
    json.dump(meta, f, indent=1)
print("wrote", a.case)
