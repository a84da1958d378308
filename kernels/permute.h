// The index plan of an N-D transpose y = permute(x, perm), y.shape[i] = x.shape[perm[i]], shared
// by the CPU and CUDA kernels. The permutation is first reduced: size-1 axes are dropped and runs
// of input axes that stay adjacent in the output are merged, so NCHW -> NHWC becomes the batched
// 2-D transpose [B, C, HW] -> [B, HW, C] and an identity permutation becomes one flat copy. Then
// either the output's innermost axis is also the input's (rows copy contiguously), or the input's
// innermost axis sits at output axis k and the work is a batch of 2-D transposes between output
// axes k and n-1, which the kernels tile so both the reads and the writes stay contiguous.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/tensor.h"

#if defined(__CUDACC__)
#define SD_PERMUTE_HD __host__ __device__
#else
#define SD_PERMUTE_HD
#endif

namespace sd {

constexpr int kMaxPermuteDims = 6;

struct PermutePlan {
  int n = 1;                                 // reduced rank
  int64_t shape[kMaxPermuteDims] = {1};      // reduced output shape
  int64_t in_stride[kMaxPermuteDims] = {1};  // input stride of each reduced output axis
  int64_t out_stride[kMaxPermuteDims] = {1};
  int64_t numel = 1;
  int k = 0;  // output axis that is the input's innermost (stride 1) axis

  // Offsets of the idx-th position of the axes other than skip_a and skip_b (row-major over the
  // remaining output axes).
  SD_PERMUTE_HD void offsets(int64_t idx, int skip_a, int skip_b, int64_t& in_off,
                             int64_t& out_off) const {
    in_off = out_off = 0;
    for (int d = n - 1; d >= 0; --d) {
      if (d == skip_a || d == skip_b) continue;
      int64_t q = idx % shape[d];
      idx /= shape[d];
      in_off += q * in_stride[d];
      out_off += q * out_stride[d];
    }
  }
};

// `perm` must already be validated (a permutation of 0..ndim-1, ndim <= kMaxPermuteDims).
inline PermutePlan make_permute_plan(const Shape& in_shape, const std::vector<int64_t>& perm) {
  int nd = int(in_shape.size());
  std::vector<int> new_axis(nd, -1);
  std::vector<int64_t> shp;  // input shape without its size-1 axes
  for (int a = 0; a < nd; ++a)
    if (in_shape[a] != 1) {
      new_axis[a] = int(shp.size());
      shp.push_back(in_shape[a]);
    }
  std::vector<int64_t> st(shp.size(), 1);  // input strides of the kept axes
  for (int a = int(shp.size()) - 2; a >= 0; --a) st[a] = st[a + 1] * shp[a + 1];

  PermutePlan p;
  int prev = -2, groups = 0;
  for (int i = 0; i < nd; ++i) {
    int a = new_axis[perm[i]];
    if (a < 0) continue;
    if (a == prev + 1) {  // continues the run of the previous output axis: merge
      p.shape[groups - 1] *= shp[a];
      p.in_stride[groups - 1] = st[a];
    } else {
      p.shape[groups] = shp[a];
      p.in_stride[groups] = st[a];
      ++groups;
    }
    prev = a;
  }
  if (groups == 0) return p;  // every axis has size 1: one element
  p.n = groups;
  p.numel = 1;
  for (int d = p.n - 1; d >= 0; --d) {
    p.out_stride[d] = p.numel;
    p.numel *= p.shape[d];
    if (p.in_stride[d] == 1) p.k = d;
  }
  return p;
}

}  // namespace sd
