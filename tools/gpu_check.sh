#!/usr/bin/env bash
# The one script for a lent GPU machine (H100, CUDA 13, PyTorch in python3, no network).
#   tools/gpu_check.sh LOGDIR
# Builds for sm_90, runs the whole test suite (GPU parity included), compute-sanitizer memcheck
# and racecheck over the kernel tests, the kernel benchmarks and their PyTorch baselines, and a
# short training run; full logs go to LOGDIR, a compact summary table is printed last (and saved
# as LOGDIR/summary.md). Exits non-zero when any step failed. Budget: under 8 minutes; the whole
# script stops within GPU_CHECK_BUDGET seconds (default 500, so one 540 s device call always
# gets the summary): each step's time limit is cut to what is left, and steps that find less than
# 10 s left are recorded as SKIP.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=${1:?usage: tools/gpu_check.sh LOGDIR}
mkdir -p "$logs"
build=${BUILD_DIR:-build-gpu}
jobs=$(nproc)
t_start=$(date +%s)
budget=${GPU_CHECK_BUDGET:-500}
summary=()
failed=0

# step NAME TIMEOUT_S CMD...: runs CMD with its output in LOGDIR/NAME.log, records PASS/FAIL.
step() {
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s) status=PASS
  local left=$(( budget - (t0 - t_start) ))
  if [ "$left" -lt 10 ]; then
    failed=1
    summary+=("| $name | SKIP (time budget spent) | 0s |")
    echo "[SKIP] $name (time budget spent)"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  timeout "$limit" "$@" >"$logs/$name.log" 2>&1 || status=FAIL
  [ "$status" = FAIL ] && failed=1
  local dt=$(( $(date +%s) - t0 ))
  summary+=("| $name | $status | ${dt}s |")
  echo "[$status] $name (${dt}s)"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nvcc --version | tail -1;
  git rev-parse --short HEAD 2>/dev/null; date -u +%F; } >"$logs/device.txt" 2>&1

step configure 120 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSIMDIFF_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90
step build 300 cmake --build "$build" -j "$jobs"
step tests 240 env OMP_NUM_THREADS=4 ctest --test-dir "$build" -j 8 --output-on-failure
kernel_tests='Registry/OpParity.*:*Attention*:*Philox*'
step memcheck 120 compute-sanitizer --tool memcheck --error-exitcode 1 "$build/simdiff_tests" --gtest_filter="$kernel_tests"
step racecheck 120 compute-sanitizer --tool racecheck --error-exitcode 1 "$build/simdiff_tests" --gtest_filter="$kernel_tests"
step bench 180 "$build/simdiff_bench" --benchmark_filter=cuda --benchmark_min_time=0.05 \
  --benchmark_format=json --benchmark_out="$logs/bench.json"
step torch_baseline 180 python3 bench/torch_baseline.py --json "$logs/torch.json"
step compare 30 python3 bench/compare.py "$logs/bench.json" "$logs/torch.json" --out "$logs/ratios.md"
step train 120 "$build/simdiff" train --config configs/demo.json --steps 300 --device cuda --quiet \
  --out "$logs/train"

{
  echo "## gpu_check $(tr '\n' ' ' <"$logs/device.txt")"
  echo
  echo "| step | result | time |"
  echo "|---|---|---|"
  printf '%s\n' "${summary[@]}"
  echo
  [ -f "$logs/ratios.md" ] && cat "$logs/ratios.md"
  if [ -f "$logs/train/metrics.jsonl" ]; then
    python3 - "$logs/train/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
if len(rows) > 20:
    dt = (rows[-1]["seconds"] - rows[9]["seconds"]) / (len(rows) - 10)
    print(f"\ntraining (configs/demo.json, batch 32): {dt*1000:.1f} ms/step after warm-up, "
          f"loss {rows[0]['loss']:.4f} -> {rows[-1]['loss']:.4f} over {len(rows)} steps")
PY
  fi
  echo
  echo "total $(( $(date +%s) - t_start ))s; failed steps: $failed"
} | tee "$logs/summary.md"
exit $failed
