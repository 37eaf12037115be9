"""Writes SwinUNETR reference cases in the fixture format of `$MEDSSL_FIXTURES/swinunetr/`.

A network case is `<CASE>.safetensors` (the MONAI weights under their `state_dict` names,
without the derived `relative_position_index` buffers, plus `__input__`, `__output__` and
`__hidden_0__` .. `__hidden_4__`) and `<CASE>.json` (the SwinUNETR arguments, shapes,
seeds, the per-stage window geometry, output statistics, the float32-vs-float64 error,
package versions). With `--sliding-window NAME` it also writes a sliding-window case,
`NAME.safetensors` (`__input__`, `__output__`) and `NAME.json`: MONAI's
`sliding_window_inference` over the same network, whose weights it re-uses from the
network case (`weights_from`), not duplicated.

Seeding (the fixture README's): `torch.manual_seed(SEED)` before building the network
(MONAI's default init), then every `nn.Parameter`, in `named_parameters()` order, gets
`+= N(0, 0.02)` from `torch.Generator().manual_seed(SEED + 1)`; the input is N(0, 1) from
`torch.Generator().manual_seed(SEED + 2)` (each seed can be set on its own). The network
runs in `eval()` under `torch.no_grad()`, on the CPU with `torch.set_num_threads(2)`.

Usage (OUT_DIR is the fixture root; files go to OUT_DIR/swinunetr/):

    python make_swinunetr_case.py OUT_DIR CASE [--feature-size 12] [--window 7 | 7,7,5]
        [--size 64 | D,H,W] [--depths 2,2,2,2] [--heads 3,6,12,24] [--use-v2]
        [--in 1] [--out 3] [--seed 20240601] [--init-seed S] [--noise-seed S] [--input-seed S]
        [--sliding-window NAME --sw-size D,H,W --sw-seed 20240611 --roi 64 --sw-batch-size 2
         --overlap 0.5 --mode gaussian --sigma-scale 0.125 --padding-mode constant --cval 0]
        [--sliding-window-only]

`--sliding-window-only` writes only the sliding-window case, loading the network from the
existing `OUT_DIR/swinunetr/CASE.{json,safetensors}`.

MONAI limits (1.6.1): the feature size must be a multiple of 12; every input (and roi)
axis a multiple of 32, and more than 32^3 voxels in all (the bottleneck's instance norm
needs more than one voxel: 32^3 fails, 64x32x32 works).

The shared `dev` set (bit-identical tensors; the defaults):

    python make_swinunetr_case.py OUT swinunetr_fs12_w7_64 \
        --sliding-window sliding_window_fs12 --sw-size 80,72,64 --roi 64

The repository's `testdata/` (within its size budget):

    python make_swinunetr_case.py testdata swinunetr_fs12_w5_64x32x32 --window 5 --size 64,32,32 \
        --sliding-window sliding_window_fs12_w5 --sw-size 72,40,7 --roi 64,32,32
"""
import argparse
import copy
import json
import math
import os

import monai
import numpy as np
import torch
from monai.data.utils import dense_patch_slices
from monai.inferers import sliding_window_inference
from monai.networks.nets import SwinUNETR
from monai.networks.nets.swin_unetr import get_window_size
from safetensors import safe_open
from safetensors.torch import save_file

from fixture_common import number, versions, write_json

THREADS = 2
WEIGHT_NOISE_STD = 0.02
INDEX_SUFFIX = "relative_position_index"
IMPORTANCE_MAP_RULE = (
    "constant: ones; gaussian: separable exp(-x^2/(2 sigma^2)), x = arange(-(L-1)/2, (L-1)/2+1), "
    "sigma = sigma_scale*L, product over dims (max 1 at the centre), then clamped below at "
    "max(min(map), 1e-3)"
)


def ints(text, n=None, what="value"):
    values = [int(v) for v in str(text).split(",")]
    if n is not None and len(values) == 1:
        values = values * n
    if n is not None and len(values) != n:
        raise SystemExit(f"{what}: expected 1 or {n} integers, got {text!r}")
    return values


def finite(v):
    """Strict JSON: non-finite floats as the strings "nan", "inf", "-inf"."""
    if isinstance(v, float):
        return number(v)
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite(x) for x in v]
    return v


def stats(t):
    x = t.double()
    return {
        "mean": x.mean().item(),
        "std": x.std().item(),
        "min": x.min().item(),
        "max": x.max().item(),
        "sum": x.sum().item(),
    }


def error(got32, ref64):
    err = (got32.double() - ref64).abs()
    max_ref = ref64.abs().max().item()
    return {
        "max_abs_err": err.max().item(),
        "mean_abs_err": err.mean().item(),
        "max_abs_ref": max_ref,
        "rel_err_max_over_maxref": err.max().item() / max_ref,
    }


def build(cfg):
    """The SwinUNETR a case's config describes (MONAI arguments only)."""
    keys = [
        "in_channels", "out_channels", "feature_size", "depths", "num_heads", "window_size",
        "patch_size", "norm_name", "use_v2", "normalize", "spatial_dims", "qkv_bias",
        "mlp_ratio", "drop_rate", "attn_drop_rate", "dropout_path_rate", "downsample",
        "patch_norm",
    ]
    args = {k: cfg[k] for k in keys}
    args["depths"] = tuple(args["depths"])
    args["num_heads"] = tuple(args["num_heads"])
    return SwinUNETR(**args, use_flash_attention=cfg["use_flash_attention"])


def network_config(a):
    window = ints(a.window, 3, "--window")
    return {
        "in_channels": a.cin,
        "out_channels": a.cout,
        "feature_size": a.feature_size,
        "depths": ints(a.depths, None),
        "num_heads": ints(a.heads, None),
        "window_size": window[0] if len(set(window)) == 1 else window,
        "patch_size": 2,
        "norm_name": "instance",
        "use_v2": a.use_v2,
        "normalize": True,
        "spatial_dims": 3,
        "qkv_bias": True,
        "mlp_ratio": 4.0,
        "drop_rate": 0.0,
        "attn_drop_rate": 0.0,
        "dropout_path_rate": 0.0,
        "downsample": "merging",
        "patch_norm": False,
        "use_flash_attention": False,
    }


def stage_geometry(model, cfg, stage_inputs):
    """Per Swin stage: the feature map it sees and the window MONAI's get_window_size makes
    of it (shrunk to the map on an axis where map <= window, shift 0 there)."""
    w = cfg["window_size"]
    window = [w] * 3 if isinstance(w, int) else list(w)
    shift = [w // 2 for w in window]
    out = []
    for i, fmap in enumerate(stage_inputs):
        win, sh = get_window_size(fmap, window, shift)
        padded = [int(math.ceil(s / w)) * w for s, w in zip(fmap, win)]
        out.append({
            "stage": i + 1,
            "dim": cfg["feature_size"] * 2**i,
            "num_heads": cfg["num_heads"][i],
            "feature_map_dhw": list(fmap),
            "effective_window": list(win),
            "effective_shift": list(sh),
            "padded_dhw": padded,
            "tokens_per_window": int(np.prod(win)),
            "full_window_tokens": int(np.prod(window)),
            "window_shrunk": list(win) != window,
            "num_windows": int(np.prod([p // w for p, w in zip(padded, win)])),
        })
    return out


def make_network(cfg, seeds):
    torch.manual_seed(seeds["torch.manual_seed_before_init"])
    model = build(cfg)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seeds["noise_generator"])
        for _, param in model.named_parameters():
            param += WEIGHT_NOISE_STD * torch.randn(param.shape, generator=g)
    return model.eval()


def forward(model, x):
    with torch.no_grad():
        # The stage outputs as MONAI returns them (channel-first views of channel-last
        # memory); the float64 errors are reduced in that memory order.
        return model(x), list(model.swinViT(x, normalize=True))


def write_network_case(a, sw_dir):
    cfg = network_config(a)
    size = ints(a.size, 3, "--size")
    seeds = {
        "torch.manual_seed_before_init": a.init_seed if a.init_seed is not None else a.seed,
        "noise_generator": a.noise_seed if a.noise_seed is not None else a.seed + 1,
        "input_generator": a.input_seed if a.input_seed is not None else a.seed + 2,
    }
    if any(s % 32 for s in size) or np.prod(size) <= 32**3:
        raise SystemExit(f"--size {size}: MONAI needs multiples of 32 and more than 32^3 voxels")
    model = make_network(cfg, seeds)
    x = torch.randn([1, a.cin] + size, generator=torch.Generator().manual_seed(seeds["input_generator"]))

    stage_inputs = []
    hooks = [
        getattr(model.swinViT, f"layers{i + 1}")[0].register_forward_pre_hook(
            lambda _m, args: stage_inputs.append(list(args[0].shape[2:]))
        )
        for i in range(4)
    ]
    out, hidden = forward(model, x)
    for h in hooks:
        h.remove()
    stage_inputs = stage_inputs[:4]  # the first forward's (model(x) runs the encoder first)

    state = model.state_dict()
    weights = {k: v.contiguous() for k, v in state.items() if not k.endswith(INDEX_SUFFIX)}
    skipped = [k for k in state if k.endswith(INDEX_SUFFIX)]
    params = dict(model.named_parameters())
    assert list(weights) == list(params), "state_dict holds more than parameters and index buffers"
    tensors = dict(weights)
    tensors["__input__"] = x
    tensors["__output__"] = out
    for i, h in enumerate(hidden):
        tensors[f"__hidden_{i}__"] = h.contiguous()

    model64 = copy.deepcopy(model).double()
    out64, hidden64 = forward(model64, x.double())

    path = os.path.join(sw_dir, f"{a.case}.safetensors")
    save_file(tensors, path, metadata={"format": "pt"})
    meta = {"case": a.case, "model": "monai.networks.nets.SwinUNETR"}
    meta.update(cfg)
    meta.update({
        "mode": "eval, torch.no_grad()",
        "input_shape": list(x.shape),
        "output_shape": list(out.shape),
        "hidden_shapes": [list(h.shape) for h in hidden],
        "seeds": seeds,
        "weight_noise": f"every nn.Parameter p (named_parameters order) += N(0, {WEIGHT_NOISE_STD}) after MONAI default init",
        "num_parameters": sum(v.numel() for v in weights.values()),
        "num_parameter_tensors": len(weights),
        "skipped_buffers": skipped,
        "skipped_buffers_reason": "relative_position_index is a derived (non-learnable) int64 buffer; rebuild it from window_size exactly as WindowAttention.__init__ does",
        "stage_geometry": stage_geometry(model, cfg, stage_inputs),
        "output_stats": stats(out),
        "float64_vs_float32": {
            "how": "same weights cast with model.double(), same input cast to float64, same forward; errors of the float32 result w.r.t. the float64 result",
            "output": error(out, out64),
            "hidden": [error(h, h64) for h, h64 in zip(hidden, hidden64)],
        },
        "versions": versions(),
        "torch_version": torch.__version__,
        "monai_version": monai.__version__,
    })
    write_json(os.path.join(sw_dir, f"{a.case}.json"), finite(meta))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    for g in meta["stage_geometry"]:
        print("  stage {stage}: map {feature_map_dhw} window {effective_window} shift {effective_shift} "
              "padded {padded_dhw} shrunk {window_shrunk}".format(**g))

    # Re-check: a fresh network from the stored weights gives the stored tensors again.
    reloaded = load_network(sw_dir, a.case)
    with safe_open(path, "pt") as f:
        x2 = f.get_tensor("__input__")
        out2, hidden2 = forward(reloaded, x2)
        d_out = (out2 - f.get_tensor("__output__")).abs().max().item()
        d_hid = max((h - f.get_tensor(f"__hidden_{i}__")).abs().max().item() for i, h in enumerate(hidden2))
    print(f"  reload: output max |diff| {d_out}, hidden max |diff| {d_hid}")
    assert d_out == 0.0 and d_hid == 0.0
    return model


def load_network(sw_dir, case):
    """A network case's SwinUNETR with its stored weights (the index buffers are derived)."""
    with open(os.path.join(sw_dir, f"{case}.json")) as f:
        cfg = json.load(f)
    torch.manual_seed(0)  # the init is overwritten; seeding only keeps runs alike
    model = build(cfg)
    with safe_open(os.path.join(sw_dir, f"{case}.safetensors"), "pt") as f:
        stored = {k: f.get_tensor(k) for k in f.keys() if not k.startswith("__")}
    missing, unexpected = model.load_state_dict(stored, strict=False)
    assert not unexpected and all(k.endswith(INDEX_SUFFIX) for k in missing), (missing, unexpected)
    return model.eval()


def window_starts(size, roi, interval):
    """Window starts per axis: every `interval`, the last one moved back to end at the
    border (MONAI's dense_patch_slices)."""
    starts = []
    for s, r, i in zip(size, roi, interval):
        n = 1 if s <= r else int(math.ceil((s - r) / i)) + 1
        starts.append([min(k * i, s - r) for k in range(n)])
    return starts


def write_sliding_window_case(a, sw_dir, model):
    roi = ints(a.roi, 3, "--roi")
    size = ints(a.sw_size, 3, "--sw-size")
    x = torch.randn([1, a.cin] + size, generator=torch.Generator().manual_seed(a.sw_seed))
    kwargs = dict(
        roi_size=tuple(roi), sw_batch_size=a.sw_batch_size, overlap=a.overlap, mode=a.mode,
        sigma_scale=a.sigma_scale, padding_mode=a.padding_mode, cval=a.cval,
    )
    calls = []

    def predictor(m):
        def run(batch):
            calls.append(batch.shape[0])
            return m(batch)
        return run

    with torch.no_grad():
        out = sliding_window_inference(x, predictor=predictor(model), **kwargs)
        num_windows = sum(calls)
        out64 = sliding_window_inference(x.double(), predictor=copy.deepcopy(model).double(), **kwargs)

    padding = [max(r - s, 0) for r, s in zip(roi, size)]
    padded = [s + p for s, p in zip(size, padding)]
    interval = [r if r == s else max(int(r * (1 - a.overlap)), 1) for r, s in zip(roi, padded)]
    per_axis = window_starts(padded, roi, interval)
    starts = [[d, h, w] for d in per_axis[0] for h in per_axis[1] for w in per_axis[2]]
    monai_starts = [[sl.start for sl in w] for w in dense_patch_slices(padded, roi, interval)]
    assert starts == monai_starts, (starts, monai_starts)
    assert num_windows == len(starts), (num_windows, starts)

    path = os.path.join(sw_dir, f"{a.sliding_window}.safetensors")
    save_file({"__input__": x, "__output__": out.contiguous()}, path, metadata={"format": "pt"})
    meta = {
        "case": a.sliding_window,
        "weights_from": f"{a.case}.safetensors",
        "function": "monai.inferers.sliding_window_inference",
        "input_shape": list(x.shape),
        "output_shape": list(out.shape),
        "roi_size": roi,
        "sw_batch_size": a.sw_batch_size,
        "overlap": a.overlap,
        "mode": a.mode,
        "sigma_scale": a.sigma_scale,
        "padding_mode": a.padding_mode,
        "cval": a.cval,
        "input_seed": a.sw_seed,
        "padding_applied": padding,
        "scan_interval": interval,
        "num_windows": num_windows,
        "window_starts_dhw": starts,
        "importance_map_rule": IMPORTANCE_MAP_RULE,
        "output_stats": stats(out),
        "float64_vs_float32": {"output": error(out, out64)},
        "versions": versions(),
        "torch_version": torch.__version__,
        "monai_version": monai.__version__,
    }
    write_json(os.path.join(sw_dir, f"{a.sliding_window}.json"), finite(meta))
    print(f"wrote {path} ({os.path.getsize(path)} bytes): {num_windows} windows, starts {starts}, "
          f"scan interval {interval}, padding {padding}")

    reloaded = load_network(sw_dir, a.case)
    with safe_open(path, "pt") as f, torch.no_grad():
        again = sliding_window_inference(f.get_tensor("__input__"), predictor=reloaded, **kwargs)
        d = (again - f.get_tensor("__output__")).abs().max().item()
    print(f"  reload: output max |diff| {d}")
    assert d == 0.0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", help="fixture root; files go to OUT_DIR/swinunetr/")
    p.add_argument("case", help="network case name")
    p.add_argument("--feature-size", type=int, default=12, help="multiple of 12 (MONAI)")
    p.add_argument("--window", default="7", help="window size: W or D,H,W")
    p.add_argument("--size", default="64", help="input spatial size: S or D,H,W (multiples of 32)")
    p.add_argument("--use-v2", action="store_true")
    p.add_argument("--depths", default="2,2,2,2")
    p.add_argument("--heads", default="3,6,12,24")
    p.add_argument("--in", dest="cin", type=int, default=1)
    p.add_argument("--out", dest="cout", type=int, default=3)
    p.add_argument("--seed", type=int, default=20240601,
                   help="init seed; noise and input seeds default to SEED+1 and SEED+2")
    p.add_argument("--init-seed", type=int)
    p.add_argument("--noise-seed", type=int)
    p.add_argument("--input-seed", type=int)
    p.add_argument("--sliding-window", metavar="NAME", help="also write this sliding-window case")
    p.add_argument("--sliding-window-only", action="store_true",
                   help="re-use the existing network case CASE instead of writing it")
    p.add_argument("--sw-size", default="80,72,64", help="sliding-window input spatial size")
    p.add_argument("--sw-seed", type=int, default=20240611)
    p.add_argument("--roi", default="64", help="roi size: R or D,H,W")
    p.add_argument("--sw-batch-size", type=int, default=2)
    p.add_argument("--overlap", type=float, default=0.5)
    p.add_argument("--mode", default="gaussian", choices=["gaussian", "constant"])
    p.add_argument("--sigma-scale", type=float, default=0.125)
    p.add_argument("--padding-mode", default="constant")
    p.add_argument("--cval", type=float, default=0.0)
    a = p.parse_args()

    torch.set_num_threads(THREADS)
    sw_dir = os.path.join(a.out_dir, "swinunetr")
    os.makedirs(sw_dir, exist_ok=True)
    if a.sliding_window_only:
        if not a.sliding_window:
            p.error("--sliding-window-only needs --sliding-window NAME")
        with open(os.path.join(sw_dir, f"{a.case}.json")) as f:
            a.cin = json.load(f)["in_channels"]
        model = load_network(sw_dir, a.case)
    else:
        model = write_network_case(a, sw_dir)
    if a.sliding_window:
        write_sliding_window_case(a, sw_dir, model)


if __name__ == "__main__":
    main()
