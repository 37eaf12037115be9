#!/usr/bin/env bash
# IO throughput: `medssl info` against nibabel (NIfTI) and pydicom (DICOM series) on the
# same files, plus `gzip -dc` as the decompression floor. Prints seconds (best of 3),
# MB/s of decoded voxels and the ratio medssl / reference.
# Usage: benches/io_throughput.sh [DATA_DIR]   (default: bench-data/, gitignored)
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-bench-data}"
venv="$data/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q nibabel==5.4.2 pydicom==3.0.2 numpy
fi
"$venv/bin/python" benches/io/make_data.py "$data"
cargo build --release -q -p medssl
medssl="${CARGO_TARGET_DIR:-target}/release/medssl"

best() { # best wall time of 3 runs of "$@", in seconds
  local best=""
  for _ in 1 2 3; do
    local s e
    s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N)
    best=$(python3 -c "b='$best'; t=$e-$s; print(min(float(b), t) if b else t)")
  done
  echo "$best"
}
row() { # name, raw MB, seconds, reference seconds
  python3 -c "print(f'{\"$1\":<34} {$3:8.2f} s {$2/$3:8.0f} MB/s   ratio medssl/ref = {$3/$4:.2f}')"
}

nii="$data/large_ct.nii.gz"
raw_mb=$(python3 -c "print(512*512*300*4/1e6)")
t_gzip=$(best bash -c "gzip -dc '$nii' > /dev/null")
t_nib=$(best "$venv/bin/python" benches/io/nibabel_info.py "$nii")
t_med=$(best "$medssl" info --json "$nii")
echo "file: $nii ($(du -m "$nii" | cut -f1) MB compressed, $raw_mb MB raw), threads: $(nproc)"
row "gzip -dc (decompression floor)" "$raw_mb" "$t_gzip" "$t_gzip"
row "nibabel load + stats" "$raw_mb" "$t_nib" "$t_nib"
row "medssl info --json" "$raw_mb" "$t_med" "$t_nib"

series="$data/ct_series_512"
raw_mb=$(python3 -c "print(512*512*300*2/1e6)")
t_pyd=$(best "$venv/bin/python" benches/io/pydicom_info.py "$series")
t_med=$(best "$medssl" info --json "$series")
echo "series: $series (300 files of 512x512 int16, $raw_mb MB)"
row "pydicom read + sort + stack + stats" "$raw_mb" "$t_pyd" "$t_pyd"
row "medssl info --json" "$raw_mb" "$t_med" "$t_pyd"
