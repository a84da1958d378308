#!/usr/bin/env bash
# Installs what simdiff builds with, from Debian's packages (root, or through sudo).
# The CUDA toolkit is optional: without nvcc the build is CPU-only.
set -euo pipefail
pkgs=(build-essential cmake libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev
      libopenblas-dev libstb-dev zlib1g-dev)
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
