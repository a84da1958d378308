#!/usr/bin/env bash
# Builds simdiff (with the CUDA backend when nvcc is found, compiled for sm_90) and runs the
# whole test suite (each test process single-threaded, tests in parallel). CUDA tests skip
# themselves, with a reason, when no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs"
