#!/usr/bin/env bash
# Installs what simdiff builds with, from Debian's packages (root, or through sudo).
# The CUDA toolkit is optional: without nvcc the build is CPU-only.
# clang, its OpenMP runtime (libomp-dev) and llvm (llvm-symbolizer) build and run the emulated
# CUDA backend that tools/test.sh tests: clang's -fsanitize-coverage=trace-loads feeds its
# shared-memory race detector, and the symboliser puts kernel names and lines into its reports;
# libclang-rt-14-dev holds clang's AddressSanitizer and libFuzzer runtimes (emulation, fuzz/).
# Open MPI (openmpi-bin, libopenmpi-dev) runs data-parallel training across processes (mpirun).
set -euo pipefail
pkgs=(build-essential cmake libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev
      libopenblas-dev libstb-dev zlib1g-dev clang libclang-rt-14-dev libomp-dev llvm
      openmpi-bin libopenmpi-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
echo "setup: installing ${missing[*]}"
run apt-get update -qq
DEBIAN_FRONTEND=noninteractive run apt-get install -y -qq "${missing[@]}"
