// CUDA backend of the random family (definitions in kernels/cpu/random.cpp): the same Philox
// stream functions as the host, so element i matches the CPU draw (exactly for uniforms, to an
// ulp or so for normals, whose double log/sin/cos come from a different math library).
// Uniform: one thread per Philox block of 4 words writes 4 consecutive elements (one block
// computed per 4 outputs). Normal: one thread per element through philox_normal itself, so the
// definition lives in one place; Box-Muller's transcendentals dominate its cost anyway.
#include "kernels/cuda/launch.cuh"
#include "runtime/philox.h"

namespace sd {
namespace {

// y_i is stream word first + i: thread j computes stream block first / 4 + j and writes the
// lanes that fall inside y (the first and last blocks may be partial when first % 4 != 0).
__global__ void uniform_kernel(float* y, int64_t n, uint64_t seed, uint64_t offset,
                               uint64_t first) {
  const int64_t skew = int64_t(first % 4);
  CUDA_LOOP(j, (n + skew + 3) / 4) {
    PhiloxBlock blk = philox_block(seed, offset, first / 4 + uint64_t(j));
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      int64_t i = 4 * j + lane - skew;
      if (i >= 0 && i < n) y[i] = philox_u01(blk.v[lane]);
    }
  }
}

__global__ void normal_kernel(float* y, int64_t n, uint64_t seed, uint64_t offset,
                              uint64_t first) {
  CUDA_LOOP(i, n) y[i] = philox_normal(seed, offset, first + uint64_t(i));
}

template <bool kNormal>
void draw(OpCall& c) {
  int64_t n = c.out[0].numel();
  uint64_t seed = c.attrs["seed"].get<uint64_t>(), off = c.attrs["offset"].get<uint64_t>();
  uint64_t first = c.attrs["first"].get<uint64_t>();
  if (kNormal)
    SD_LAUNCH(normal_kernel, cuda::grid_for(n, 256), 256, 0, cuda::stream(), c.out[0].data<float>(),
              n, seed, off, first);
  else
    SD_LAUNCH(uniform_kernel, cuda::grid_for((n + 3 + int64_t(first % 4)) / 4, 256), 256, 0,
              cuda::stream(), c.out[0].data<float>(), n, seed, off, first);
}

}  // namespace

void register_random_cuda(Registry& r) {
  r.mutable_at("random_normal").cuda = {draw<true>, {}};
  r.mutable_at("random_uniform").cuda = {draw<false>, {}};
}

}  // namespace sd
