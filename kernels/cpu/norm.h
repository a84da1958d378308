// Pieces of the CPU norm family (kernels/cpu/norm.cpp) that the fused norm + conditioning ops
// (kernels/cpu/fused.cpp) share, so both validate with the same messages and compute the same
// statistics.
#pragma once
#include <cmath>

#include "kernels/registry.h"

namespace sd::cpu {

// layer_norm's checks of x [..., C], gamma, beta [C] and eps, under the name `op`; returns the
// metas of y, mean [rows], rstd [rows].
std::vector<OutMeta> infer_layer_norm(const std::string& op, const std::vector<Tensor>& in,
                                      const Attrs& a);
// group_norm's checks of x [B, C, *spatial], gamma, beta [C], groups and eps, under the name
// `op`; returns the metas of y, mean [B, groups], rstd [B, groups].
std::vector<OutMeta> infer_group_norm(const std::string& op, const std::vector<Tensor>& in,
                                      const Attrs& a);

// With no gradient flowing into y every input gradient is zero.
bool zero_if_no_grad(GradCall& c);

struct GroupDims {
  int64_t B, C, G, S;  // batch, channels, groups, spatial positions per channel
};

inline GroupDims group_dims(const Tensor& x, const Attrs& a) {
  return {x.dim(0), x.dim(1), int64_t(a["groups"]), x.numel() / (x.dim(0) * x.dim(1))};
}

// Two-pass mean and 1/sqrt(var + eps) of n contiguous values.
template <class T>
void moments(const T* x, int64_t n, double eps, T& mean, T& rstd) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  double m = s / double(n), v = 0;
#pragma omp simd reduction(+ : v)
  for (int64_t i = 0; i < n; ++i) v += (x[i] - m) * (x[i] - m);
  mean = T(m);
  rstd = T(1.0 / std::sqrt(v / double(n) + eps));
}

}  // namespace sd::cpu
