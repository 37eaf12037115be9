#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), JOBS at a time (default 1), and
# prints per target: executions, seconds, and the crash/timeout/oom files it left.
# Usage: fuzz/run-all.sh [SECONDS] [JOBS] [TARGET...]
# Env: FUZZ_TARGET_DIR, the build directory (default fuzz/target).
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"; jobs="${2:-1}"; shift $(( $# > 2 ? 2 : $# ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(nifti dicom_file dicom_series dataset_json config_toml checkpoint)
logs="fuzz/logs"
mkdir -p "$logs"
flags=(-O -a -s none --target-dir "${FUZZ_TARGET_DIR:-fuzz/target}")
cargo +nightly fuzz build "${flags[@]}" || exit 1

run() {
  local target="$1" dict=()
  case "$target" in dicom_*) dict=(-dict=fuzz/dicom.dict) ;; esac
  mkdir -p "fuzz/corpus/$target"
  cargo +nightly fuzz run "${flags[@]}" "$target" -- "${dict[@]}" \
    -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 > "$logs/$target.log" 2>&1
  local rc=$?
  local execs
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$target.log" | grep -o '[0-9]*$')
  local found
  found=$(ls "fuzz/artifacts/$target" 2>/dev/null | wc -l)
  echo "$target: exit $rc, ${execs:-?} executions in ${seconds} s, $found artifact(s)"
}

for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
  run "$target" &
done
wait
