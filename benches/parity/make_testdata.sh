#!/usr/bin/env bash
# Writes the repository's reference fixtures (testdata/) with the generators in this
# folder. Deterministic: the same package versions (requirements*.txt) give the same
# bytes. Usage: benches/parity/make_testdata.sh [OUT_DIR]   (default: testdata)
# Env: PYTHON (default: bench-data/venv-torch/bin/python).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-testdata}"
python="${PYTHON:-bench-data/venv-torch/bin/python}"
here=benches/parity
"$python" "$here/make_io_fixtures.py" "$out"
"$python" "$here/make_nrrd_fixtures.py" "$out"
"$python" "$here/make_loss_fixtures.py" "$out"
"$python" "$here/make_metric_fixtures.py" "$out"
"$python" "$here/make_cka_fixtures.py" "$out"
"$python" "$here/make_ssl_loss_fixtures.py" "$out"
# A 64x32x32 input is the smallest MONAI's SwinUNETR runs (at 32³ the bottleneck's
# instance norm sees one voxel); window 5 keeps the folder under 20 MB while the stages
# still have padded, shifted and shrunk windows. The sliding-window input is narrower
# than the ROI on one axis, so padding is checked too.
"$python" "$here/make_swinunetr_case.py" "$out" swinunetr_fs12_w5_64x32x32 \
  --window 5 --size 64,32,32 \
  --sliding-window sliding_window_fs12_w5 --sw-size 72,40,7 --roi 64,32,32
du -sh "$out"
