"""Writes the small PyTorch checkpoints under crates/medssl-model/tests/data: the key
layouts of real SwinUNETR checkpoints (DataParallel `module.` inside `state_dict`, SMIT's
`student`/`teacher` with `backbone.`, Tang et al.'s encoder-only `model_swinvit.pt`, the
legacy non-zip format) on a tiny tensor set, plus a pickle that is not a state dict."""
import sys

import torch

out = sys.argv[1]
g = torch.Generator().manual_seed(0)
sd = {"swinViT.patch_embed.proj.weight": torch.randn(12, 1, 2, 2, 2, generator=g)}
for stage, heads in zip(range(1, 5), (1, 2, 3, 4)):
    for block in range(2 if stage == 2 else 1):
        sd[f"swinViT.layers{stage}.0.blocks.{block}.attn.relative_position_bias_table"] = torch.randn(27, heads, generator=g)
sd["out.conv.conv.weight"] = torch.randn(2, 12, 1, 1, 1, generator=g)
sd["out.conv.conv.bias"] = torch.randn(2, generator=g)

torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}, "epoch": 7}, f"{out}/state_dict_module.pt")
torch.save(
    {"student": {"backbone." + k: v for k, v in sd.items()}, "teacher": {"backbone." + k: -v for k, v in sd.items()}},
    f"{out}/smit_student_teacher.pth",
)
enc = {"module." + k[len("swinViT."):]: v for k, v in sd.items() if k.startswith("swinViT.")}
enc["module.rotation_head.weight"] = torch.zeros(4, 12)
torch.save(enc, f"{out}/model_swinvit_legacy.pt", _use_new_zipfile_serialization=False)
torch.save([1, 2, 3], f"{out}/list.pt")
torch.save(sd, f"{out}/plain.pt")
from safetensors.torch import save_file
save_file({k: v.contiguous() for k, v in sd.items()}, f"{out}/plain.safetensors")
