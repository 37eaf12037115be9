#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seed inputs: the IO fixtures, the project's own test
# files, and files medssl writes (synthetic NIfTI, dataset.json, study and run configs).
# Usage: fuzz/seed.sh [MEDSSL]   (MEDSSL: a medssl binary; default: the release build)
set -euo pipefail
cd "$(dirname "$0")"
fixtures="${MEDSSL_FIXTURES:-../testdata}"
medssl="${1:-${CARGO_TARGET_DIR:-../target}/release/medssl}"
[ -x "$medssl" ] || { echo "no medssl binary at $medssl (build with cargo build --release)" >&2; exit 1; }
separator='--medssl-fuzz-next-file--'
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for target in nifti dicom_file dicom_series dataset_json config_toml checkpoint; do
  mkdir -p "corpus/$target"
  # The kept regression inputs are seeds too.
  cp regressions/"$target"/* "corpus/$target/" 2>/dev/null || true
done

cp "$fixtures"/io/nifti/* corpus/nifti/
cp "$fixtures"/io/dicom/* corpus/dicom_file/
cp "$fixtures"/io/ct_series_oblique/*.dcm corpus/dicom_file/

# Series: a few consecutive slices of the oblique CT series, and one file alone.
mapfile -t slices < <(ls "$fixtures"/io/ct_series_oblique/*.dcm | sort)
for start in 0 10 20; do
  out="corpus/dicom_series/slices-$start"
  : > "$out"
  for i in 0 1 2; do
    [ "$i" -gt 0 ] && printf '%s' "$separator" >> "$out"
    cat "${slices[$((start + i))]}" >> "$out"
  done
done
cp "$fixtures"/io/dicom/MR_small.dcm corpus/dicom_series/one-file

# A synthetic task: its images, labels and dataset.json; and a study file and the
# fine-tuning and pretraining configurations written out in full.
"$medssl" synth --kind abdomen-ct --cases 2 --size 16 --seed 0 --out "$work/task" > /dev/null
cp "$work"/task/imagesTr/*.nii.gz corpus/nifti/
cp "$work"/task/dataset.json corpus/dataset_json/synth.json
"$medssl" study init "$work/study.toml" > /dev/null
cp "$work/study.toml" corpus/config_toml/study.toml
"$medssl" config show > corpus/config_toml/finetune.toml
"$medssl" config show --method simmim > corpus/config_toml/pretrain.toml

# dataset.json of the fuzz target's own one-case task, listed (MSD) and discovered
# (nnU-Net v2).
cat > corpus/dataset_json/listed.json <<'JSON'
{"name": "fuzz", "labels": {"0": "background", "1": "organ"}, "modality": {"0": "CT"},
 "numTraining": 1, "training": [{"image": "./imagesTr/case_000.nii.gz",
 "label": "./labelsTr/case_000.nii.gz"}], "test": []}
JSON
cat > corpus/dataset_json/discovered.json <<'JSON'
{"name": "fuzz", "labels": {"background": 0, "organ": 1}, "channel_names": {"0": "CT"},
 "numTraining": 1, "file_ending": ".nii.gz"}
JSON

cp ../crates/medssl-model/tests/data/* corpus/checkpoint/
chmod -R u+w corpus
echo "seeded: $(for d in corpus/*; do printf '%s=%s ' "${d#corpus/}" "$(ls "$d" | wc -l)"; done)"
