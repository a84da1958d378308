#!/usr/bin/env bash
# The main job: build, train the demo config on the built-in shapes dataset (on the GPU when
# one is present, else on the CPU), and write a class-conditional sample grid.
set -euo pipefail
# Idle OpenMP threads sleep instead of spinning: a step has hundreds of short parallel regions,
# and spinning threads fight BLAS and any other load for the 2 cores (bench/RESULTS.md).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
out=${OUT_DIR:-runs/demo}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSIMDIFF_BENCH=OFF ${CMAKE_ARGS:-}
cmake --build "$build" -j "$(nproc)" --target simdiff
"$build/simdiff" train --config configs/demo.json --out "$out" "$@"
"$build/simdiff" sample --ckpt "$out/ckpt.safetensors" --n 8 --out "$out/samples.png"
echo "demo: samples in $out/samples.png, loss curve in $out/loss.svg"
