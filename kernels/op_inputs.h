// Fresh random inputs for an op's test case, from Philox, so the gradient check, the CUDA parity
// loop, `simdiff op` examples and the benchmarks all draw the same data for the same seed.
#pragma once
#include "kernels/registry.h"

namespace sd {

// Float inputs get `float_dtype` (F64 for the gradient check, F32 for parity); integer inputs I32.
std::vector<Tensor> make_op_inputs(const TestCase& tc, uint64_t seed, DType float_dtype,
                                   Device device = Device::CPU);

// A uniform [-1, 1] tensor of the given shape (CPU), from stream (seed, offset).
Tensor random_uniform_tensor(const Shape& shape, uint64_t seed, uint64_t offset,
                             DType dtype = DType::F32);

}  // namespace sd
