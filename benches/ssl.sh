#!/usr/bin/env bash
# What each pretraining method does in a fixed time on this machine, and what it is
# worth after a few-shot fine-tune: for each method, a `tiny` pretraining of about
# BUDGET_S seconds on a synthetic unlabelled CT collection (the step count is set from a
# 3-step calibration run), then a SHOTS-shot fine-tune from its encoder, against the
# same fine-tune from scratch (same seed, same cases), from the encoder of that scratch
# fine-tune (the control), and from the encoder the pretraining started from. Prints one
# row per method: loss and collapse monitors over the first and last tenth of the steps,
# warnings, steps per second, how far the pretraining moved the encoder, test Dice and
# its differences from scratch and from the starting encoder, with the test cases won.
# Interrupted runs resume when the script is run again with the same OUT.
# Usage: benches/ssl.sh OUT TASK [METHOD...]   (TASK: a labelled MSD-layout task)
# Env: MEDSSL (default: build the release binary), BUDGET_S (600), SHOTS (2).
set -euo pipefail
out="$1"; task="$2"; shift 2
cd "$(dirname "$0")/.."
root="$PWD"
if [ -z "${MEDSSL:-}" ]; then
  cargo build --release -q -p medssl
  MEDSSL="${CARGO_TARGET_DIR:-target}/release/medssl"
fi
medssl="$(realpath "$MEDSSL")"
budget="${BUDGET_S:-600}"
shots="${SHOTS:-2}"
methods=("$@")
[ ${#methods[@]} -gt 0 ] || mapfile -t methods < <("$medssl" methods | awk 'NR > 1 {print $1}')
task="$(realpath "$task")"
mkdir -p "$out"
cd "$out"

[ -d ct ] || "$medssl" synth --kind abdomen-ct --unlabelled --cases 40 --size 64 --seed 1 --out ct

# A run directory is finished when it holds result.json; one without it is resumed.
pretrain() {
  local method="$1" steps="$2"
  if [ -f "$method/result.json" ]; then return; fi
  if [ -d "$method" ]; then
    "$medssl" pretrain --resume "$method" --quiet
  else
    "$medssl" pretrain --method "$method" --data ct --out "$method" --steps "$steps" --quiet
  fi
}

finetune() {
  local name="$1" init="$2"
  if [ ! -f "ft-$name/result.json" ]; then
    if [ -d "ft-$name" ]; then
      "$medssl" finetune --resume "ft-$name" --quiet
    else
      "$medssl" finetune --task "$task" --out "ft-$name" --shots "$shots" --init "$init" --quiet
    fi
  fi
  [ -f "ft-$name.test.json" ] || "$medssl" evaluate --run "ft-$name" --split test --json > "ft-$name.test.json"
}

# Seconds per step of METHOD: the mean of steps 2 and 3 of a throw-away run.
seconds_per_step() {
  local method="$1"
  rm -rf "calibrate-$method"
  "$medssl" pretrain --method "$method" --data ct --out "calibrate-$method" --steps 3 --quiet > /dev/null
  python3 -c 'import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if "\"step\"" in l]
print(sum(s["seconds"] for s in steps[1:]) / len(steps[1:]))' "calibrate-$method/metrics.jsonl"
  rm -rf "calibrate-$method"
}

# The encoder a pretraining of METHOD starts from (its seed's initialisation), kept as
# METHOD.start.safetensors so the table can say how far the pretraining moved it: the
# encoder of a 1-step run, whose step has learning rate 0 (every recipe warms up from 0;
# checked in its log).
initial_encoder() {
  local method="$1"
  [ ! -f "$method.start.safetensors" ] || return 0
  rm -rf "start-$method"
  "$medssl" pretrain --method "$method" --data ct --out "start-$method" --steps 1 --quiet > /dev/null
  python3 -c 'import json, sys
step = next(json.loads(l) for l in open(sys.argv[1]) if "\"step\"" in l)
sys.exit(step["lr"] != 0)' "start-$method/metrics.jsonl" &&
    mv "start-$method/encoder.safetensors" "$method.start.safetensors"
  rm -rf "start-$method"
}

# Every pretraining first (their figures need no fine-tune), then the fine-tunes.
for method in "${methods[@]}"; do
  if [ ! -d "$method" ]; then
    per_step=$(seconds_per_step "$method")
    steps=$(python3 -c "print(max(10, round($budget / $per_step)))")
    echo "$method: $per_step s per step, $steps steps"
  fi
  initial_encoder "$method"
  pretrain "$method" "${steps:-0}" > "$method.log" 2>&1
done
finetune scratch scratch > ft-scratch.log 2>&1
# The control: the same fine-tune from the encoder of the scratch fine-tune, an encoder
# that has seen this task's labels. Its gain over scratch is what a useful encoder is
# worth in this measurement.
[ -f control-encoder.safetensors ] ||
  python3 "$root/benches/ssl/encoder_only.py" ft-scratch/best.safetensors control-encoder.safetensors
finetune control control-encoder.safetensors > ft-control.log 2>&1
for method in "${methods[@]}"; do
  finetune "$method" "$method/encoder.safetensors" > "ft-$method.log" 2>&1
done
# The same fine-tunes from the encoders the pretrainings started from: each method's
# random initialisation differs from the others' and from scratch's, and that alone
# moves Dice, so a pretraining's own effect is the difference between its two rows.
# They run after every method's fine-tune, so an interrupted run has the main column.
for method in "${methods[@]}"; do
  [ ! -f "$method.start.safetensors" ] ||
    finetune "$method-start" "$method.start.safetensors" > "ft-$method-start.log" 2>&1
done
python3 "$root/benches/ssl/table.py" . "${methods[@]}"
