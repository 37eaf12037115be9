"""Writes the public-checkpoint import cases under crates/medssl-model/tests/data/import:
one checkpoint file per public layout (gzip-compressed) and `cases.json`, which holds
for each the architecture, the tensors MONAI's own loader puts into a SwinUNETR
(name, shape, SHA-256 of the little-endian float32 bytes) and the keys it leaves out.

Layouts:
- `tang`: Tang et al.'s released `model_swinvit.pt` ({"state_dict": {"module.patch_embed...",
  "module.layers1.0.blocks.0.mlp.fc1.weight", ...}} plus the SSL heads of their
  pretraining network). Reference: MONAI `SwinUNETR.load_from`.
- `monai_ssl`: MONAI's `ssl_pretrained_weights.pth` ({"model": {"encoder.patch_embed...",
  "encoder.layers1.0.0.blocks...", "encoder.mask_token", "encoder.norm.*",
  "out.conv.conv.*"}}). Reference: MONAI `copy_model_state(..., filter_func=filter_swinunetr)`.
- `smit`: the SMIT repository's pretrained encoder (a flat state dict of its
  `SwinTransformer_Unetr` with DataParallel `module.` prefixes: `patch_embed.proj`,
  `patch_embed.norm`, `layers.{i}.blocks.{j}` with `mlp.fc1/fc2` and no qkv bias,
  `layers.{i}.downsample`, learned output norms `norm{i}`, the student's `mask_token`).
  SMIT's fine-tuning loader strips `module.` and calls `load_state_dict(strict=False)`.
  Its Swin equals MONAI's block for block, except that its patch merging concatenates
  the eight sub-grids in another order (offsets (d,h,w): 000,100,010,001,110,011,101,111
  against MONAI's 000,100,010,001,110,101,011,111), so the merging weights are permuted
  by chunk; this script checks that permutation against MONAI's PatchMerging on random
  input. SMIT's patch-embedding norm and learned output norms have no counterpart in
  MONAI's SwinUNETR (its stage outputs use a parameter-free layer norm).

Tensor values follow a short periodic pattern, distinct per tensor, so the files
compress to kilobytes at feature size 48; any misplaced or mis-ordered tensor changes a
checksum all the same.

Usage: python make_import_cases.py OUT_DIR   (torch 2.15, monai 1.6.1)
"""
import gzip
import hashlib
import io
import json
import sys

import torch
from monai.networks.nets import SwinUNETR
from monai.networks.nets.swin_unetr import PatchMerging, filter_swinunetr
from monai.networks.utils import copy_model_state

out = sys.argv[1]
torch.manual_seed(0)

MONAI_ORDER = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]
SMIT_ORDER = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1), (1, 1, 1)]


def pattern(shape, index):
    """Values with period 251 along the flattened tensor, offset per tensor index."""
    n = 1
    for s in shape:
        n *= s
    base = (torch.arange(n, dtype=torch.float64) % 251 - 125) / 251.0
    return (base * (1.0 + index / 97.0) + index / 1000.0).float().reshape(shape)


def patterned(state):
    return {k: (pattern(v.shape, i) if v.is_floating_point() else v.clone()) for i, (k, v) in enumerate(state.items())}


def digest(t):
    return hashlib.sha256(t.detach().contiguous().float().numpy().tobytes()).hexdigest()


def reference(model):
    """The encoder parameters MONAI holds after loading (buffers left out)."""
    params = dict(model.named_parameters())
    return {
        k: {"shape": list(v.shape), "sha256": digest(v)}
        for k, v in sorted(params.items())
        if k.startswith("swinViT.")
    }


def write_gz(obj, name):
    buf = io.BytesIO()
    torch.save(obj, buf)
    with gzip.GzipFile(f"{out}/{name}", "wb", mtime=0) as f:
        f.write(buf.getvalue())


def merge_permutation():
    """For each MONAI chunk position, the SMIT chunk holding the same sub-grid."""
    return [SMIT_ORDER.index(o) for o in MONAI_ORDER]


def check_merge_permutation(dim=4):
    """SMIT's merging with its weights equals MONAI's PatchMerging with permuted weights."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 6, 8, dim, generator=g)
    w = torch.randn(2 * dim, 8 * dim, generator=g)
    gamma, beta = torch.randn(8 * dim, generator=g), torch.randn(8 * dim, generator=g)
    parts = [x[:, d::2, h::2, ww::2, :] for d, h, ww in SMIT_ORDER]
    smit = torch.nn.functional.layer_norm(torch.cat(parts, -1), (8 * dim,), gamma, beta) @ w.T
    perm = merge_permutation()
    chunks = lambda t: [t[..., j * dim:(j + 1) * dim] for j in range(8)]
    monai = PatchMerging(dim=dim, spatial_dims=3)
    with torch.no_grad():
        monai.reduction.weight.copy_(torch.cat([chunks(w)[j] for j in perm], -1))
        monai.norm.weight.copy_(torch.cat([chunks(gamma)[j] for j in perm]))
        monai.norm.bias.copy_(torch.cat([chunks(beta)[j] for j in perm]))
        got = monai(x)
    assert torch.allclose(got, smit, atol=1e-5), (got - smit).abs().max()


cases = []

# Tang et al.: the full-size network of their release.
arch = dict(in_channels=1, feature_size=48, depths=[2, 2, 2, 2], num_heads=[3, 6, 12, 24], window_size=7, qkv_bias=True)
net = SwinUNETR(in_channels=1, out_channels=14, feature_size=48)
enc = patterned(net.swinViT.state_dict())
tang = {}
for k, v in enc.items():
    k = k.replace("mlp.linear1", "mlp.fc1").replace("mlp.linear2", "mlp.fc2")
    tang[f"module.{k}"] = v
heads = {
    "module.rotation_head.weight": (4, 768),
    "module.rotation_head.bias": (4,),
    "module.contrastive_head.weight": (512, 768),
    "module.contrastive_head.bias": (512,),
    "module.conv.0.weight": (384, 768, 3, 3, 3),
    "module.conv.0.bias": (384,),
}
for i, (k, shape) in enumerate(heads.items()):
    tang[k] = pattern(shape, 500 + i)
ckpt = {"state_dict": tang, "epoch": 100}
target = SwinUNETR(in_channels=1, out_channels=14, feature_size=48)
target.load_from(ckpt)
cases.append({
    "name": "tang_model_swinvit_fs48",
    "layout": "tang",
    "file": "tang_model_swinvit_fs48.pt.gz",
    "loader": "monai.networks.nets.SwinUNETR.load_from",
    "architecture": arch,
    "left_out": sorted(heads),
    "unused": [],
    "expected": reference(target),
})
write_gz(ckpt, "tang_model_swinvit_fs48.pt.gz")

# MONAI's SSL weights, at feature size 24 to stay small.
arch = dict(in_channels=1, feature_size=24, depths=[2, 2, 2, 2], num_heads=[3, 6, 12, 24], window_size=7, qkv_bias=True)
net = SwinUNETR(in_channels=1, out_channels=3, feature_size=24)
enc = patterned(net.swinViT.state_dict())
ssl = {}
for k, v in enc.items():
    if k.startswith("layers"):
        stage, rest = k.split(".0.", 1)
        k = f"{stage}.0.0.{rest}"
    ssl[f"encoder.{k}"] = v
extra = {
    "encoder.mask_token": (1, 1, 24),
    "encoder.norm.weight": (384,),
    "encoder.norm.bias": (384,),
    "out.conv.conv.weight": (1, 24, 1, 1, 1),
    "out.conv.conv.bias": (1,),
}
for i, (k, shape) in enumerate(extra.items()):
    ssl[k] = pattern(shape, 600 + i)
ckpt = {"model": ssl, "epoch": 10}
target = SwinUNETR(in_channels=1, out_channels=3, feature_size=24)
state, loaded, _ = copy_model_state(target, ssl, filter_func=filter_swinunetr)
missing = [k for k in reference(target) if k not in loaded and not k.endswith("relative_position_index")]
assert not missing, missing
cases.append({
    "name": "monai_ssl_pretrained_fs24",
    "layout": "monai_ssl",
    "file": "monai_ssl_pretrained_fs24.pth.gz",
    "loader": "monai.networks.utils.copy_model_state(filter_func=filter_swinunetr)",
    "architecture": arch,
    "left_out": sorted(extra),
    "unused": [],
    "expected": reference(target),
})
write_gz(ckpt, "monai_ssl_pretrained_fs24.pth.gz")

# SMIT: its released configuration (Trans-Small_Unetr).
check_merge_permutation()
arch = dict(in_channels=1, feature_size=48, depths=[2, 2, 4, 2], num_heads=[4, 4, 4, 4], window_size=4, qkv_bias=False)
net = SwinUNETR(in_channels=1, out_channels=14, feature_size=48, depths=(2, 2, 4, 2), num_heads=(4, 4, 4, 4),
                window_size=4, qkv_bias=False)
monai_state = dict(net.swinViT.state_dict())
smit = {}
index = 0
for k, v in monai_state.items():
    if k.startswith("layers"):
        stage, rest = k.split(".0.", 1)
        k = f"layers.{int(stage[len('layers'):]) - 1}.{rest}"
    k = k.replace("mlp.linear1", "mlp.fc1").replace("mlp.linear2", "mlp.fc2")
    smit[f"module.{k}"] = pattern(v.shape, index) if v.is_floating_point() else v.clone()
    index += 1
only_smit = {"module.patch_embed.norm.weight": (48,), "module.patch_embed.norm.bias": (48,)}
for i, dim in enumerate([48, 96, 192, 384]):
    only_smit[f"module.norm{i}.weight"] = (dim,)
    only_smit[f"module.norm{i}.bias"] = (dim,)
for i, (k, shape) in enumerate(only_smit.items()):
    smit[k] = pattern(shape, 700 + i)
smit["module.mask_token"] = pattern((1, 1, 48), 800)
write_gz(smit, "smit_pre_train_weight.pt.gz")
# SMIT's loader: strip `module.`, load what its network has (all but mask_token). Then
# the same tensors under MONAI's names, merging weights permuted to MONAI's order.
loaded = {k[len("module."):]: v for k, v in smit.items() if k != "module.mask_token"}
perm = merge_permutation()
mapped = {}
for k, v in loaded.items():
    if k.startswith("layers."):
        _, stage, rest = k.split(".", 2)
        k = f"layers{int(stage) + 1}.0.{rest}"
    elif not k.startswith("patch_embed.proj"):
        continue
    k = k.replace("mlp.fc1", "mlp.linear1").replace("mlp.fc2", "mlp.linear2")
    if ".downsample." in k:
        c = v.shape[-1] // 8
        v = torch.cat([v[..., j * c:(j + 1) * c] for j in perm], -1)
    mapped[f"swinViT.{k}"] = v
target = SwinUNETR(in_channels=1, out_channels=14, feature_size=48, depths=(2, 2, 4, 2), num_heads=(4, 4, 4, 4),
                   window_size=4, qkv_bias=False)
result = target.load_state_dict(mapped, strict=False)
missing = [k for k in result.missing_keys if k.startswith("swinViT.")]
assert not missing and not result.unexpected_keys, (missing, result.unexpected_keys)
cases.append({
    "name": "smit_pre_train_weight_fs48",
    "layout": "smit",
    "file": "smit_pre_train_weight.pt.gz",
    "loader": "SMIT fine_tuning_swin_3D.py: strip 'module.', load_state_dict(strict=False); MONAI names, merging chunks permuted",
    "architecture": arch,
    "left_out": ["module.mask_token"],
    "unused": sorted(only_smit),
    "expected": reference(target),
})

versions = {"torch": torch.__version__, "monai": __import__("monai").__version__}
with open(f"{out}/cases.json", "w") as f:
    json.dump({"versions": versions, "cases": cases}, f, indent=1, sort_keys=True)
    f.write("\n")
