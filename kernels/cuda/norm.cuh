// Pieces of the CUDA norm family (kernels/cuda/norm.cu) that the fused norm + conditioning ops
// (kernels/cuda/fused.cu) share: launch shapes, the f32 check, group sizes and the zero-gradient
// shortcut; the sums and the fixed-order column sum come from kernels/cuda/reduce.cuh.
#pragma once
#include "kernels/cuda/reduce.cuh"

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

__device__ __forceinline__ float sq(float v) { return v * v; }

// With no gradient flowing into y every input gradient is zero.
bool zero_if_no_grad(GradCall& c);

template <void (*F)(GradCall&)>
void backward_or_zero(GradCall& c) {
  if (!zero_if_no_grad(c)) F(c);
}

}  // namespace sd::cuda
