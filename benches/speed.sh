#!/usr/bin/env bash
# medssl speed against PyTorch + MONAI on this machine, same settings and thread count,
# one after the other; prints each row and the ratio medssl / PyTorch (below 1 = faster).
# Usage: benches/speed.sh [--feature-size 24] [--roi 64] [--volume 128,128,96] [--iters 5]
# Env: THREADS (default 2), VENV (default bench-data/venv-torch, created when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${THREADS:-2}"
venv="${VENV:-bench-data/venv-torch}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch monai einops
fi
cargo build --release -q -p medssl
medssl="${CARGO_TARGET_DIR:-target}/release/medssl"
ours=$(RAYON_NUM_THREADS="$threads" "$medssl" speed --json "$@")
theirs=$("$venv/bin/python" benches/speed/monai_speed.py --threads "$threads" "$@")
python3 benches/speed/table.py "$ours" "$theirs"
