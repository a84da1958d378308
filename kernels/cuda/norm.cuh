// Pieces of the CUDA norm family (kernels/cuda/norm.cu) that the fused norm + conditioning ops
// (kernels/cuda/fused.cu) share: launch shapes, the f32 check, group sizes, fp32 warp/block sums,
// the fixed-order column sum that finishes dgamma/dbeta, the SM count that sizes split grids, and
// the zero-gradient shortcut.
#pragma once
#include "kernels/cuda/launch.cuh"

namespace sd::cuda {

constexpr int kGnThreads = 256;    // group norm: one block of this many threads per (b, group)
constexpr int kGnCacheMax = 8192;  // group values cached in shared memory (32 KB)
constexpr int kLnWarps = 4;        // layer norm: rows per forward block
constexpr int kLnCacheMax = 3072;  // rows up to this length are cached: 4 x 12 KB of shared
constexpr int kLnBwdWarps = 8;     // rows in flight per backward block
constexpr int kLnAccMax = 6144;    // 2C accumulators up to 48 KB of shared memory

void check_f32(const std::string& op, const Tensor& t);

// Group norm sizes of x [B, C, *spatial]: G groups of Cg channels, S positions per channel.
struct GroupNormDims {
  int64_t B;
  int G, Cg, S;
};
GroupNormDims group_norm_dims(const std::string& op, const Tensor& x, const Attrs& a);

int sm_count();

__device__ __forceinline__ float sq(float v) { return v * v; }

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

// out[j] = sum_r part[r * width + col0 + j], j < ncols, rows summed in a fixed order.
void launch_column_sum(const float* part, int64_t nrows, int64_t width, int64_t col0,
                       int64_t ncols, float* out);

// With no gradient flowing into y every input gradient is zero.
bool zero_if_no_grad(GradCall& c);

template <void (*F)(GradCall&)>
void backward_or_zero(GradCall& c) {
  if (!zero_if_no_grad(c)) F(c);
}

}  // namespace sd::cuda
