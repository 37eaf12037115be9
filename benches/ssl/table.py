"""The table of benches/ssl.sh: per method, the pretraining loss at the start and the
end, its collapse monitors, its speed, and the test Dice of a fine-tune from it against
one from scratch. Usage: table.py OUT METHOD..."""

import json
import os
import sys


def steps(run):
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [r for r in map(json.loads, f) if r.get("event") == "step"]


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


def monitors(first, last):
    keys = sorted(set(first.get("monitors", {})) | set(last.get("monitors", {})))
    return ", ".join(
        f"{k} {first['monitors'].get(k, float('nan')):.3g} → {last['monitors'].get(k, float('nan')):.3g}"
        for k in keys
    )


def main():
    out, methods = sys.argv[1], sys.argv[2:]
    scratch = dice(out, "scratch")
    print(f"fine-tune from scratch: test Dice {scratch:.4f}\n")
    print("| method | steps | steps/s (median) | loss first | loss last 5 | monitors first → last | test Dice | Δ vs scratch |")
    print("|---|---|---|---|---|---|---|---|")
    for method in methods:
        log = steps(os.path.join(out, method))
        if not log:
            print(f"| {method} | not run | | | | | | |")
            continue
        # The median step time: robust to a pause of the process (or a slow first step).
        seconds = sorted(s["seconds"] for s in log)[len(log) // 2]
        d = dice(out, method)
        print(
            f"| {method} | {len(log)} | {1 / seconds:.3f} | {log[0]['loss']:.4f} "
            f"| {mean(s['loss'] for s in log[-5:]):.4f} | {monitors(log[0], log[-1])} "
            f"| {d:.4f} | {d - scratch:+.4f} |"
        )


if __name__ == "__main__":
    main()
