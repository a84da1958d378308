// The error measure of the CUDA-vs-CPU model and determinism tests.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/tensor.h"

namespace sd {

// max |got - ref| / max |ref| over the tensor; +inf when either holds a NaN or an infinity.
inline double rel_error(const Tensor& got, const Tensor& ref) {
  std::vector<float> a = got.to_floats(), b = ref.to_floats();
  double num = 0, den = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    num = std::max(num, std::abs(double(a[i]) - b[i]));
    den = std::max(den, std::abs(double(b[i])));
  }
  return num / den;
}

}  // namespace sd
