"""Prints the medssl / PyTorch table of one `medssl speed` and one `monai_speed.py` run.
Usage: table.py OURS_JSON THEIRS_JSON [EXTRA_KEY ...]; a ratio below 1 means medssl is faster."""
import json
import sys

ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
keys = ["forward_ms", "train_step_ms", "sliding_window_ms", "peak_rss_mb", *sys.argv[3:]]
print(
    f"{ours['backend']} vs {theirs['backend']}: feature size {ours['feature_size']}, "
    f"roi {ours['roi']}, volume {ours['volume']}, threads {ours['threads']} vs {theirs['threads']}"
)
print(f"{'measurement':<22}{'medssl':>12}{'PyTorch':>12}{'ratio':>8}")
for key in keys:
    a, b = ours.get(key), theirs.get(key)
    if a is None or b is None:
        print(f"{key:<22}{'n/a' if a is None else f'{a:.1f}':>12}{'n/a' if b is None else f'{b:.1f}':>12}")
        continue
    print(f"{key:<22}{a:>12.1f}{b:>12.1f}{a / b:>8.2f}")
