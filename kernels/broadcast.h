// NumPy-style broadcasting of two operands, shared by the CPU and CUDA elementwise kernels.
// Shapes are right-aligned and padded to kMaxDims; a dimension of size 1 in an operand gets
// stride 0, so one index computation serves both the forward and the reduction in the backward.
// A 1 broadcasts against any size, 0 included (the result is then empty, as in NumPy).
#pragma once
#include <cstdint>

#include "runtime/tensor.h"

namespace sd {

constexpr int kMaxDims = 6;

struct Broadcast {
  int ndim = 0;
  int64_t out_shape[kMaxDims] = {};
  int64_t a_stride[kMaxDims] = {};
  int64_t b_stride[kMaxDims] = {};
  int64_t numel = 1;
  bool same = false;  // both operands already have the output shape: flat indexing

#if defined(__CUDACC__)
  __host__ __device__
#endif
  void offsets(int64_t i, int64_t& ia, int64_t& ib) const {
    ia = ib = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      int64_t k = i % out_shape[d];
      i /= out_shape[d];
      ia += k * a_stride[d];
      ib += k * b_stride[d];
    }
  }
};

// Throws "<op>: shapes [..] and [..] do not broadcast" naming both.
Broadcast make_broadcast(const std::string& op, const Shape& a, const Shape& b);
Shape broadcast_shape(const Broadcast& bc);

}  // namespace sd
