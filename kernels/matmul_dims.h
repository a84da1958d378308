// The sizes of a (batched) matmul, validated, shared by the CPU and CUDA backends.
#pragma once
#include "runtime/tensor.h"

namespace sd {

struct MatmulDims {
  int64_t batch, M, N, K;
  bool shared_b;  // b is 2-D and applies to every item of a's batch
};

inline MatmulDims matmul_dims(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  SD_CHECK(a.ndim() >= 2, "matmul: 'a' expected at least 2 dimensions, got ", a.desc());
  SD_CHECK(b.ndim() >= 2, "matmul: 'b' expected at least 2 dimensions, got ", b.desc());
  MatmulDims d;
  d.shared_b = b.ndim() == 2 && a.ndim() > 2;
  bool same_batch = a.ndim() == b.ndim();
  for (int i = 0; same_batch && i < a.ndim() - 2; ++i) same_batch = a.dim(i) == b.dim(i);
  SD_CHECK(d.shared_b || same_batch, "matmul: batch dimensions of a ", a.desc(), " and b ",
           b.desc(), " differ (b needs a's leading dimensions, or 2 dimensions to be shared)");
  d.M = ta ? a.dim(-1) : a.dim(-2);
  d.K = ta ? a.dim(-2) : a.dim(-1);
  int64_t kb = tb ? b.dim(-1) : b.dim(-2);
  d.N = tb ? b.dim(-2) : b.dim(-1);
  SD_CHECK(d.K == kb, "matmul: inner dimensions differ: a ", a.desc(), ta ? " (transposed)" : "",
           " has K=", d.K, ", b ", b.desc(), tb ? " (transposed)" : "", " has K=", kb);
  d.batch = shape_numel(Shape(a.shape().begin(), a.shape().end() - 2));
  return d;
}

}  // namespace sd
