"""The table of benches/ssl.sh: per method, the pretraining loss and collapse monitors
at the start and the end, the warnings it logged (collapse), its speed, how far it moved
the encoder from its initialisation, and the test Dice of a fine-tune from it against
one from scratch, the control's (from the encoder of the scratch fine-tune) and one from
the encoder the pretraining started from.
Usage: table.py OUT METHOD..."""

import csv
import json
import math
import os
import sys
import tomllib

import safetensors_file


def events(run):
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(map(json.loads, f))


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def dice(out, name):
    path = os.path.join(out, f"ft-{name}.test.json")
    try:
        with open(path) as f:
            return json.load(f)["mean_dice"]
    except (OSError, ValueError, KeyError):
        return float("nan")


def case_dice(out, name):
    """Each test case's Dice, averaged over the classes (`evaluation-test.csv`)."""
    per_case = {}
    try:
        with open(os.path.join(out, f"ft-{name}", "evaluation-test.csv")) as f:
            for row in csv.DictReader(f):
                per_case.setdefault(row["case"], []).append(float(row["dice"]))
    except (OSError, ValueError, KeyError):
        return {}
    return {case: mean(values) for case, values in per_case.items()}


def versus(out, name, other):
    """`name`'s test Dice minus `other`'s, and in how many test cases `name` is the higher
    (a paired count: the runs share their seed, so their cases)."""
    ours, theirs = case_dice(out, name), case_dice(out, other)
    if not ours or not theirs:
        return ""
    wins = sum(ours[c] > theirs.get(c, float("inf")) for c in ours)
    return f"{dice(out, name) - dice(out, other):+.4f} ({wins}/{len(ours)})"


def moved(out, method):
    """How far pretraining moved the encoder from its initialisation: ‖end − start‖ / ‖start‖
    over every encoder weight. Next to a fine-tune's own movement, it says whether the
    pretraining changed the network enough to matter."""
    try:
        start = safetensors_file.float32(os.path.join(out, f"{method}.start.safetensors"), "swinViT.")
        end = safetensors_file.float32(os.path.join(out, method, "encoder.safetensors"), "swinViT.")
    except (OSError, ValueError):
        return float("nan")
    if start.keys() != end.keys():
        return float("nan")
    change = sum((a - b) ** 2 for name, w in start.items() for a, b in zip(end[name], w))
    size = sum(a * a for w in start.values() for a in w)
    return math.sqrt(change / size)


def chance_levels(run, method):
    """Each loss component's chance level, weighted as the method weights it: the loss of
    a network that has learnt nothing (the levels of crates/medssl-train/tests/
    pretrain_learning.rs, from the run's own settings). Reconstruction terms have none
    (the L1 of the best constant prediction depends on the data): None."""
    with open(os.path.join(run, "config.toml"), "rb") as f:
        config = tomllib.load(f)
    batch, pretext = config["data"]["loader"]["batch_size"], config.get("pretext", {})
    head = pretext.get("head", {}).get("out_dim")
    weight = lambda name: pretext.get(f"{name}_weight", 1.0)
    if method == "simclr":
        return {"loss": math.log(2 * batch - 1)}
    if method == "mocov3":
        return {"loss": 2 * 2 * pretext["temperature"] * math.log(batch)}
    if method == "cpc":
        grid, context = pretext["grid"], pretext["context_rows"]
        return {"loss": math.log(batch * (grid**3 - context * grid**2))}
    if method == "rotnet":
        return {"loss": math.log(10 if pretext["rotations"] == "axis-planes" else 4)}
    if method == "swinunetr-ssl":
        return {
            "rotation": weight("rotation") * math.log(4),
            "contrastive": weight("contrastive") * math.log(2 * batch - 1),
            "reconstruction": None,
        }
    if method == "simmim":
        return {"loss": None}
    if method == "dino":
        return {"loss": math.log(head)}
    if method in ("ibot", "smit"):
        levels = {"global": weight("global") * math.log(head), "patch": weight("patch") * math.log(head)}
        if method == "smit":
            levels["reconstruction"] = None
        return levels
    return {}


def against_chance(run, method, last):
    """The last tenth's loss terms, each beside its weighted chance level."""
    parts = []
    for name, level in chance_levels(run, method).items():
        values = [s["loss"] if name == "loss" else s.get("components", {}).get(name) for s in last]
        value = mean(v for v in values if v is not None)
        parts.append(f"{name} {value:.3f} / " + ("–" if level is None else f"{level:.3f}"))
    return ", ".join(parts)


def ends(log):
    """The first and the last tenth of the steps (at least 3 each): one step of a batch of
    2 is too noisy to say where a run started or ended."""
    n = max(3, len(log) // 10)
    return log[:n], log[-n:]


def monitors(first, last):
    keys = sorted({k for s in first + last for k in s.get("monitors", {})})
    at = lambda part, k: mean(s["monitors"][k] for s in part if k in s.get("monitors", {}))
    return ", ".join(f"{k} {at(first, k):.3g} → {at(last, k):.3g}" for k in keys)


def main():
    out, methods = sys.argv[1], sys.argv[2:]
    print(f"fine-tune from scratch: test Dice {dice(out, 'scratch'):.4f}")
    print(
        f"control, from the encoder of that fine-tune: test Dice {dice(out, 'control'):.4f}, "
        f"{versus(out, 'control', 'scratch')} against scratch\n"
    )
    print(
        "| method | steps | steps/s (median) | loss, first tenth → last tenth "
        "| last tenth / chance level, per term "
        "| monitors, first tenth → last tenth | warnings | encoder moved | test Dice "
        "| Δ vs scratch (cases above) | Δ vs its start (cases above) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for method in methods:
        run = events(os.path.join(out, method))
        log = [e for e in run if e.get("event") == "step"]
        if not log:
            print(f"| {method} | not run | | | | | | | | | |")
            continue
        warnings = sum(e.get("event") == "warning" for e in run)
        # The median step time: robust to a pause of the process (or a slow first step).
        seconds = sorted(s["seconds"] for s in log)[len(log) // 2]
        first, last = ends(log)
        print(
            f"| {method} | {len(log)} | {1 / seconds:.3f} "
            f"| {mean(s['loss'] for s in first):.4f} → {mean(s['loss'] for s in last):.4f} "
            f"| {against_chance(os.path.join(out, method), method, last)} "
            f"| {monitors(first, last)} | {warnings} | {moved(out, method):.3f} "
            f"| {dice(out, method):.4f} | {versus(out, method, 'scratch')} "
            f"| {versus(out, method, method + '-start')} |"
        )


if __name__ == "__main__":
    main()
