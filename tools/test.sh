#!/usr/bin/env bash
# Builds and tests simdiff twice (each test process single-threaded, tests in parallel):
#  1. the normal build (the CUDA backend compiled for sm_90 when nvcc is found) and the whole
#     suite; CUDA tests skip themselves, with a reason, when no GPU is present;
#  2. the emulated CUDA backend (SIMDIFF_CUDA=EMULATE: the same kernels, run on the CPU under the
#     emulator's checks and AddressSanitizer, built with clang) and the CUDA test set
#     (tests/cuda_tests.txt): every kernel executes on every run, GPU or not;
#  3. the libFuzzer targets (fuzz/run.sh: config parser, safetensors and checkpoint readers, under
#     ASan/UBSan), FUZZ_SECONDS each (default 60) from the seed corpus in fuzz/corpus.
# A failing part does not stop the script before the next one; the exit status reports it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
phase() { echo "test.sh: $1 took $((SECONDS - start)) s"; start=$SECONDS; }
start=$SECONDS

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$build" -j "$jobs"
phase "the normal build"
failed=0
ctest --test-dir "$build" --output-on-failure -j "$jobs" || failed=1
phase "the test suite"

emu="$build-emulate"
cmake -S . -B "$emu" -DSIMDIFF_CUDA=EMULATE -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIMDIFF_BENCH=OFF
cmake --build "$emu" -j "$jobs" --target simdiff simdiff_tests
phase "the emulation build"
ctest --test-dir "$emu" --output-on-failure -j "$jobs" || failed=1
phase "the CUDA test set under emulation"
FUZZ_BUILD_DIR="$build-fuzz" FUZZ_SECONDS=${FUZZ_SECONDS:-60} JOBS="$jobs" ./fuzz/run.sh || failed=1
phase "fuzzing"
exit "$failed"
