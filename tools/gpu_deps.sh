#!/usr/bin/env bash
# Prepares gpu-deps/ (git-ignored), the build dependencies that a lent GPU machine lacks, so they
# travel with tools/gpu_check.sh: that machine has nvcc, cmake, ninja, g++ and PyTorch, but no
# network and none of the Debian packages below. Run here (Debian 12, network to its archive):
#   tools/gpu_deps.sh [DIR]          (default: gpu-deps)
# Packages are fetched with `apt-get download` and unpacked with `dpkg -x`; nothing is installed
# here. DIR/usr is a CMake prefix (gpu_check.sh passes -DCMAKE_PREFIX_PATH=DIR/usr
# -DSIMDIFF_BLAS=blas) holding headers, static or shared libraries and CMake package files only;
# no program is carried: everything is compiled there. Symbolic links are replaced by copies, so
# the folder travels as plain files. DIR/MANIFEST lists the packages and versions.
#   GoogleTest/GoogleMock   static libraries + CMake config (libgtest-dev, libgmock-dev)
#   Google Benchmark        shared library + CMake config (libbenchmark-dev, libbenchmark1debian)
#   nlohmann-json, stb      headers (+ CMake config)
#   zlib                    headers, libz.so to link (zlib1g-dev, zlib1g)
#   reference BLAS          netlib's libblas.so.3 with CBLAS (libblas-dev, libblas3): the GPU build
#                           needs a CPU GEMM only for test references, not a fast one
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-gpu-deps}
pkgs=(libgtest-dev libgmock-dev libbenchmark-dev libbenchmark1debian nlohmann-json3-dev libstb-dev
      zlib1g-dev zlib1g libblas-dev libblas3)
arch=x86_64-linux-gnu
if [ -e "$dir" ] && [ ! -f "$dir/MANIFEST" ]; then
  echo "gpu_deps: $dir exists and was not made by this script; not replacing it" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"  # apt's _apt user writes the downloads
mkdir "$tmp/debs" "$tmp/x"
chmod 777 "$tmp/debs"
( cd "$tmp/debs" && { apt-get download "${pkgs[@]}" 2>/dev/null ||
  { apt-get update -qq && apt-get download "${pkgs[@]}"; }; } )
for f in "$tmp"/debs/*.deb; do dpkg -x "$f" "$tmp/x"; done

rm -rf "$dir"
mkdir -p "$dir/usr/include" "$dir/usr/lib/$arch" "$dir/usr/share"
src=$tmp/x/usr
# Headers: cp -L turns Debian's relative links into files.
cp -rL "$src"/include/{gtest,gmock,benchmark,nlohmann,stb,zlib.h,zconf.h} "$dir/usr/include/"
# netlib's CBLAS header under the name the code includes (Debian's alternatives link, made by hand)
cp -L "$src/include/$arch/cblas-netlib.h" "$dir/usr/include/cblas.h"
cp -L "$src/include/$arch"/{cblas_mangling.h,cblas_f77.h} "$dir/usr/include/"
lib=$dir/usr/lib/$arch
cp -L "$src/lib/$arch"/{libgtest.a,libgtest_main.a,libgmock.a,libgmock_main.a} "$lib/"
cp -L "$src/lib/$arch"/libbenchmark{.so.1.7.1,.so.1debian,_main.a} "$lib/"
cp -rL "$src/lib/$arch/cmake" "$lib/"
rm -rf "$lib/cmake/openblas"
# libblas.so to link, libblas.so.3 (its soname) to run; libz likewise (libz.so.1 is on every machine,
# carried anyway so the link and the run see the same library).
cp -L "$src/lib/$arch/blas/libblas.so.3" "$lib/libblas.so"
cp -L "$src/lib/$arch/blas/libblas.so.3" "$lib/libblas.so.3"
cp -L "$tmp/x/lib/$arch/libz.so.1" "$lib/libz.so"
cp -L "$tmp/x/lib/$arch/libz.so.1" "$lib/libz.so.1"
cp -rL "$src/share/cmake" "$dir/usr/share/"
mkdir -p "$dir/usr/share/doc"
for p in "${pkgs[@]}"; do
  [ -f "$src/share/doc/$p/copyright" ] && install -D -m 644 "$src/share/doc/$p/copyright" "$dir/usr/share/doc/$p/copyright"
done

{
  echo "# gpu-deps: made by tools/gpu_deps.sh on $(date -u +%F) from Debian $(cat /etc/debian_version)"
  for f in "$tmp"/debs/*.deb; do dpkg-deb -f "$f" Package Version | sed "s/^[^:]*: //" | paste -sd" "; done
} >"$dir/MANIFEST"
if find "$dir" -type l | grep -q .; then echo "gpu_deps: symbolic links left in $dir" >&2; exit 1; fi
echo "gpu_deps: $dir ready, $(du -sh "$dir" | cut -f1) in $(find "$dir" -type f | wc -l) files:"
sed 's/^/  /' "$dir/MANIFEST"
