// scale_shift's view of x, shared by the CPU and CUDA backends.
#pragma once
#include "kernels/registry.h"

namespace sd {

// nchw: x [B, C, *spatial], inner = spatial size; nlc: x [B, N, C], inner = N tokens.
struct ScaleShiftDims {
  bool nlc;
  int64_t B, C, inner;
};

inline ScaleShiftDims scale_shift_dims(const Tensor& x, const Attrs& a) {
  bool nlc = a["layout"] == "nlc";
  int64_t B = x.dim(0), C = nlc ? x.dim(2) : x.dim(1);
  return {nlc, B, C, x.numel() / (B * C)};
}

}  // namespace sd
