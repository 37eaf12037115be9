#!/usr/bin/env bash
# Data-pipeline throughput: medssl against MONAI on the same files, same transforms, same
# thread count, on this machine. Prints volumes per second (best pass), the ratio
# medssl / MONAI, and where each side spends its time.
#
# Data: 6 synthetic abdominal CT volumes, 512 x 512 x 119..127 int16 HU at
# 0.75 x 0.75 x 2.5 mm, stored LPS, with a 3-class label map (benches/data_pipeline/
# make_volumes.py, deterministic, written once under bench-data/pipeline/, gitignored).
# Pipeline (benches/data_pipeline/pipeline.toml, read by both sides): load .nii.gz ->
# orientation RAS -> spacing 1.5 x 1.5 x 2.0 mm (trilinear image, nearest label) ->
# scale_intensity_range -175..250 -> 0..1 clipped -> crop_foreground (image > 0) ->
# rand_crop_by_pos_neg_label 96^3, pos 1 neg 1, 4 crops per volume.
#
# medssl: crates/medssl-data/examples/pipeline_throughput.rs, cases in parallel on a
# rayon pool of THREADS threads (the transforms' own rayon loops share that pool).
# MONAI (benches/data_pipeline/monai_pipeline.py) runs two ways, and the faster counts:
#   loop    - Compose applied case after case, torch.set_num_threads(THREADS);
#   workers - monai.data.DataLoader, num_workers=THREADS processes of one torch thread.
# Before timing, the deterministic steps (up to crop_foreground) of both sides are
# compared: shapes and affines must match, image values within 1e-5, labels exactly; the
# benchmark stops when they do not, so a fast but wrong pipeline cannot pass.
#
# Usage: benches/data_pipeline.sh
# Env: THREADS (default 2), PASSES (default 2), DATA (default bench-data/pipeline),
#      VENV (default bench-data/venv-torch, created with torch, monai, nibabel and
#      safetensors when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${THREADS:-2}"
passes="${PASSES:-2}"
data="${DATA:-bench-data/pipeline}"
venv="${VENV:-bench-data/venv-torch}"
config=benches/data_pipeline/pipeline.toml
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch monai nibabel safetensors
fi
py=("$venv/bin/python" -W ignore::FutureWarning)
monai=("${py[@]}" benches/data_pipeline/monai_pipeline.py "$data" "$config" --threads "$threads")

"${py[@]}" benches/data_pipeline/make_volumes.py "$data"
cargo build --release -q -p medssl-data --example pipeline_throughput
medssl="${CARGO_TARGET_DIR:-target}/release/examples/pipeline_throughput"

dump="$data/medssl-deterministic"
RAYON_NUM_THREADS="$threads" "$medssl" "$data" "$config" --dump "$dump" > /dev/null
if ! check=$("${monai[@]}" --check "$dump"); then
  echo "medssl and MONAI disagree on the deterministic steps: $check" >&2
  exit 1
fi
ours=$(RAYON_NUM_THREADS="$threads" "$medssl" "$data" "$config" --passes "$passes")
loop=$("${monai[@]}" --passes "$passes" --mode loop)
workers=$("${monai[@]}" --passes "$passes" --mode workers)

"${py[@]}" - "$check" "$ours" "$loop" "$workers" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, sys
check, ours, loop, workers = (json.loads(a) for a in sys.argv[1:5])
print(f"{ours['cases']} volumes, {ours['crops_per_pass']} crops of {ours['crop_shape']} per pass; "
      f"threads {ours['threads']}; best of {len(ours['pass_seconds'])} passes; load average {sys.argv[5]}")
print(f"deterministic steps ({' -> '.join(check['steps'])}) against MONAI: shapes equal, "
      f"affine max |diff| {check['affine_max_abs_diff']:.1e}, image max |diff| {check['image_max_abs_diff']:.1e} "
      f"(tolerance {check['image_tol']:.0e}), label voxels differing {check['label_mismatched_voxels']}")
rows = [("medssl (rayon over cases)", ours), (f"MONAI loop (torch threads {loop['threads']})", loop),
        (f"MONAI DataLoader ({workers['threads']} workers)", workers)]
print(f"{'':<34}{'volumes/s':>10}{'s/pass':>10}   passes (s)")
for name, r in rows:
    print(f"{name:<34}{r['volumes_per_second']:>10.3f}{r['cases'] / r['volumes_per_second']:>10.2f}   "
          + ", ".join(f"{s:.2f}" for s in r["pass_seconds"]))
best = max((loop, workers), key=lambda r: r["volumes_per_second"])
print(f"ratio medssl / best MONAI ({best['mode']}): {ours['volumes_per_second'] / best['volumes_per_second']:.2f}x (target >= 3)")

print("\nseconds per step in the best pass, summed over volumes (medssl runs THREADS volumes at a"
      "\ntime, so its sums are about threads x wall time; the MONAI loop runs one at a time):")
mine, theirs = dict(ours["step_seconds"]), dict(loop["step_seconds"])
print(f"{'step':<34}{'medssl':>10}{'MONAI loop':>12}")
print(f"{'load (read .nii.gz, f32 volume)':<34}{mine.pop('read_image') + mine['to_volume']:>10.2f}"
      f"{theirs.pop('load') + theirs.pop('ensure_channel_first'):>12.2f}")
print(f"{'  of which medssl to_volume':<34}{mine.pop('to_volume'):>10.2f}")
for name, seconds in mine.items():
    print(f"{name:<34}{seconds:>10.2f}{theirs[name]:>12.2f}")
PY
