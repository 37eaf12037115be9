#!/usr/bin/env bash
# The evidence study (benches/evidence/study.toml) in WORK: the synthetic data, the study
# with every job resumed where it stopped, then the strategy comparison
# (study-warmup.toml: the same encoders fine-tuned with the decoder warmed up first),
# and both reports copied into benches/evidence/ (RESULTS.md, RESULTS-warmup.md and
# their figures). Run it again after an interruption.
# Usage: benches/evidence/run.sh WORK   Env: MEDSSL (default: build the release binary).
set -euo pipefail
work="$(realpath -m "$1")"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
if [ -z "${MEDSSL:-}" ]; then
  cargo build --release -q -p medssl
  MEDSSL="${CARGO_TARGET_DIR:-target}/release/medssl"
fi
medssl="$(realpath "$MEDSSL")"
mkdir -p "$work/data"
cd "$work"
cp "$here/study.toml" "$here/study-warmup.toml" .
# size 64: the tiny preset's fine-tuning window; each task's seed differs from the
# collection's, so no task case is a pretraining volume.
synth() {
  local dir="data/$1"; shift
  [ -d "$dir" ] || {
    rm -rf "$dir.part"
    "$medssl" synth --size 64 --out "$dir.part" "$@" --quiet && mv "$dir.part" "$dir"
  }
}
synth ct-collection --kind abdomen-ct --unlabelled --cases 200 --seed 1
synth abdomen-ct --kind abdomen-ct --cases 24 --seed 0
synth abdomen-mri --kind abdomen-mri --cases 24 --seed 2
synth tumor-ct --kind tumor-ct --cases 24 --seed 3
synth ct-source --kind abdomen-ct --cases 40 --seed 7
"$medssl" study validate study.toml
"$medssl" study run study.toml --quiet || true
"$medssl" study report study.toml
cp study/report/report.md "$here/RESULTS.md"
mkdir -p "$here/figures"
cp study/report/figures/*.png "$here/figures/"

# The encoders of the first study under the names study-warmup.toml lists.
mkdir -p encoders
for run in study/pretrain/* study/supervised/*; do
  [ -f "$run/encoder.safetensors" ] || continue
  case "$run" in
    study/supervised/*) name="supervised-$(basename "$run")" ;;
    *) name="$(basename "$run")" ;;
  esac
  cp "$run/encoder.safetensors" "encoders/$name.safetensors"
done
"$medssl" study run study-warmup.toml --quiet || true
"$medssl" study report study-warmup.toml
sed 's#(figures/#(figures-warmup/#g' study-warmup/report/report.md > "$here/RESULTS-warmup.md"
mkdir -p "$here/figures-warmup"
cp study-warmup/report/figures/*.png "$here/figures-warmup/"
