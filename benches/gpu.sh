#!/usr/bin/env bash
# The GPU checks, run once on a machine with a GPU:
#  1. training on the GPU agrees with the CPU: two epochs of the tiny preset on a small
#     synthetic task, same seed and data, on `--device cpu` and on the GPU device;
#  2. `medssl speed` on the GPU device against PyTorch + MONAI on the same card (CUDA),
#     per setting, with the card memory each process used (nvidia-smi, sampled every
#     50 ms, where there is one).
# Either device is first checked by medssl itself (README, "GPUs"): a device that
# computes long sums or convolution gradients wrongly is refused before anything runs.
# Usage: benches/gpu.sh [--device cuda|wgpu] MEDSSL [OUT_DIR] [check|speed|all]
#   (MEDSSL built with `--features cuda` or `--features wgpu`; default device cuda)
# Env: PYTHON (default python3, with torch and monai), SETTINGS (speed settings, `;`-separated).
set -euo pipefail
cd "$(dirname "$0")/.."
device=cuda
if [ "${1:-}" = --device ]; then
  device=${2:?--device needs cuda or wgpu}
  shift 2
fi
case "$device" in
  cuda | cuda:* | wgpu) ;;
  *) echo "gpu.sh: --device $device: use cuda, cuda:N or wgpu" >&2; exit 2 ;;
esac
medssl=$(realpath "${1:?usage: benches/gpu.sh [--device cuda|wgpu] MEDSSL [OUT_DIR] [check|speed|all]}")
out=${2:-gpu-out}
part=${3:-all}
python=${PYTHON:-python3}
settings=${SETTINGS:-"--feature-size 24 --roi 64 --volume 128,128,96;--feature-size 48 --roi 96 --volume 192,192,160"}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

smi=$(command -v nvidia-smi || true)
if [ -n "$smi" ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/card.txt"
fi

if [ "$part" != speed ]; then
echo "== training on $device against cpu"
"$medssl" synth --kind abdomen-ct --cases 5 --size 64 --seed 1 --out "$work/task" >/dev/null
for run in cpu gpu; do
  [ "$run" = cpu ] && on=cpu || on=$device
  "$medssl" finetune --task "$work/task" --out "$work/run-$run" --device "$on" --quiet \
    --set train.epochs=2 --set train.warmup_epochs=1 --set validation.every=1
done
"$python" - "$work/run-cpu/metrics.jsonl" "$work/run-gpu/metrics.jsonl" <<'PY' | tee "$out/train_check.txt"
import json, sys
runs = [[json.loads(l) for l in open(p)] for p in sys.argv[1:]]
worst = 0.0
for cpu, gpu in zip(*runs):
    for key in ("loss", "dice"):
        if key in cpu:
            diff = abs(cpu[key] - gpu[key]) / max(abs(cpu[key]), 1e-6)
            worst = max(worst, diff) if key == "loss" else worst
            print(f"{cpu['event']:<11} epoch {cpu['epoch']}: {key} cpu {cpu[key]:.6f} gpu {gpu[key]:.6f} rel diff {diff:.2e}")
print(f"largest relative loss difference {worst:.2e}: {'agree' if worst < 1e-3 else 'DIFFER'}")
PY
fi
[ "$part" = check ] && exit 0

# Runs "$@" while sampling the card's used memory; prints the JSON line of the command with
# gpu_peak_mb added (the peak above what was in use before it started).
with_gpu_memory() {
  local base log pid json
  if [ -z "$smi" ]; then
    "$@"
    return
  fi
  base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  log=$(mktemp)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 >"$log" &
  pid=$!
  json=$("$@")
  kill "$pid"
  "$python" -c 'import json,sys; d=json.loads(sys.argv[1]); d["gpu_peak_mb"]=max(int(l) for l in open(sys.argv[2]) if l.strip())-int(sys.argv[3]); print(json.dumps(d))' \
    "$json" "$log" "$base"
}

IFS=';' read -ra rows <<<"$settings"
for setting in "${rows[@]}"; do
  echo "== speed $setting"
  # shellcheck disable=SC2086
  ours=$(with_gpu_memory "$medssl" speed --device "$device" --iters 10 --json $setting)
  # shellcheck disable=SC2086
  theirs=$(with_gpu_memory "$python" benches/speed/monai_speed.py --device cuda --threads 2 --iters 10 $setting)
  echo "$ours" >>"$out/speed.jsonl"
  echo "$theirs" >>"$out/speed.jsonl"
  "$python" benches/speed/table.py "$ours" "$theirs" gpu_peak_mb | tee -a "$out/speed.txt"
done
