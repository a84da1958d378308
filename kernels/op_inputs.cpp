#include "kernels/op_inputs.h"

#include <cmath>

#include "runtime/philox.h"

namespace sd {

Tensor random_uniform_tensor(const Shape& shape, uint64_t seed, uint64_t offset, DType dtype) {
  Tensor t = Tensor::empty(shape, DType::F64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = 2.0 * philox_uniform(seed, offset, uint64_t(i)) - 1.0;
  return t.to(dtype);
}

std::vector<Tensor> make_op_inputs(const TestCase& tc, uint64_t seed, DType float_dtype,
                                   Device device) {
  std::vector<Tensor> out;
  for (size_t k = 0; k < tc.inputs.size(); ++k) {
    const TestInput& ti = tc.inputs[k];
    if (ti.absent) {
      out.emplace_back();
      continue;
    }
    Tensor u = random_uniform_tensor(ti.shape, seed, k, DType::F64);  // one stream per input
    double* p = u.data<double>();
    for (int64_t i = 0; i < u.numel(); ++i) {
      double x = 0.5 * (p[i] + 1.0);  // [0, 1)
      p[i] = ti.integer ? std::floor(ti.lo + x * (ti.hi - ti.lo + 1)) : ti.lo + x * (ti.hi - ti.lo);
    }
    out.push_back(u.to(ti.integer ? DType::I32 : float_dtype).to(device));
  }
  return out;
}

}  // namespace sd
