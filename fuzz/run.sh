#!/usr/bin/env bash
# Fuzzes the readers of untrusted input with libFuzzer under AddressSanitizer and
# UndefinedBehaviorSanitizer: the config parser, the safetensors reader and the checkpoint reader.
# Builds the targets with clang++ in $FUZZ_BUILD_DIR (default build-fuzz), then runs each for
# $FUZZ_SECONDS (default 60) from its seed corpus fuzz/corpus/<target>/; new inputs go to a
# temporary directory, never into the repository. Exits non-zero when a target finds a crash, a
# sanitizer report, a leak, a timeout or an uncaught exception; the input that did it is saved as
# $FUZZ_BUILD_DIR/artifacts/<target>-crash-*, to replay with: $FUZZ_BUILD_DIR/fuzz/fuzz_<target> FILE.
# Without clang++ it says so and exits 0 (Debian: clang libclang-rt-14-dev libomp-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD_DIR:-build-fuzz}
seconds=${FUZZ_SECONDS:-60}
jobs=${JOBS:-$(nproc)}
cxx=${FUZZ_CXX:-$(command -v clang++ || command -v clang++-14 || true)}
if [[ -z "$cxx" ]]; then
  echo "fuzz/run.sh: clang++ not found, fuzzing skipped (apt-get install clang libclang-rt-14-dev libomp-dev)"
  exit 0
fi
targets=(config safetensors checkpoint)
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSIMDIFF_CUDA=OFF -DSIMDIFF_BENCH=OFF -DSIMDIFF_FUZZ=ON -DCMAKE_CXX_FLAGS="$flags" >/dev/null
cmake --build "$build" -j "$jobs" --target "${targets[@]/#/fuzz_}"
mkdir -p "$build/artifacts"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
failed=()
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  echo "== fuzz_$t: ${seconds}s from fuzz/corpus/$t"
  if ! "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" "$work" "fuzz/corpus/$t" \
      2>&1 | sed -E '/^#[0-9]+\s+(NEW|REDUCE|pulse)/d; /^#+ Recommended dictionary/,/^#+ End of/d; /^\s+NEW_FUNC/d'; then
    failed+=("$t")
  fi
  rm -rf "$work"
done
if ((${#failed[@]})); then
  echo "fuzz/run.sh: FAILED: ${failed[*]} (inputs in $build/artifacts/)"
  exit 1
fi
echo "fuzz/run.sh: ${#targets[@]} targets, ${seconds}s each: nothing found"
