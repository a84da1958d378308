#!/usr/bin/env bash
# The main job: build, train the demo config on the built-in shapes dataset (on the GPU when
# one is present, else on the CPU), and write a class-conditional sample grid.
#
# Without a GPU (nvidia-smi lists none) the build leaves the CUDA backend out, whether or not
# nvcc is installed: compiling every .cu file for a GPU that is not there would double the
# build time. That build goes to build-cpu, so a CUDA-enabled `build` (tools/test.sh's) keeps
# its configuration. BUILD_DIR and CMAKE_ARGS override both choices.
set -euo pipefail
# Idle OpenMP threads sleep instead of spinning: a step has hundreds of short parallel regions,
# and spinning threads fight BLAS and any other load for the 2 cores (bench/RESULTS.md).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
cd "$(dirname "$0")/.."
if nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  build=${BUILD_DIR:-build}
  cuda=()
else
  build=${BUILD_DIR:-build-cpu}
  cuda=(-DSIMDIFF_CUDA=OFF)
  echo "demo: no GPU found (nvidia-smi): CPU-only build in $build"
fi
out=${OUT_DIR:-runs/demo}
start=$SECONDS
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSIMDIFF_BENCH=OFF "${cuda[@]}" ${CMAKE_ARGS:-}
cmake --build "$build" -j "$(nproc)" --target simdiff
echo "demo: build took $((SECONDS - start)) s"
start=$SECONDS
# --resume: a second run of this script continues (or, when finished, keeps) the first one.
"$build/simdiff" train --config configs/demo.json --out "$out" --resume "$@"
echo "demo: training took $((SECONDS - start)) s"
"$build/simdiff" sample --ckpt "$out/ckpt.safetensors" --n 8 --out "$out/samples.png"
echo "demo: samples in $out/samples.png (docs/demo_samples.png is this grid from a CPU run), loss curve in $out/loss.svg"
