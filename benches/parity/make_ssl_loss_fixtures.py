"""Writes the `ssl_losses/` reference fixtures: the losses of the self-supervised methods
(NT-Xent / SimCLR, MoCo v3, DINO, the iBOT patch loss, SimMIM, SMIT, CPC InfoNCE,
rotation prediction) on seeded random inputs, each computed by the library class where
one exists (lightly, MONAI, torch), by a re-statement of the authors' published loss
code where none does, and by an independent plain-torch float64 implementation of the
written formula.

Usage: python make_ssl_loss_fixtures.py OUT_DIR [--preset repo|dev] [size options]

Writes OUT_DIR/ssl_losses/cases.safetensors (every input tensor, `<case>.<tensor>`;
F32, masks U8 (1 = masked), labels I64) and OUT_DIR/ssl_losses/cases.json (per case:
seed, params, tensors, layout, generation recipe, reference_call, value_f32 (library /
re-stated code on the float32 tensors), value_f64 (independent float64 formula), every
implementation's result and its distance to value_f64, loss-specific extras).

Only the volumetric cases (SimMIM, SMIT) carry large tensors; their sizes are options:
    --simmim-c1 SIZE:BLOCK   one-channel SimMIM case, volume SIZE^3, mask blocks BLOCK^3
    --simmim-c2 SIZE:BLOCK   two-channel SimMIM case
    --smit SIZE:BLOCK        SMIT total loss, two views of two volumes SIZE^3
The case names carry the volume size (`simmim_b2_c1_<SIZE>`, `smit_total_b2x2_<SIZE>`).
`--preset repo` (default) is what testdata/ssl_losses carries (16:4, 8:2, 8:4; 0.34 MB);
`--preset dev` reproduces the shared `dev` set byte for byte (32:8, 16:4, 32:8; 2.2 MB):
    python make_ssl_loss_fixtures.py OUT_DIR --preset dev
Size options override the preset's sizes. All other cases are identical in both sets.

Deterministic: one `torch.Generator().manual_seed(seed)` per case, CPU,
torch.set_num_threads(2), torch.use_deterministic_algorithms(True); re-running with the
same package versions gives identical bytes. Needs torch, monai, numpy, safetensors and
`pip install --no-deps lightly==1.6.0 torchvision==0.29.2` (+ pillow, which torchvision
imports); lightly's other dependencies are not needed for its loss classes.

The re-stated authors' code (world size 1: all_gather / all_reduce are identities):
DINO (facebookresearch/dino, main_dino.py, DINOLoss), iBOT (bytedance/ibot, main_ibot.py,
iBOTLoss), MoCo v3 (facebookresearch/moco-v3, moco/builder.py, MoCo.contrastive_loss),
SimMIM (microsoft/SimMIM, models/simmim.py, SimMIM.forward; MaskGenerator), SMIT
(The-Veeraraghavan-Lab/SMIT, train_self_supervised.py, Cls_Patch_Loss + the
reconstruction lines of the training loop). Written here from those loss definitions.
"""
import argparse
import importlib.metadata
import json
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from fixture_common import number, to_json, versions, write_json

VERSION_KEYS = ["torch", "lightly", "monai", "numpy", "safetensors", "torchvision"]

PRESETS = {
    "repo": {"set": "testdata", "simmim_c1": (16, 4), "simmim_c2": (8, 2), "smit": (8, 4)},
    "dev": {"set": "dev", "simmim_c1": (32, 8), "simmim_c2": (16, 4), "smit": (32, 8)},
}

SOURCES = {
    "lightly_ntxent": "lightly.loss.NTXentLoss (lightly/loss/ntx_ent_loss.py)",
    "monai_contrastive": "monai.losses.ContrastiveLoss (monai/losses/contrastive.py)",
    "lightly_dino": "lightly.loss.DINOLoss (lightly/loss/dino_loss.py)",
    "lightly_ibot": "lightly.loss.IBOTPatchLoss (lightly/loss/ibot_loss.py)",
    "dino_official": "facebookresearch/dino, main_dino.py, class DINOLoss (commit 7c446df5b9f4)",
    "ibot_official": "bytedance/ibot, main_ibot.py, class iBOTLoss (commit da316d82636a)",
    "mocov3_official": "facebookresearch/moco-v3, moco/builder.py, MoCo.contrastive_loss / MoCo.forward (commit c349e6e24f40)",
    "simmim_official": "microsoft/SimMIM, models/simmim.py, SimMIM.forward; data/data_simmim.py, MaskGenerator (commit d3e29bcac950)",
    "smit_official": "The-Veeraraghavan-Lab/SMIT, train_self_supervised.py, class Cls_Patch_Loss + the reconstruction lines of the training loop (commit 5d81399010dc)",
}

CONVENTIONS = {
    "tensors": "cases.safetensors, key '<case>.<tensor>'; F32 unless stated; masks U8 (1 = masked); labels I64",
    "value_f32": "library class (or re-stated authors' code where no library has the loss) on the float32 tensors",
    "value_f64": "independent plain-torch float64 implementation of the written formula",
    "non_finite": "strings 'nan', 'inf', '-inf'",
}


# ---------------------------------------------------------------------------------------
# small helpers


def nums(t):
    return [number(v) for v in t.reshape(-1).tolist()]


def max_abs(a, b):
    return float((a.double() - b.double()).abs().max())


def gen(seed):
    g = torch.Generator()
    g.manual_seed(seed)
    return g


DTYPE_NAMES = {torch.float32: "F32", torch.uint8: "U8", torch.int64: "I64"}


class Store:
    """Collects the tensors of every case and their JSON descriptions. With `stored`
    (the tensors read back from a written file), `put` hands back the stored tensors
    instead of the generated ones, so every value is recomputed from the file."""

    def __init__(self, stored=None):
        self.tensors = {}
        self.described = {}
        self.stored = stored

    def put(self, case, tensors):
        desc = {}
        out = {}
        for name, t in tensors.items():
            key = f"{case}.{name}"
            self.tensors[key] = t.contiguous()
            desc[name] = {"key": key, "shape": list(t.shape), "dtype": DTYPE_NAMES[t.dtype]}
            out[name] = t if self.stored is None else self.stored[key]
        self.described[case] = desc
        return out

    def describe(self, case):
        return self.described[case]


def implementations(value_f64, runs):
    """`runs`: name -> {"f32": v, "f64": v} (either may be missing). Adds the distances to
    value_f64 and the two summaries."""
    impl = {}
    for name, r in runs.items():
        e = {}
        if "f32" in r:
            e["f32"] = number(r["f32"])
        if "f64" in r:
            e["f64"] = number(r["f64"])
        if "f32" in r:
            e["abs_diff_f32_vs_value_f64"] = abs(r["f32"] - value_f64)
        if "f64" in r:
            e["abs_diff_f64_vs_value_f64"] = abs(r["f64"] - value_f64)
        impl[name] = e
    d64 = [e["abs_diff_f64_vs_value_f64"] for e in impl.values() if "abs_diff_f64_vs_value_f64" in e]
    d32 = [e["abs_diff_f32_vs_value_f64"] for e in impl.values() if "abs_diff_f32_vs_value_f64" in e]
    return {
        "implementations": impl,
        "max_abs_diff_f64_implementations_vs_value_f64": max(d64),
        "max_abs_diff_f32_implementations_vs_value_f64": max(d32),
    }


def values(value_f32, value_f64, runs):
    out = {
        "value_f32": number(value_f32),
        "value_f64": number(value_f64),
        "abs_diff_f32_vs_f64": abs(value_f32 - value_f64),
    }
    out.update(implementations(value_f64, runs))
    return out


# Independent float64 building blocks: explicit loops over rows, logsumexp.


def own_normalize(x):
    """normalize(x) = x / max(||x||_2, 1e-12), one row at a time."""
    return torch.stack([r / (r * r).sum().sqrt().clamp_min(1e-12) for r in x])


def own_log_softmax(row):
    """log_softmax(x)_k = x_k - logsumexp(x) of one row."""
    return row - torch.logsumexp(row, dim=0)


def own_ce_rows(p_rows, ls_rows):
    """CE(p, q) = -sum_k p_k log q_k of every row pair, as a list of 0-d tensors."""
    return [-(p * ls).sum() for p, ls in zip(p_rows, ls_rows)]


# ---------------------------------------------------------------------------------------
# 1. NT-Xent / SimCLR


def ntxent_own(z1, z2, temperature):
    """The SimCLR paper formula, one anchor at a time over the 2B samples [z1; z2]."""
    u = own_normalize(torch.cat([z1, z2]).double())
    m = u.shape[0]
    b = m // 2
    per = []
    for i in range(m):
        j = (i + b) % m
        logits = torch.stack([(u[i] * u[k]).sum() / temperature for k in range(m) if k != i])
        per.append(torch.logsumexp(logits, dim=0) - (u[i] * u[j]).sum() / temperature)
    per = torch.stack(per)
    return per.mean().item(), per.tolist()


def case_ntxent(store, name, seed, b, d, temperature, noise, scale):
    from lightly.loss import NTXentLoss
    from monai.losses import ContrastiveLoss

    g = gen(seed)
    base = torch.randn(b, d, generator=g)
    z1 = scale * (base + noise * torch.randn(b, d, generator=g))
    z2 = scale * (base + noise * torch.randn(b, d, generator=g))
    t = store.put(name, {"z1": z1, "z2": z2})
    z1, z2 = t["z1"], t["z2"]
    runs = {"lightly.loss.NTXentLoss": {}, "monai.losses.ContrastiveLoss": {}}
    for key, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        a, c = z1.to(dtype), z2.to(dtype)
        runs["lightly.loss.NTXentLoss"][key] = NTXentLoss(temperature=temperature, memory_bank_size=0)(a, c).item()
        runs["monai.losses.ContrastiveLoss"][key] = ContrastiveLoss(temperature=temperature)(a, c).item()
    value_f64, per = ntxent_own(z1, z2, temperature)
    runs["own_simclr_paper_formula"] = {"f64": value_f64}
    case = {
        "name": name,
        "loss": "ntxent",
        "seed": seed,
        "params": {"temperature": temperature, "batch_size": b, "dim": d, "memory_bank_size": 0},
        "tensors": store.describe(name),
        "generation": f"base=N(0,1)[B,D]; z1={scale}*(base+{noise}*N(0,1)); z2={scale}*(base+{noise}*N(0,1)) (one torch.Generator, seed {seed}, drawn in that order)",
        "reference_call": f"lightly.loss.NTXentLoss(temperature={temperature}, memory_bank_size=0)(z1, z2)",
        "per_anchor_loss_f64": per,
        "per_anchor_order": "anchors 0..B-1 are z1[0..B-1] (positive z2[i]); anchors B..2B-1 are z2[0..B-1]",
    }
    case.update(values(runs["lightly.loss.NTXentLoss"]["f32"], value_f64, runs))
    return case


# ---------------------------------------------------------------------------------------
# 2. MoCo v3


def mocov3_ctr_official(q, k, T):
    """MoCo.contrastive_loss (world size 1: concat_all_gather(k) = k, rank 0)."""
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1)
    logits = torch.einsum("nc,mc->nm", [q, k]) / T
    n = logits.shape[0]
    labels = torch.arange(n, dtype=torch.long)
    return torch.nn.CrossEntropyLoss()(logits, labels) * (2 * T)


def mocov3_ctr_own(q, k, T):
    """ctr(q, k) = 2T * mean_i [logsumexp_j <q_i, k_j>/T - <q_i, k_i>/T], unit vectors."""
    q = own_normalize(q.double())
    k = own_normalize(k.double())
    n = q.shape[0]
    per = []
    for i in range(n):
        logits = torch.stack([(q[i] * k[j]).sum() / T for j in range(n)])
        per.append(torch.logsumexp(logits, dim=0) - logits[i])
    return (torch.stack(per).mean() * (2 * T)).item()


def case_mocov3(store, name, seed, b, d, T):
    g = gen(seed)
    base = torch.randn(b, d, generator=g)
    t = {key: base + 0.7 * torch.randn(b, d, generator=g) for key in ("q1", "q2", "k1", "k2")}
    t = store.put(name, t)
    off = {}
    for key, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        x = {n: v.to(dtype) for n, v in t.items()}
        a = mocov3_ctr_official(x["q1"], x["k2"], T)
        c = mocov3_ctr_official(x["q2"], x["k1"], T)
        off[key] = (a.item(), c.item(), (a + c).item())
    own_a = mocov3_ctr_own(t["q1"], t["k2"], T)
    own_c = mocov3_ctr_own(t["q2"], t["k1"], T)
    value_f64 = own_a + own_c
    case = {
        "name": name,
        "loss": "mocov3",
        "seed": seed,
        "params": {"T": T, "batch_size": b, "dim": d},
        "tensors": store.describe(name),
        "generation": f"base=N(0,1)[B,D]; q1,q2,k1,k2 = base + 0.7*N(0,1) each (drawn in that order, seed {seed})",
        "reference_call": f"ctr(q1, k2) + ctr(q2, k1), ctr = MoCo.contrastive_loss with T={T} (re-stated from the official code, world size 1)",
        "ctr_q1_k2_f32": off["f32"][0],
        "ctr_q2_k1_f32": off["f32"][1],
        "ctr_q1_k2_f64": own_a,
        "ctr_q2_k1_f64": own_c,
    }
    runs = {
        "official_code_restated": {"f32": off["f32"][2], "f64": off["f64"][2]},
        "own_formula": {"f64": value_f64},
    }
    case.update(values(off["f32"][2], value_f64, runs))
    return case


# ---------------------------------------------------------------------------------------
# 3. DINO


class DinoLossOfficial:
    """DINOLoss of facebookresearch/dino (main_dino.py), single process; the teacher
    temperature schedule is constant (warmup temperature = teacher temperature)."""

    def __init__(self, out_dim, ncrops, teacher_temp, student_temp=0.1, center_momentum=0.9):
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.ncrops = ncrops
        self.center = torch.zeros(1, out_dim)
        self.temp = teacher_temp

    def forward(self, student_output, teacher_output):
        student_out = student_output / self.student_temp
        student_out = student_out.chunk(self.ncrops)
        teacher_out = F.softmax((teacher_output - self.center) / self.temp, dim=-1)
        teacher_out = teacher_out.detach().chunk(2)
        total_loss = 0
        n_loss_terms = 0
        for iq, q in enumerate(teacher_out):
            for v in range(len(student_out)):
                if v == iq:
                    continue
                loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
                total_loss += loss.mean()
                n_loss_terms += 1
        total_loss /= n_loss_terms
        self.update_center(teacher_output)
        return total_loss

    def update_center(self, teacher_output):
        batch_center = torch.sum(teacher_output, dim=0, keepdim=True)
        batch_center = batch_center / len(teacher_output)
        self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)


def head_params(k, tt, st, momentum, center_given):
    """The `params` of a DINO or iBOT patch case that describe the head: both losses use
    the same temperatures and teacher centring."""
    return {
        "out_dim": k,
        "teacher_temp": tt,
        "student_temp": st,
        "center_momentum": momentum,
        "center_before": "given (tensor `center`)" if center_given else "zeros",
    }


def center_recipe(center_given, seed):
    """The end of a DINO or iBOT patch case's `generation` text: how `center` was drawn."""
    return "center = " + ("0.3*N(0,1)[K]" if center_given else "zeros") + f" (seed {seed})"


def dino_pairs(n_teacher, n_student):
    return [(t, s) for t in range(n_teacher) for s in range(n_student) if s != t]


def dino_own(teacher, student, center, tt, st, momentum, pairs):
    """Explicit float64 loops: per (teacher crop t, student crop s) pair the batch mean of
    CE(softmax((teacher[t] - center)/tt), log_softmax(student[s]/st)); mean over pairs."""
    teacher, student, center = teacher.double(), student.double(), center.double()
    b = teacher.shape[1]
    p = [[own_log_softmax((teacher[t, i] - center) / tt).exp() for i in range(b)] for t in range(teacher.shape[0])]
    ls = [[own_log_softmax(student[s, i] / st) for i in range(b)] for s in range(student.shape[0])]
    terms = [torch.stack(own_ce_rows(p[t], ls[s])).mean() for t, s in pairs]
    value = torch.stack(terms).mean()
    rows = teacher.reshape(-1, teacher.shape[-1])
    center_after = momentum * center + (1 - momentum) * rows.mean(dim=0)
    return value.item(), [x.item() for x in terms], center_after


def case_dino(store, name, seed, b, k, tt, center_given):
    from lightly.loss import DINOLoss

    st, momentum, n_crops = 0.1, 0.9, 4
    g = gen(seed)
    proto = 1.5 * torch.randn(b, k, generator=g)
    teacher = torch.stack([proto + 0.5 * torch.randn(b, k, generator=g) for _ in range(2)])
    student = torch.stack([0.8 * proto + 0.8 * torch.randn(b, k, generator=g) for _ in range(n_crops)])
    center = 0.3 * torch.randn(k, generator=g) if center_given else torch.zeros(k)
    t = store.put(name, {"student": student, "teacher": teacher, "center": center})
    student, teacher, center = t["student"], t["teacher"], t["center"]

    lightly_runs, lightly_centers = {}, {}
    official_runs, official_centers = {}, {}
    for key, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        tch, stu, cen = teacher.to(dtype), student.to(dtype), center.to(dtype)
        loss = DINOLoss(output_dim=k, warmup_teacher_temp=tt, teacher_temp=tt, student_temp=st, center_momentum=momentum).to(dtype)
        loss.center = cen.reshape(1, 1, k).clone()
        lightly_runs[key] = loss(teacher_out=list(tch.unbind(0)), student_out=list(stu.unbind(0))).item()
        lightly_centers[key] = loss.center.reshape(k)
        off = DinoLossOfficial(k, n_crops, tt, st, momentum)
        off.center = cen.reshape(1, k).clone()
        official_runs[key] = off.forward(stu.reshape(-1, k), tch.reshape(-1, k)).item()
        official_centers[key] = off.center.reshape(k)
    pairs = dino_pairs(2, n_crops)
    value_f64, terms, center_after = dino_own(teacher, student, center, tt, st, momentum, pairs)
    case = {
        "name": name,
        "loss": "dino",
        "seed": seed,
        "params": {
            "n_global_crops": 2,
            "n_local_crops": n_crops - 2,
            "batch_size": b,
            **head_params(k, tt, st, momentum, center_given),
        },
        "tensors": store.describe(name),
        "layout": "student [n_crops, B, K] with crop 0,1 = the two global crops (same images as teacher 0,1) and crops 2.. = local crops; teacher [2, B, K]; center [K] = centre BEFORE this step",
        "generation": "proto=1.5*N(0,1)[B,K]; teacher[t]=proto+0.5*N(0,1) (t=0..1); student[s]=0.8*proto+0.8*N(0,1) (s=0..3); "
        + center_recipe(center_given, seed),
        "reference_call": f"lightly.loss.DINOLoss(output_dim={k}, warmup_teacher_temp={tt}, teacher_temp={tt}, student_temp={st}, center_momentum={momentum}) with loss.center set to `center`; loss(teacher_out=[teacher[0], teacher[1]], student_out=[student[0], ..., student[{n_crops - 1}]])",
        "pairs_summed": [list(p) for p in pairs],
        "pair_terms_f64": terms,
        "n_terms": len(pairs),
        "center_after_f32": nums(lightly_centers["f32"]),
        "center_after_f64": nums(center_after),
        "center_after_max_abs_diff": {
            "lightly_f32_vs_own_f64": max_abs(lightly_centers["f32"], center_after),
            "lightly_f64_vs_own_f64": max_abs(lightly_centers["f64"], center_after),
            "official_f32_vs_own_f64": max_abs(official_centers["f32"], center_after),
            "official_f64_vs_own_f64": max_abs(official_centers["f64"], center_after),
        },
    }
    runs = {
        "lightly.loss.DINOLoss": lightly_runs,
        "dino_official_code_restated": official_runs,
        "own_formula": {"f64": value_f64},
    }
    case.update(values(lightly_runs["f32"], value_f64, runs))
    return case


# ---------------------------------------------------------------------------------------
# 4. iBOT patch loss


class IbotLossOfficial:
    """iBOTLoss of bytedance/ibot (main_ibot.py), single process, constant teacher
    temperatures, lambda1 = lambda2 = 1. Inputs as in the official forward: the
    [CLS] outputs and patch outputs of the `ngcrops` global crops concatenated along the
    batch axis, and one token mask per global crop."""

    mask_axes = 2  # a token mask is [B, h, w]

    def __init__(self, out_dim, patch_out_dim, ngcrops, nlcrops, teacher_temp, teacher_temp2,
                 student_temp=0.1, center_momentum=0.9, center_momentum2=0.9, lambda1=1.0, lambda2=1.0):
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.center_momentum2 = center_momentum2
        self.ngcrops = ngcrops
        self.nlcrops = nlcrops
        self.ncrops = ngcrops + nlcrops
        self.center = torch.zeros(1, out_dim)
        self.center2 = torch.zeros(1, 1, patch_out_dim)
        self.lambda1 = lambda1
        self.lambda2 = lambda2
        self.temp = teacher_temp
        self.temp2 = teacher_temp2

    def forward(self, student_output, teacher_output, student_local_cls, student_mask):
        student_cls, student_patch = student_output
        teacher_cls, teacher_patch = teacher_output
        if student_local_cls is not None:
            student_cls = torch.cat([student_cls, student_local_cls])
        total_loss1, n_loss_terms1, total_loss2, n_loss_terms2 = self.summed_terms(
            student_cls, student_patch, teacher_cls, teacher_patch, student_mask)

        # Guard added here: the fixture runs the patch term alone (no [CLS] pairs).
        total_loss1 = total_loss1 / n_loss_terms1 * self.lambda1 if n_loss_terms1 else total_loss1
        total_loss2 = total_loss2 / n_loss_terms2 * self.lambda2
        self.update_center(teacher_cls, teacher_patch)
        return {"cls": total_loss1, "patch": total_loss2, "loss": total_loss1 + total_loss2}

    def summed_terms(self, student_cls, student_patch, teacher_cls, teacher_patch, student_mask):
        """The crop-pair loop of the official forward, which SMIT's keeps as it is: the
        summed [CLS] and patch terms and their counts."""
        student_cls = student_cls / self.student_temp
        student_cls_c = student_cls.chunk(self.ncrops)
        student_patch = student_patch / self.student_temp
        student_patch_c = student_patch.chunk(self.ngcrops)

        teacher_cls_c = F.softmax((teacher_cls - self.center) / self.temp, dim=-1)
        teacher_cls_c = teacher_cls_c.detach().chunk(self.ngcrops)
        teacher_patch_c = F.softmax((teacher_patch - self.center2) / self.temp2, dim=-1)
        teacher_patch_c = teacher_patch_c.detach().chunk(self.ngcrops)

        total_loss1, n_loss_terms1 = 0, 0
        total_loss2, n_loss_terms2 = 0, 0
        for q in range(len(teacher_cls_c)):
            for v in range(len(student_cls_c)):
                if v == q:
                    loss2 = torch.sum(-teacher_patch_c[q] * F.log_softmax(student_patch_c[v], dim=-1), dim=-1)
                    mask = student_mask[v].flatten(-self.mask_axes, -1)
                    loss2 = torch.sum(loss2 * mask.float(), dim=-1) / mask.sum(dim=-1).clamp(min=1.0)
                    total_loss2 += loss2.mean()
                    n_loss_terms2 += 1
                else:
                    loss1 = torch.sum(-teacher_cls_c[q] * F.log_softmax(student_cls_c[v], dim=-1), dim=-1)
                    total_loss1 += loss1.mean()
                    n_loss_terms1 += 1
        return total_loss1, n_loss_terms1, total_loss2, n_loss_terms2

    def update_center(self, teacher_cls, teacher_patch):
        cls_center = torch.sum(teacher_cls, dim=0, keepdim=True)
        cls_center = cls_center / len(teacher_cls)
        self.center = self.center * self.center_momentum + cls_center * (1 - self.center_momentum)

        patch_center = torch.sum(teacher_patch.mean(1), dim=0, keepdim=True)
        patch_center = patch_center / len(teacher_patch)
        self.center2 = self.center2 * self.center_momentum2 + patch_center * (1 - self.center_momentum2)


def ibot_patch_own(teacher, student, mask, center, tt, st):
    """Explicit float64 loops: per image the mean CE over its masked tokens (count clamped
    to 1), then the mean over all B images. Returns (value, per-image terms)."""
    teacher, student, center = teacher.double(), student.double(), center.double()
    b, n, _ = teacher.shape
    per = []
    for i in range(b):
        total = torch.zeros((), dtype=torch.float64)
        count = 0
        for j in range(n):
            if mask[i, j]:
                p = own_log_softmax((teacher[i, j] - center) / tt).exp()
                ls = own_log_softmax(student[i, j] / st)
                total = total + (-(p * ls).sum())
                count += 1
        per.append(total / max(count, 1))
    per = torch.stack(per)
    return per.mean().item(), per.tolist()


def ibot_lightly(teacher, student, mask, center, k, tt, st, momentum):
    """lightly IBOTPatchLoss on the masked tokens; returns (value, centre after)."""
    from lightly.loss import IBOTPatchLoss

    b, n, _ = teacher.shape
    m = mask.bool()
    loss = IBOTPatchLoss(output_dim=k, teacher_temp=tt, student_temp=st, center_momentum=momentum).to(teacher.dtype)
    loss.center.center = center.reshape(1, k).clone()
    value = loss(teacher_out=teacher[m], student_out=student[m], mask=m.view(b, 1, n)).item()
    return value, loss.center.center.reshape(k)


def case_ibot(store, name, seed, b, n, k, tt, p_mask, center_given, edge):
    st, momentum = 0.1, 0.9
    g = gen(seed)
    proto = 1.5 * torch.randn(b, n, k, generator=g)
    teacher = proto + 0.5 * torch.randn(b, n, k, generator=g)
    student = 0.8 * proto + 0.8 * torch.randn(b, n, k, generator=g)
    mask = torch.rand(b, n, generator=g) < p_mask
    if edge:
        mask[1, :] = False
        mask[3, :] = True
    center = 0.3 * torch.randn(k, generator=g) if center_given else torch.zeros(k)
    t = store.put(name, {"student": student, "teacher": teacher, "mask": mask.to(torch.uint8), "center": center})
    student, teacher, center = t["student"], t["teacher"], t["center"]
    mask = t["mask"].bool()

    lightly_runs, lightly_centers = {}, {}
    official_runs, official_centers = {}, {}
    for key, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        tch, stu, cen = teacher.to(dtype), student.to(dtype), center.to(dtype)
        lightly_runs[key], lightly_centers[key] = ibot_lightly(tch, stu, mask, cen, k, tt, st, momentum)
        # Patch term only: one global crop, no [CLS] pairs (zero-width [CLS] outputs);
        # the flat token mask as [B, 1, N] (the official code flattens [B, h, w]).
        off = IbotLossOfficial(0, k, 1, 0, tt, tt, st, momentum, momentum)
        off.center2 = cen.reshape(1, 1, k).clone()
        masks = [mask.view(b, 1, n)]
        out = off.forward((tch.new_zeros(b, 0), stu), (tch.new_zeros(b, 0), tch), None, masks)
        official_runs[key] = out["patch"].item()
        official_centers[key] = off.center2.reshape(k)
    value_f64, per_image = ibot_patch_own(teacher, student, mask, center, tt, st)
    t64, c64 = teacher.double(), center.double()
    center_all = momentum * c64 + (1 - momentum) * t64.reshape(-1, k).mean(dim=0)
    center_masked = momentum * c64 + (1 - momentum) * t64[mask].mean(dim=0)
    counts = mask.sum(dim=1).tolist()
    gen_mask = f"mask = U(0,1)[B,N] < {p_mask}"
    if edge:
        gen_mask += "; then mask[1,:]=0 (no masked token) and mask[3,:]=1 (all masked)"
    case = {
        "name": name,
        "loss": "ibot_patch",
        "seed": seed,
        "params": {
            "batch_size": b,
            "num_tokens": n,
            **head_params(k, tt, st, momentum, center_given),
        },
        "tensors": store.describe(name),
        "layout": "student/teacher patch logits [B, N, K]; mask [B, N] U8 (1 = token masked in the student's input); center [K] = patch centre BEFORE this step",
        "masked_tokens_per_image": counts,
        "generation": f"proto=1.5*N(0,1)[B,N,K]; teacher=proto+0.5*N(0,1); student=0.8*proto+0.8*N(0,1); {gen_mask}; "
        + center_recipe(center_given, seed),
        "reference_call": f"lightly.loss.IBOTPatchLoss(output_dim={k}, teacher_temp={tt}, student_temp={st}, center_momentum={momentum}) with center.center set to `center`; loss(teacher_out=teacher[mask], student_out=student[mask], mask=mask.view(B, 1, N))",
        "per_image_loss_f64": per_image,
        "center_after_official_ibot_f64": nums(center_all),
        "center_after_lightly_f32": nums(lightly_centers["f32"]),
        "center_after_lightly_f64": nums(lightly_centers["f64"]),
        "center_after_max_abs_diff": {
            "lightly_f32_vs_own_masked_mean_f64": max_abs(lightly_centers["f32"], center_masked),
            "official_f32_vs_own_all_tokens_f64": max_abs(official_centers["f32"], center_all),
            "official_f64_vs_own_all_tokens_f64": max_abs(official_centers["f64"], center_all),
            "official_vs_lightly_convention_f64": max_abs(center_all, center_masked),
        },
    }
    runs = {
        "lightly.loss.IBOTPatchLoss": lightly_runs,
        "ibot_official_code_restated": official_runs,
        "own_formula": {"f64": value_f64},
    }
    case.update(values(lightly_runs["f32"], value_f64, runs))
    return case


# ---------------------------------------------------------------------------------------
# 5. SimMIM reconstruction loss, and the block masks of SimMIM / SMIT


def block_masks(g, images, grid, ratio):
    """MaskGenerator: per image exactly ceil(n_blocks * ratio) blocks, chosen by a random
    permutation. Returns the token masks [images, d, h, w] U8."""
    n_blocks = grid[0] * grid[1] * grid[2]
    n_masked = int(math.ceil(n_blocks * ratio))
    out = torch.zeros(images, n_blocks, dtype=torch.uint8)
    for i in range(images):
        out[i, torch.randperm(n_blocks, generator=g)[:n_masked]] = 1
    return out.view(images, *grid)


def voxel_mask(token_mask, block):
    """The token mask repeated `block` times along each axis, [images, 1, D, H, W]."""
    m = token_mask
    for axis in (1, 2, 3):
        m = m.repeat_interleave(block, axis)
    return m.unsqueeze(1).contiguous()


def simmim_official(x, x_rec, mask, in_chans):
    """The loss lines of SimMIM.forward (mask already at voxel resolution)."""
    loss_recon = F.l1_loss(x, x_rec, reduction="none")
    loss = (loss_recon * mask).sum() / (mask.sum() + 1e-5) / in_chans
    return loss


def simmim_own(pred, target, mask, in_chans, eps=1e-5):
    """Sum of |pred - target| over masked voxels x channels / (#masked voxels + eps) / C."""
    diff = (pred.double() - target.double()).abs()
    m = mask.double()
    num_ = (diff * m).sum()
    den = m.sum()
    return (num_ / (den + eps) / in_chans).item(), num_.item(), (num_ / den / in_chans).item(), int(mask.sum())


def case_simmim(store, name, seed, b, c, size, block):
    ratio = 0.6
    shape = [b, c, size, size, size]
    grid = [size // block] * 3
    n_blocks = grid[0] * grid[1] * grid[2]
    n_masked = int(math.ceil(n_blocks * ratio))
    g = gen(seed)
    target = torch.randn(*shape, generator=g)
    pred = 0.7 * target + 0.6 * torch.randn(*shape, generator=g)
    token_mask = block_masks(g, b, grid, ratio)
    mask = voxel_mask(token_mask, block)
    t = store.put(name, {"pred": pred, "target": target, "mask": mask, "token_mask": token_mask})
    pred, target, mask = t["pred"], t["target"], t["mask"]
    official = {}
    for key, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        official[key] = simmim_official(target.to(dtype), pred.to(dtype), mask.to(dtype), c).item()
    value_f64, abs_sum, without_eps, mask_sum = simmim_own(pred, target, mask, c)
    case = {
        "name": name,
        "loss": "simmim_l1",
        "seed": seed,
        "params": {
            "shape": shape,
            "in_chans": c,
            "mask_block_voxels": block,
            "mask_ratio": ratio,
            "block_grid": grid,
            "masked_blocks_per_image": n_masked,
            "masked_voxels_per_image": n_masked * block ** 3,
            "eps": 1e-05,
        },
        "tensors": store.describe(name),
        "layout": "pred/target [B, C, D, H, W]; mask [B, 1, D, H, W] U8 voxel mask (1 = masked, broadcast over channels) = token_mask [B, d, h, w] U8 repeated block times along D, H, W",
        "generation": f"target=N(0,1); pred=0.7*target+0.6*N(0,1); per image ceil({n_blocks}*{ratio})={n_masked} blocks chosen by torch.randperm (seed {seed})",
        "reference_call": f"(F.l1_loss(target, pred, reduction='none') * mask).sum() / (mask.sum() + 1e-5) / {c}",
        "masked_abs_sum_f64": abs_sum,
        "mask_sum": mask_sum,
        "value_without_eps_f64": without_eps,
    }
    runs = {
        "simmim_official_code_restated": official,
        "own_formula": {"f64": value_f64},
    }
    case.update(values(official["f32"], value_f64, runs))
    return case


# ---------------------------------------------------------------------------------------
# 6. SMIT total loss


class SmitClsPatchLoss(IbotLossOfficial):
    """Cls_Patch_Loss of SMIT (train_self_supervised.py): the iBOT loss (the same
    constructor, crop-pair loop and centre update) with 3-D token masks, two global crops
    and no local crops; lambda1 weighs the [CLS] (DINO) term, lambda2 the patch term.
    Single process."""

    mask_axes = 3  # a token mask is [B, d, h, w]

    def forward(self, student_output, teacher_output, student_mask):
        student_cls, student_patch = student_output
        teacher_cls, teacher_patch = teacher_output
        total_loss1, n_loss_terms1, total_loss2, n_loss_terms2 = self.summed_terms(
            student_cls, student_patch, teacher_cls, teacher_patch, student_mask)

        # `total / n * lambda` split in two steps (same arithmetic) to also keep the
        # unweighted terms for the fixture.
        total_loss1 = total_loss1 / n_loss_terms1
        total_loss2 = total_loss2 / n_loss_terms2
        self.unweighted = {"cls": total_loss1, "patch": total_loss2}
        total_loss1 = total_loss1 * self.lambda1
        total_loss2 = total_loss2 * self.lambda2
        self.update_center(teacher_cls, teacher_patch)
        return {"cls": total_loss1, "patch": total_loss2, "loss": total_loss1 + total_loss2}


def smit_reconstruction(x_rec, img, mask):
    """The reconstruction lines of SMIT's training loop (no / in_chans)."""
    loss_rec = F.l1_loss(x_rec, img, reduction="none")
    return (loss_rec * mask).sum() / (mask.sum() + 1e-5)


def case_smit(store, name, seed, size, block):
    b, views, kc, kp = 2, 2, 48, 32
    tt_cls, tt_patch, st, momentum = 0.07, 0.04, 0.1, 0.9
    w_patch, w_cls, w_rec, ratio = 0.1, 0.1, 1.0, 0.6
    grid = [size // block] * 3
    n = grid[0] * grid[1] * grid[2]
    n_masked = int(math.ceil(n * ratio))
    rows = views * b
    g = gen(seed)
    img = torch.randn(rows, 1, size, size, size, generator=g)
    x_rec = 0.7 * img + 0.6 * torch.randn(rows, 1, size, size, size, generator=g)
    token_mask = block_masks(g, rows, grid, ratio)
    mask = voxel_mask(token_mask, block)

    def heads(shape):
        proto = 1.5 * torch.randn(*shape, generator=g)
        t = [proto + 0.5 * torch.randn(*shape, generator=g) for _ in range(views)]
        s = [0.8 * proto + 0.8 * torch.randn(*shape, generator=g) for _ in range(views)]
        return torch.cat(t), torch.cat(s)

    teacher_cls, student_cls = heads((b, kc))
    teacher_patch, student_patch = heads((b, n, kp))
    center_cls = 0.3 * torch.randn(kc, generator=g)
    center_patch = 0.3 * torch.randn(kp, generator=g)
    tensors = {
        "img": img, "x_rec": x_rec, "mask": mask, "token_mask": token_mask,
        "teacher_cls": teacher_cls, "student_cls": student_cls,
        "teacher_patch": teacher_patch, "student_patch": student_patch,
        "center_cls": center_cls, "center_patch": center_patch,
    }
    tensors = store.put(name, tensors)
    img, x_rec, mask, token_mask = tensors["img"], tensors["x_rec"], tensors["mask"], tensors["token_mask"]
    teacher_cls, student_cls = tensors["teacher_cls"], tensors["student_cls"]
    teacher_patch, student_patch = tensors["teacher_patch"], tensors["student_patch"]
    center_cls, center_patch = tensors["center_cls"], tensors["center_patch"]

    # SMIT code, float32 and float64; the weights are applied inside Cls_Patch_Loss.
    smit, smit_centers = {}, {}
    for key, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        x = {k: v.to(dtype) for k, v in tensors.items()}
        loss = SmitClsPatchLoss(kc, kp, views, 0, tt_cls, tt_patch, st, momentum, momentum, w_cls, w_patch)
        loss.center = x["center_cls"].reshape(1, kc).clone()
        loss.center2 = x["center_patch"].reshape(1, 1, kp).clone()
        masks = list(x["token_mask"].chunk(views))
        out = loss.forward((x["student_cls"], x["student_patch"]), (x["teacher_cls"], x["teacher_patch"]), masks)
        rec = smit_reconstruction(x["x_rec"], x["img"], x["mask"])
        total = out["loss"] + w_rec * rec
        smit[key] = {
            "patch": loss.unweighted["patch"].item(),
            "cls": loss.unweighted["cls"].item(),
            "recon": rec.item(),
            "total": total.item(),
        }
        smit_centers[key] = (loss.center.reshape(kc), loss.center2.reshape(kp))

    # lightly components: IBOTPatchLoss over the 2B images + DINOLoss with two views + SimMIM line.
    from lightly.loss import DINOLoss

    light = {}
    for key, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        x = {k: v.to(dtype) for k, v in tensors.items()}
        patch, _ = ibot_lightly(x["teacher_patch"], x["student_patch"], token_mask.reshape(rows, n), x["center_patch"], kp, tt_patch, st, momentum)
        dino = DINOLoss(output_dim=kc, warmup_teacher_temp=tt_cls, teacher_temp=tt_cls, student_temp=st, center_momentum=momentum).to(dtype)
        dino.center = x["center_cls"].reshape(1, 1, kc).clone()
        cls = dino(teacher_out=list(x["teacher_cls"].chunk(views)), student_out=list(x["student_cls"].chunk(views))).item()
        rec = simmim_official(x["img"], x["x_rec"], x["mask"], 1).item()
        total = (w_patch * torch.tensor(patch, dtype=dtype) + w_cls * torch.tensor(cls, dtype=dtype) + w_rec * torch.tensor(rec, dtype=dtype)).item()
        light[key] = {"patch": patch, "cls": cls, "recon": rec, "total": total}

    # Own float64 formula.
    tc, sc = teacher_cls.double(), student_cls.double()
    tp, sp = teacher_patch.double(), student_patch.double()
    cc, cp = center_cls.double(), center_patch.double()
    tm = token_mask.reshape(rows, n)
    patch_views = []
    for v in range(views):
        sl = slice(v * b, (v + 1) * b)
        patch_views.append(ibot_patch_own(tp[sl], sp[sl], tm[sl], cp, tt_patch, st)[0])
    patch_own = sum(patch_views) / views
    pairs = [(0, 1), (1, 0)]
    cls_own, _, _ = dino_own(tc.view(views, b, kc), sc.view(views, b, kc), cc, tt_cls, st, momentum, pairs)
    recon_own = simmim_own(x_rec, img, mask, 1)[0]
    total_own = w_patch * patch_own + w_cls * cls_own + w_rec * recon_own
    center_cls_after = momentum * cc + (1 - momentum) * tc.mean(dim=0)
    center_patch_after = momentum * cp + (1 - momentum) * tp.reshape(-1, kp).mean(dim=0)

    case = {
        "name": name,
        "loss": "smit_total",
        "seed": seed,
        "params": {
            "batch_per_view": b,
            "views": views,
            "volume": [size, size, size],
            "mask_block_voxels": block,
            "mask_ratio": ratio,
            "token_grid": grid,
            "num_tokens": n,
            "masked_tokens_per_image": n_masked,
            "cls_out_dim": kc,
            "patch_out_dim": kp,
            "teacher_temp_cls": tt_cls,
            "teacher_temp_patch": tt_patch,
            "student_temp": st,
            "center_momentum": momentum,
            "w_patch": w_patch,
            "w_cls": w_cls,
            "w_rec": w_rec,
            "recon_eps": 1e-05,
        },
        "tensors": store.describe(name),
        "layout": f"all tensors are concatenated over the two views along axis 0 (rows 0..B-1 = view 0, rows B..2B-1 = view 1, image b of view 0 and image b of view 1 are the same volume). img/x_rec [2B, 1, D, H, W]; mask [2B, 1, D, H, W] U8 = token_mask [2B, d, h, w] U8 repeated {block}x per axis; token n of the patch tensors is block (i, j, k) with n = (i*h + j)*w + k (row-major flatten of token_mask); teacher_cls/student_cls [2B, Kc]; teacher_patch/student_patch [2B, N, Kp]; centers = values BEFORE this step",
        "generation": f"seed {seed}: img=N(0,1); x_rec=0.7*img+0.6*N(0,1); token masks via randperm (ceil({n}*{ratio})={n_masked} per image); proto=1.5*N(0,1); teacher=proto+0.5*N(0,1), student=0.8*proto+0.8*N(0,1) per view; centers 0.3*N(0,1)",
        "reference_call": f"total = {w_patch} * patch + {w_cls} * cls + {w_rec} * recon (SMIT Cls_Patch_Loss with lambda1=w_cls, lambda2=w_patch, rec_w=w_rec)",
        "terms_f32": {t: smit["f32"][t] for t in ("patch", "cls", "recon")},
        "terms_f64": {"patch": patch_own, "cls": cls_own, "recon": recon_own},
        "terms_lightly_f32": {t: light["f32"][t] for t in ("patch", "cls", "recon")},
        "cls_pairs_summed": [list(p) for p in pairs],
        "center_cls_after_f64": nums(center_cls_after),
        "center_patch_after_f64": nums(center_patch_after),
        "center_after_max_abs_diff": {
            "smit_code_f32_cls_vs_f64": max_abs(smit_centers["f32"][0], center_cls_after),
            "smit_code_f32_patch_vs_f64": max_abs(smit_centers["f32"][1], center_patch_after),
            "smit_code_f64_cls_vs_f64": max_abs(smit_centers["f64"][0], center_cls_after),
            "smit_code_f64_patch_vs_f64": max_abs(smit_centers["f64"][1], center_patch_after),
        },
        "term_abs_diffs": {
            "patch_smit_code_f64_vs_own": abs(smit["f64"]["patch"] - patch_own),
            "cls_smit_code_f64_vs_own": abs(smit["f64"]["cls"] - cls_own),
            "recon_smit_code_f64_vs_own": abs(smit["f64"]["recon"] - recon_own),
            "patch_lightly_f64_vs_own": abs(light["f64"]["patch"] - patch_own),
            "cls_lightly_f64_vs_own": abs(light["f64"]["cls"] - cls_own),
        },
    }
    runs = {
        "smit_official_code_restated": {"f32": smit["f32"]["total"], "f64": smit["f64"]["total"]},
        "lightly_components (IBOTPatchLoss + DINOLoss + SimMIM L1)": {"f32": light["f32"]["total"], "f64": light["f64"]["total"]},
        "own_formula": {"f64": total_own},
    }
    case.update(values(smit["f32"]["total"], total_own, runs))
    return case


# ---------------------------------------------------------------------------------------
# 7. CPC InfoNCE


def infonce_own(pred, target, similarity, temperature):
    p = pred.double().reshape(-1, pred.shape[-1])
    t = target.double().reshape(-1, target.shape[-1])
    if similarity == "cos":
        p = own_normalize(p)
        t = own_normalize(t)
    m = p.shape[0]
    per = []
    for i in range(m):
        logits = torch.stack([(p[i] * t[j]).sum() for j in range(m)])
        if similarity == "cos":
            logits = logits / temperature
        per.append(torch.logsumexp(logits, dim=0) - logits[i])
    per = torch.stack(per)
    return per.mean().item(), per.tolist()


def case_cpc(store, name, seed, b, p, d, similarity, temperature, noise):
    g = gen(seed)
    target = torch.randn(b, p, d, generator=g)
    pred = 0.25 * (target + noise * torch.randn(b, p, d, generator=g))
    t = store.put(name, {"pred": pred, "target": target})
    pred, target = t["pred"], t["target"]
    m = b * p
    runs = {"torch.nn.functional.cross_entropy": {}}
    if similarity == "cos":
        call = f"F.cross_entropy(F.normalize(pred.reshape(-1, D), dim=1) @ F.normalize(target.reshape(-1, D), dim=1).T / {temperature}, arange(B*P))"
    else:
        call = "F.cross_entropy(pred.reshape(-1, D) @ target.reshape(-1, D).T, arange(B*P))"
    for key, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        x = pred.to(dtype).reshape(-1, d)
        y = target.to(dtype).reshape(-1, d)
        if similarity == "cos":
            logits = F.normalize(x, dim=1) @ F.normalize(y, dim=1).T / temperature
        else:
            logits = x @ y.T
        runs["torch.nn.functional.cross_entropy"][key] = F.cross_entropy(logits, torch.arange(m)).item()
    value_f64, per = infonce_own(pred, target, similarity, temperature)
    runs["own_formula"] = {"f64": value_f64}
    if similarity == "cos":
        name_ctr = "mocov3_ctr_official_restated / (2T)"
        runs[name_ctr] = {}
        for key, dtype in (("f32", torch.float32), ("f64", torch.float64)):
            ctr = mocov3_ctr_official(pred.to(dtype).reshape(-1, d), target.to(dtype).reshape(-1, d), temperature)
            runs[name_ctr][key] = (ctr / (2 * temperature)).item()
    case = {
        "name": name,
        "loss": "cpc_infonce",
        "seed": seed,
        "params": {
            "batch_size": b,
            "num_predictions": p,
            "dim": d,
            "similarity": similarity,
            "temperature": temperature,
            "negatives_per_prediction": m - 1,
        },
        "tensors": store.describe(name),
        "layout": "pred/target [B, P, D]; row index i = b*P + p after reshape(B*P, D)",
        "generation": f"target=N(0,1); pred=0.25*(target+{noise}*N(0,1)) (seed {seed})",
        "reference_call": call,
        "per_prediction_loss_f64": per,
    }
    case.update(values(runs["torch.nn.functional.cross_entropy"]["f32"], value_f64, runs))
    return case


# ---------------------------------------------------------------------------------------
# 8. Rotation prediction


def case_rotation(store, name, seed, b, r):
    g = gen(seed)
    logits = 2 * torch.randn(b, r, generator=g)
    labels = torch.randint(0, r, (b,), generator=g)
    t = store.put(name, {"logits": logits, "labels": labels})
    logits, labels = t["logits"], t["labels"]
    runs = {"torch.nn.CrossEntropyLoss": {}}
    for key, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        runs["torch.nn.CrossEntropyLoss"][key] = torch.nn.CrossEntropyLoss()(logits.to(dtype), labels).item()
    l64 = logits.double()
    per = torch.stack([torch.logsumexp(l64[i], dim=0) - l64[i, labels[i]] for i in range(b)])
    value_f64 = per.mean().item()
    runs["own_formula"] = {"f64": value_f64}
    case = {
        "name": name,
        "loss": "rotation_ce",
        "seed": seed,
        "params": {"batch_size": b, "num_classes": r},
        "tensors": store.describe(name),
        "generation": f"logits=2*N(0,1)[B,R]; labels=randint(0,R) I64 (seed {seed})",
        "reference_call": "torch.nn.CrossEntropyLoss()(logits, labels)",
        "per_sample_loss_f64": per.tolist(),
    }
    case.update(values(runs["torch.nn.CrossEntropyLoss"]["f32"], value_f64, runs))
    return case


# ---------------------------------------------------------------------------------------


def build(opts, stored=None):
    store = Store(stored)
    c1_size, c1_block = opts["simmim_c1"]
    c2_size, c2_block = opts["simmim_c2"]
    smit_size, smit_block = opts["smit"]
    cases = [
        case_ntxent(store, "ntxent_b8_d32_t010", 5101, 8, 32, 0.1, 1.2, 1.0),
        case_ntxent(store, "ntxent_b8_d32_t050", 5102, 8, 32, 0.5, 0.6, 1.0),
        case_ntxent(store, "ntxent_b4_d64_t050_scaled", 5103, 4, 64, 0.5, 1.0, 7.5),
        case_mocov3(store, "mocov3_b8_d32_t020", 5201, 8, 32, 0.2),
        case_mocov3(store, "mocov3_b6_d48_t100", 5202, 6, 48, 1.0),
        case_dino(store, "dino_b4_k64_tt004_c0", 5301, 4, 64, 0.04, False),
        case_dino(store, "dino_b6_k48_tt007_cgiven", 5302, 6, 48, 0.07, True),
        case_ibot(store, "ibot_b4_n64_k32_tt004_c0", 5401, 4, 64, 32, 0.04, 0.5, False, False),
        case_ibot(store, "ibot_b5_n27_k48_tt007_cgiven_edge", 5402, 5, 27, 48, 0.07, 0.45, True, True),
        case_simmim(store, f"simmim_b2_c1_{c1_size}", 5501, 2, 1, c1_size, c1_block),
        case_simmim(store, f"simmim_b2_c2_{c2_size}", 5502, 2, 2, c2_size, c2_block),
        case_smit(store, f"smit_total_b2x2_{smit_size}", 5601, smit_size, smit_block),
        case_cpc(store, "cpc_dot_b4_p6_d32", 5701, 4, 6, 32, "dot", None, 2.0),
        case_cpc(store, "cpc_cos_t010_b4_p6_d32", 5702, 4, 6, 32, "cos", 0.1, 2.5),
        case_cpc(store, "cpc_dot_b3_p8_d16", 5703, 3, 8, 16, "dot", None, 1.5),
        case_rotation(store, "rotation_r4_b8", 5801, 8, 4),
        case_rotation(store, "rotation_r10_b8", 5802, 8, 10),
    ]
    return store, cases


def release(name):
    """A package's version without its local label (2.9.1+cpu -> 2.9.1); every package
    of VERSION_KEYS is required, so a missing one stops the run."""
    return importlib.metadata.version(name).split("+")[0]


def parse_size(text):
    size, block = (int(x) for x in text.split(":"))
    if size % block:
        raise argparse.ArgumentTypeError(f"{text}: SIZE must be a multiple of BLOCK")
    return size, block


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", help="fixture root; files go to OUT_DIR/ssl_losses/")
    p.add_argument("--preset", choices=sorted(PRESETS), default="repo")
    p.add_argument("--simmim-c1", type=parse_size, metavar="SIZE:BLOCK")
    p.add_argument("--simmim-c2", type=parse_size, metavar="SIZE:BLOCK")
    p.add_argument("--smit", type=parse_size, metavar="SIZE:BLOCK")
    p.add_argument("--set", dest="set_name", help="the JSON's `set` label (preset: testdata / dev)")
    args = p.parse_args()

    opts = dict(PRESETS[args.preset])
    for key in ("simmim_c1", "simmim_c2", "smit"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    if args.set_name:
        opts["set"] = args.set_name

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)

    store, cases = build(opts)
    doc = {
        "set": opts["set"],
        "versions": versions(VERSION_KEYS, version=release),
        "conventions": CONVENTIONS,
        "sources": SOURCES,
        "cases": cases,
    }
    out = os.path.join(args.out_dir, "ssl_losses")
    os.makedirs(out, exist_ok=True)
    tensor_path = os.path.join(out, "cases.safetensors")
    save_file(store.tensors, tensor_path)
    write_json(os.path.join(out, "cases.json"), doc)

    # Read the file back and recompute every case from the stored tensors.
    reloaded = load_file(tensor_path)
    same = sorted(reloaded) == sorted(store.tensors) and all(torch.equal(reloaded[k], v) for k, v in store.tensors.items())
    _, again = build(opts, stored=reloaded)
    d32 = max(abs(a["value_f32"] - b["value_f32"]) for a, b in zip(cases, again))
    d64 = max(abs(a["value_f64"] - b["value_f64"]) for a, b in zip(cases, again))
    print(json.dumps({
        "cases_rechecked": len(again),
        "value_f32_recompute_max_abs": d32,
        "value_f64_recompute_max_abs": d64,
        "json_recompute_identical": to_json(again) == to_json(cases),
        "tensors_reload_identical": same,
        "tensors_in_file": len(reloaded),
    }, indent=1))
    for fn in ("cases.json", "cases.safetensors"):
        print(fn, os.path.getsize(os.path.join(out, fn)))


if __name__ == "__main__":
    main()
