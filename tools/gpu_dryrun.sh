#!/usr/bin/env bash
# Dry run of tools/gpu_check.sh here, without a GPU, in a Debian chroot that holds only what
# the lent GPU machine has: g++, cmake, ninja, python3 without PyTorch, the CUDA toolkit (this
# machine's /usr/local/cuda-13.0, bind-mounted read-only; its bin/ is not on PATH, so the script's
# nvcc fallback is exercised) and compute-sanitizer (PyPI's wheel of the machine's version, as
# this machine has none). None of the project's Debian packages are in it: the build sees only
# the tree and gpu-deps/, copied in as the device tool copies them (tracked and
# untracked-not-ignored files, plus the carried folder; no .git). Configure and build must pass;
# every later step must start and then PASS or SKIP with its reason; OUTDIR gets what the device
# call would bring back (summary.md, logs.tar.gz), checked against the transfer limits.
#   tools/gpu_dryrun.sh OUTDIR
# GPU_DRYRUN_SUITE=trixie makes and uses a Debian 13 chroot instead: GCC 14, CMake 3.31, a newer
# glibc, closer to the GPU image (Ubuntu 24.04: GCC 13) than Debian 12 and still linking
# gpu-deps/'s Debian 12 libraries. Needs root (chroot, mount) and Debian's archive and PyPI (first
# run only: the chroot is kept in $GPU_DRYRUN_ROOT, default ../gpu-chroot-SUITE beside the repo). On 2 cores the build alone outlasts
# the device budget: the script runs with GPU_CHECK_BUDGET=7200 (or as given) and every step's
# limit 20 times longer; JOBS (default 2) passes on. GPU_DRYRUN_KEEP_BUILD=1 keeps the last dry
# run's build folder (for iterating on the script; a recorded dry run starts from none).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: tools/gpu_dryrun.sh OUTDIR}
suite=${GPU_DRYRUN_SUITE:-bookworm}
root=${GPU_DRYRUN_ROOT:-$(cd .. && pwd)/gpu-chroot-$suite}
cuda=${CUDA_HOME:-/usr/local/cuda-13.0}
[ -d gpu-deps/usr ] || { echo "gpu_dryrun: run tools/gpu_deps.sh first" >&2; exit 1; }

if [ ! -f "$root/.ready" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
  echo "gpu_dryrun: creating the chroot in $root (debootstrap, a few minutes)"
  debootstrap --variant=minbase --include=g++,make,cmake,ninja-build,python3 "$suite" "$root" \
    http://deb.debian.org/debian >"$root.debootstrap.log" 2>&1 ||
    { tail -20 "$root.debootstrap.log"; exit 1; }
  touch "$root/.ready"
fi
if [ ! -x "$root/opt/compute-sanitizer/bin/compute-sanitizer" ]; then
  # compute-sanitizer (the machine's is 2025.3.1, CUDA 13.0's), from PyPI's wheel of the same
  # version: the memcheck and racecheck steps then run it as they would there.
  whl=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: "nvidia-cuda-sanitizer-api==13.0.*" -d "$whl" &&
    python3 -m zipfile -e "$whl"/*.whl "$whl/x" && mkdir -p "$root/opt" &&
    cp -a "$whl/x/nvidia/cu13" "$root/opt/compute-sanitizer" &&
    chmod +x "$root/opt/compute-sanitizer/bin/compute-sanitizer" &&
    ln -sf /opt/compute-sanitizer/bin/compute-sanitizer "$root/usr/local/bin/compute-sanitizer" ||
    echo "gpu_dryrun: no compute-sanitizer in the chroot (pip download failed)"
  rm -rf "$whl"
fi

mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" || true; done
}
trap cleanup EXIT
bind() {  # bind SRC DEST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounts+=("$2")
  [ "${3:-}" = ro ] && mount -o remount,bind,ro "$2"
  return 0
}
bind /dev "$root/dev"
mount -t proc proc "$root/proc" && mounts+=("$root/proc")
bind "$cuda" "$root/usr/local/cuda-13.0" ro
ln -sfn cuda-13.0 "$root/usr/local/cuda"

# The tree as the device tool sends it. With GPU_DRYRUN_KEEP_BUILD=1 the last copy stays: only
# files whose content changed are rewritten (a new mtime, so ninja rebuilds what depends on them)
# and files no longer in the tree are removed.
work=$root/work/simdiff
rm -rf "$root/out"
mkdir -p "$root/out"
[ "${GPU_DRYRUN_KEEP_BUILD:-0}" = 1 ] || rm -rf "$work"
mkdir -p "$work"
list=$(mktemp)
git ls-files -co --exclude-standard -z >"$list"
while IFS= read -r -d '' f; do
  [ -e "$f" ] && ! cmp -s "$f" "$work/$f" 2>/dev/null && cp --parents -P "$f" "$work/"
done <"$list"
(cd "$work" && find . -path ./build-gpu -prune -o -path ./gpu-deps -prune -o -type f -print0) |
  while IFS= read -r -d '' f; do
    grep -qzxF "${f#./}" "$list" || rm -f "$work/$f"
  done
rm -f "$list"
echo "gpu_dryrun: the tree sent $(du -sh --exclude=build-gpu --exclude=gpu-deps "$work" | cut -f1)," \
     "gpu-deps $(du -sh gpu-deps | cut -f1) (64 MiB together at most)"
rm -rf "$work/gpu-deps"
cp -a gpu-deps "$work/"

commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo +uncommitted)"
set +e
chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
  LANG=C.UTF-8 JOBS="${JOBS:-2}" GPU_CHECK_BUDGET="${GPU_CHECK_BUDGET:-7200}" GPU_CHECK_LIMIT_SCALE=20 \
  GPU_CHECK_COMMIT="$commit (dry run)" \
  bash -c 'cd /work/simdiff && tools/gpu_check.sh /out'
rc=$?
set -e

# What would come back, checked against the device tool's limits.
mkdir -p "$out"
cp "$root"/out/* "$out/"
n=$(find "$root/out" -type f | wc -l)
big=$(find "$root/out" -type f -size +16M | wc -l)
ckpt=$(tar -tzf "$out/logs.tar.gz" | grep -c '\.safetensors$' || true)
echo "gpu_dryrun: gpu_check exit status $rc; $n files back (limit 8), $big over 16 MiB," \
     "$ckpt checkpoints in the archive; archive holds:"
tar -tzvf "$out/logs.tar.gz" | awk '{print "  " $3 "  " $6}'
[ "$n" -le 8 ] && [ "$big" -eq 0 ] && [ "$ckpt" -eq 0 ] && [ "$rc" -eq 0 ]
