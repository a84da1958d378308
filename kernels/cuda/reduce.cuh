// The reduction pieces the CUDA backward kernels share (kernels/cuda/reduce.cu): fp32 warp and
// block sums, the fixed-order column sum that finishes a split reduction, the SM count that
// sizes split grids, and the float-atomics switch.
//
// Determinism: a sum that several blocks (or warps) contribute to is never accumulated with
// float atomics by default, whose order changes from run to run. Each block writes its partial
// sums to a scratch buffer and launch_column_sum adds them in a fixed order, so a backward gives
// bit-identical gradients on every run on the same GPU model (the grid, and with it the order,
// depends on the SM count). SIMDIFF_CUDA_ATOMICS=1 (runtime/cuda_atomics.h) brings back the
// atomic variants of the kernels that had them, to compare their speed on a GPU and to show that
// the determinism tests (tests/test_cuda_determinism.cpp) catch them.
#pragma once
#include "kernels/cuda/launch.cuh"
#include "runtime/cuda_atomics.h"

namespace sd::cuda {

int sm_count();

// SIMDIFF_CUDA_ATOMICS=1: the kernels reduce with float atomics (not reproducible).
inline bool float_atomics() { return cuda_float_atomics(); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32), returned to every thread. `red` holds 32
// floats; the first barrier lets consecutive calls reuse it.
__device__ inline float block_sum(float v, float* red) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = lane < int(blockDim.x >> 5) ? red[lane] : 0.f;
  return warp_sum(v);
}

// out[j] = sum_r part[r * width + col0 + j], j < ncols, rows summed in a fixed order in f32; T is
// float or __nv_bfloat16 (one rounding of the sum).
template <class T>
void launch_column_sum(const float* part, int64_t nrows, int64_t width, int64_t col0,
                       int64_t ncols, T* out);

}  // namespace sd::cuda
