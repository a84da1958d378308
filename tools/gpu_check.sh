#!/usr/bin/env bash
# The one script for a lent GPU machine: an H200 (sm_90, CUDA 13, PyTorch in python3, no network;
# an H100 runs it the same way). bench/README.md says how to spend a lease on it.
#   tools/gpu_check.sh OUTDIR
# Builds with ninja against the carried dependencies (gpu-deps/, from tools/gpu_deps.sh; without
# it, the machine's own packages), then, in this order (the most information first, as the time
# budget may end the run): the CUDA tests once under compute-sanitizer memcheck with the caching
# allocator off (SIMDIFF_CUDA_NO_CACHE=1: exact-size, never reused blocks, so memcheck sees each
# tensor's bounds and every use after free); the model-level CUDA-vs-CPU tests (CudaModel.*) and
# the CUDA model's trace against the PyTorch port; the bit-identical-gradient check across two
# runs (CudaDeterminism.*); a short demo training run and a sample grid from it; the kernel and
# train-step benchmarks and their PyTorch baselines; racecheck over the kernel tests last. The
# CPU-only suite is not run (CI runs it).
# Each step: PASS, FAIL, or SKIP with the reason (no GPU, no PyTorch, no test matched the filter,
# every test skipped, time budget spent). Full logs are written to a temporary folder and come
# back as OUTDIR/logs.tar.gz (no checkpoints in it) beside OUTDIR/summary.md, the table printed
# last: two files. Exit status 1 when a step failed.
# Environment:
#   GPU_CHECK_BUDGET  seconds for the whole script (default 480: a 540 s device call still gets
#                     the summary and the archive); each step's limit is cut to what is left, a
#                     step that finds less than 15 s left is SKIPped
#   GPU_CHECK_COMMIT  the commit being checked, for the summary (the device's copy of the tree
#                     has no git metadata)
#   GPU_CHECK_LIMIT_SCALE  multiplies every step's limit (default 1; the 2-core dry run uses 20)
#   SIMDIFF_DEPS      the carried dependency prefix (default gpu-deps); BUILD_DIR (build-gpu); JOBS
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: tools/gpu_check.sh OUTDIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)
logs=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
build=${BUILD_DIR:-build-gpu}
deps=${SIMDIFF_DEPS:-gpu-deps}
jobs=${JOBS:-$(nproc)}
budget=${GPU_CHECK_BUDGET:-480}
limit_scale=${GPU_CHECK_LIMIT_SCALE:-1}
t_start=$(date +%s)
rows=() failed_steps=()
n_fail=0 n_skip=0

# ---- probes: what the machine has (written to device.txt, and the summary's first line) ----
nvcc=$(command -v nvcc || true)
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
sanitizer=$(command -v compute-sanitizer || true)
for d in "$(dirname "${nvcc:-/x/x}")" /usr/local/cuda/bin; do
  [ -z "$sanitizer" ] && [ -x "$d/compute-sanitizer" ] && sanitizer=$d/compute-sanitizer
done
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
torch=$(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null)
generator=Ninja
command -v ninja >/dev/null || generator="Unix Makefiles"
commit=${GPU_CHECK_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo "commit unknown")}
cmake_deps=()
[ -d "$deps/usr" ] && cmake_deps=(-DCMAKE_PREFIX_PATH="$PWD/$deps/usr" -DSIMDIFF_BLAS=blas)
{
  echo "date:      $(date -u '+%F %T') UTC"
  echo "commit:    $commit"
  echo "gpu:       ${gpu:-none (nvidia-smi found no GPU)}"
  echo "nvcc:      ${nvcc:-not found}$([ -n "$nvcc" ] && "$nvcc" --version | tail -1 | sed 's/^/, /')"
  echo "sanitizer: ${sanitizer:-not found}"
  echo "python3:   $(python3 --version 2>&1), torch ${torch:-not importable}"
  echo "cmake:     $(cmake --version 2>&1 | head -1), generator $generator"
  echo "c++:       $(c++ --version 2>&1 | head -1)"
  echo "cpus:      $(nproc), jobs $jobs"
  echo "deps:      $([ -d "$deps/usr" ] && head -1 "$deps/MANIFEST" || echo "$deps absent: the machine's own packages")"
  echo
  nvidia-smi 2>&1
} >"$logs/device.txt"
sed -n 1,10p "$logs/device.txt"

# ---- classifiers: (exit status, log, ARG) -> "RESULT detail" ----
# The first error line of a log (after its "$ command" line), for the summary; the whole log is in
# the archive.
first_error() { tail -n +3 "$1" | grep -m1 -iE '(^|[^a-z])error|what\(\)' | cut -c1-150; }
plain() {
  if [ "$1" -eq 0 ]; then echo "PASS"; else local e; e=$(first_error "$2"); echo "FAIL exit status $1${e:+: $e}"; fi
}

# A gtest run (optionally under compute-sanitizer): counts from gtest's closing lines; zero tests
# run is a SKIP (a filter that matched nothing), all of them skipped too (the reason is quoted).
gtest() {
  local rc=$1 log=$2 ran passed skipped failed errors why race
  ran=$(grep -oP '^\[==========\] \K\d+(?= tests? from .* ran)' "$log" | tail -1)
  passed=$(grep -oP '^\[  PASSED  \] \K\d+' "$log" | tail -1)
  skipped=$(grep -oP '^\[  SKIPPED \] \K\d+(?= test)' "$log" | tail -1)
  failed=$(grep -oP '^\[  FAILED  \] \K\d+(?= test)' "$log" | tail -1)
  errors=$(grep -oP 'ERROR SUMMARY: \K\d+' "$log" | tail -1)  # memcheck
  local counts="${passed:-0} passed, ${skipped:-0} skipped, ${failed:-0} failed"
  [ -n "$errors" ] && counts+=", memcheck: $errors errors"
  race=$(grep -oP 'RACECHECK SUMMARY: \K.*' "$log" | tail -1)  # N hazards displayed (E errors, W warnings)
  [ -n "$race" ] && { counts+=", racecheck: $race"; errors=$(grep -oP '\(\K\d+(?= errors)' <<<"$race"); }
  if [ -z "$ran" ]; then
    why=$(first_error "$log")
    echo "FAIL no gtest summary (exit status $rc${why:+: $why})"
  elif [ "$ran" -eq 0 ]; then echo "SKIP no test matched the filter"
  elif [ "${failed:-0}" -gt 0 ] || [ "${errors:-0}" -gt 0 ] || [ "$rc" -ne 0 ]; then echo "FAIL $counts (exit status $rc)"
  elif [ "${skipped:-0}" -eq "$ran" ]; then
    why=$(grep -A1 -m1 ': Skipped$' "$log" | tail -1 | cut -c1-100)  # gtest prints the reason next
    echo "SKIP all $ran tests skipped: ${why:-see log}"
  else echo "PASS $counts"; fi
}

# Google Benchmark JSON (ARG): SKIP when no benchmark matched (without a GPU no cuda case is
# registered), FAIL when one reported an error (the others still ran: bench/guard.h).
bench_json() {
  local rc=$1 log=$2 json=$3 r
  if grep -q '^Failed to match any benchmarks' "$log"; then echo "SKIP no benchmark matched"; return; fi
  r=$(python3 - "$json" <<'PY' 2>&1
import json, sys
try:
    b = json.load(open(sys.argv[1])).get("benchmarks", [])
except (OSError, ValueError) as e:
    print(f"FAIL unreadable JSON ({e.__class__.__name__})"); sys.exit()
err = [x["name"] for x in b if x.get("error_occurred")]
if not b: print("SKIP no benchmark ran")
elif err: print(f"FAIL {len(err)} of {len(b)} errored, first: {err[0]}: {b[0].get('error_message', '')[:80]}")
else: print(f"PASS {len(b)} benchmarks")
PY
)
  [ "$rc" -ne 0 ] && [ "${r%% *}" = PASS ] && r="FAIL exit status $rc after ${r#PASS }"
  echo "$r"
}

# torch_baseline.py writes {} when PyTorch sees no GPU.
torch_json() {
  if [ "$1" -eq 0 ] && [ "$(tr -d ' \n' <"$3" 2>/dev/null)" = "{}" ]; then
    echo "SKIP PyTorch sees no CUDA device"
  else plain "$1" "$2"; fi
}

# ---- step NAME LIMIT_S CLASSIFY [ARG] -- CMD...: runs CMD under the time budget, output in
# logs/NAME.log; CLASSIFY gets (exit status, log, ARG) and says PASS/FAIL/SKIP. Without a GPU,
# every step after the build is a SKIP that says what it gave (it needs the device).
record() {  # NAME SECONDS "RESULT detail"
  local res=${3%% *} detail=${3#* }
  [ "$detail" = "$3" ] && detail=""
  [ "$res" = FAIL ] && { n_fail=$((n_fail + 1)); [ -f "$logs/$1.log" ] && failed_steps+=("$1"); }
  [ "$res" = SKIP ] && n_skip=$((n_skip + 1))
  rows+=("| $1 | $res | ${2}s | $detail |")
  printf '[%s] %s (%ss) %s\n' "$res" "$1" "$2" "$detail"
}
skip_all=""
step() {
  local name=$1 limit=$2 classify=$3 arg=""
  shift 3
  [ "$1" != -- ] && { arg=$1; shift; }
  shift
  if [ -n "$skip_all" ]; then record "$name" 0 "SKIP $skip_all"; return 1; fi
  local t0 left rc verdict cut=""
  t0=$(date +%s)
  left=$((budget - (t0 - t_start) - 15))
  if [ "$left" -lt 15 ]; then record "$name" 0 "SKIP time budget spent"; return 1; fi
  limit=$((limit * limit_scale))
  [ "$limit" -gt "$left" ] && { limit=$left; cut=1; }
  local log="$logs/$name.log"
  { echo "\$ $*"; echo; } >"$log"
  timeout -k 10 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  verdict=$("$classify" "$rc" "$log" "$arg")
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    # Stopped at its own limit: FAIL (a hang, or far slower than planned). Stopped because the
    # script's budget ran out: SKIP. Either way, what the partial log shows.
    local partial=""
    grep -q '^\[ RUN      \]' "$log" && partial=": $(grep -c '^\[       OK \]' "$log") tests passed, $(
      grep -cE '^========= (Invalid|Error|WARNING|.*([Hh]azard|Race))' "$log") sanitizer reports so far"
    verdict="FAIL timed out after ${limit}s$partial"
    [ -n "$cut" ] && verdict="SKIP budget ran out after ${limit}s$partial"
  fi
  if [ -z "$gpu" ] && [ "$name" != configure ] && [ "$name" != build ] && [ "${verdict%% *}" != SKIP ]; then
    verdict="SKIP no GPU (gave: $verdict)"
  fi
  record "$name" $(($(date +%s) - t0)) "$verdict"
  [ "${verdict%% *}" = PASS ]
}

# ---- the steps ----
# The CUDA test set (tests/cuda_tests.txt, one gtest filter alone on a line); racecheck takes its
# kernel tests (the model-level suites are slow under it and use the same kernels).
filter=$(grep -v '^[[:space:]]*#' tests/cuda_tests.txt 2>/dev/null | grep -m1 . | tr -d '[:space:]')
filter=${filter:-'Registry/OpParity.*:*Attention*:CudaModel.*:CudaDeterminism.*'}
model_suites='CudaModel.*:CudaDeterminism.*'
if [[ $filter == *-* ]]; then kernel_filter="$filter:$model_suites"; else kernel_filter="$filter-$model_suites"; fi
tests=$build/simdiff_tests

# One process on one GPU: an MPI that the image happens to hold must not change the build.
step configure 120 plain -- cmake -S . -B "$build" -G "$generator" -DCMAKE_BUILD_TYPE=Release \
  -DSIMDIFF_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 ${nvcc:+-DCMAKE_CUDA_COMPILER="$nvcc"} \
  -DSIMDIFF_MPI=OFF "${cmake_deps[@]}" || skip_all="configure failed"
step build 360 plain -- cmake --build "$build" -j "$jobs" || skip_all="${skip_all:-build failed}"

if [ -n "$sanitizer" ]; then
  step cuda_tests_memcheck 180 gtest -- env SIMDIFF_CUDA_NO_CACHE=1 "$sanitizer" --tool memcheck \
    --error-exitcode 1 --print-limit 50 "$tests" --gtest_filter="$filter" --gtest_color=no
  # A sanitizer that cannot run the tests (no device, or one it does not support, as under
  # gVisor) must not cost the CUDA tests: run them plain, and racecheck is pointless.
  if [ -f "$logs/cuda_tests_memcheck.log" ] && { ! grep -qE '^\[==========\] [0-9]+ tests? from' \
      "$logs/cuda_tests_memcheck.log" || grep -q 'Device not supported' "$logs/cuda_tests_memcheck.log"; }; then
    sanitizer=""
    step cuda_tests_plain 120 gtest -- "$tests" --gtest_filter="$filter" --gtest_color=no
  fi
else  # still run the CUDA tests once, and say that memcheck did not look
  record cuda_tests_memcheck 0 "SKIP compute-sanitizer not found"
  step cuda_tests_plain 120 gtest -- "$tests" --gtest_filter="$filter" --gtest_color=no
fi
step model_cuda_vs_cpu 90 gtest -- "$tests" --gtest_filter='CudaModel.*' --gtest_color=no
# The CUDA model's trace (one step's activations and gradients) against the PyTorch port in
# float64; our GEMMs use TF32, hence 1e-2 rather than the f32 tolerance of 1e-4. In f32: the
# demo's train.precision "auto" means bf16 on CUDA, whose rounding the tolerance is not for.
sed 's/"train": {/"train": { "precision": "f32",/' configs/demo.json >"$logs/demo_f32.json"
step trace_cuda 60 plain -- "$build/simdiff" trace --config "$logs/demo_f32.json" --device cuda \
  --out "$logs/trace_cuda.safetensors"
if [ -z "$torch" ]; then record trace_vs_torch 0 "SKIP PyTorch not importable by python3"
elif [ ! -f "$logs/trace_cuda.safetensors" ]; then record trace_vs_torch 0 "SKIP no CUDA trace"
else step trace_vs_torch 60 plain -- python3 bench/torch_model.py --trace "$logs/trace_cuda.safetensors" --tol 1e-2
fi
step determinism 60 gtest -- "$tests" --gtest_filter='CudaDeterminism.*' --gtest_color=no
step train 90 plain -- "$build/simdiff" train --config configs/demo.json --steps 300 --device cuda \
  --quiet --out "$logs/train"
step sample 60 plain -- "$build/simdiff" sample --ckpt "$logs/train/ckpt.safetensors" --n 4 \
  --steps 64 --device cuda --out "$logs/train/samples_cuda.png"
step bench 150 bench_json "$logs/bench.json" -- "$build/simdiff_bench" --benchmark_filter=cuda \
  --benchmark_min_time=0.05 --benchmark_out_format=json --benchmark_out="$logs/bench.json"
if [ -n "$torch" ]; then
  step torch_baseline 120 torch_json "$logs/torch.json" -- python3 bench/torch_baseline.py --json "$logs/torch.json"
  step torch_train_step 90 plain -- python3 bench/torch_model.py --time --config configs/demo.json \
    --device cuda --steps 20 --warmup 3
else
  record torch_baseline 0 "SKIP PyTorch not importable by python3"
  record torch_train_step 0 "SKIP PyTorch not importable by python3"
fi
if [ -s "$logs/bench.json" ] || [ -s "$logs/torch.json" ]; then
  step compare 30 plain -- python3 bench/compare.py "$logs/bench.json" "$logs/torch.json" --out "$logs/ratios.md"
else
  record compare 0 "SKIP no benchmark results"
fi
if [ -n "$sanitizer" ]; then
  step racecheck 180 gtest -- "$sanitizer" --tool racecheck --error-exitcode 1 --print-limit 50 \
    "$tests" --gtest_filter="$kernel_filter" --gtest_color=no
else
  record racecheck 0 "SKIP compute-sanitizer not found or could not run the tests"
fi

# ---- summary.md and logs.tar.gz: the two files that come back ----
train_line() {
  [ -f "$logs/train/metrics.jsonl" ] && python3 - "$logs/train/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
if len(rows) > 20:
    dt = (rows[-1]["seconds"] - rows[9]["seconds"]) / (len(rows) - 10)
    print(f"training (configs/demo.json, batch 32, cuda): {dt*1000:.1f} ms/step after warm-up, "
          f"loss {rows[0]['loss']:.4f} -> {rows[-1]['loss']:.4f} over {len(rows)} steps")
PY
}
{
  echo "## gpu_check: ${gpu:-no GPU}, commit $commit, $(date -u +%F)"
  echo
  sed -n '1,10p' "$logs/device.txt" | sed 's/^/    /'
  echo
  echo "CUDA test filter: \`$filter\`"
  echo
  echo "| step | result | time | detail |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  train_line
  grep -h '^{.*ms' "$logs/torch_train_step.log" 2>/dev/null | sed 's/^/torch train step: /'
  [ -f "$logs/ratios.md" ] && { echo; cat "$logs/ratios.md"; }
  for name in "${failed_steps[@]}"; do  # where each failed step went wrong, without the archive
    echo
    echo "$name.log, from its first error:"
    echo '```'
    n=$(tail -n +3 "$logs/$name.log" | grep -m1 -n -iE '(^|[^a-z])error|what\(\)|FAILED' | cut -d: -f1)
    tail -n +$((${n:-1} + 2)) "$logs/$name.log" | head -15 | cut -c1-200
    echo '```'
  done
  echo
  echo "total $(($(date +%s) - t_start))s of a ${budget}s budget; $n_fail failed, $n_skip skipped;" \
       "full logs in logs.tar.gz"
} >"$logs/summary.md"
# Cap each log (a sanitizer gone wild) so the archive stays far under the 16 MiB a file may have.
find "$logs" -type f -name '*.log' -size +2M | while read -r f; do
  { head -c 1M "$f"; printf '\n\n[... cut by gpu_check.sh ...]\n\n'; tail -c 1M "$f"; } >"$f.cut" && mv "$f.cut" "$f"
done
cp "$logs/summary.md" "$out/summary.md"
tar -czf "$out/logs.tar.gz" --exclude='*.safetensors' -C "$logs" .
cat "$out/summary.md"
echo "archive: $out/logs.tar.gz ($(du -h "$out/logs.tar.gz" | cut -f1))"
rm -rf "$logs"
[ "$n_fail" -eq 0 ]
