// One loop over the registry: CUDA against the CPU reference, forward and backward, on fresh
// random inputs, with every new buffer poisoned (NaN) so an unwritten element fails the check.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/op_inputs.h"
#include "runtime/allocator.h"

namespace sd {
namespace {

#ifdef SIMDIFF_WITH_CUDA
std::vector<std::string> op_names() {
  std::vector<std::string> v;
  for (auto* d : Registry::get().all()) v.push_back(d->name);
  return v;
}

// max |a - b| / max(max |b|, 1e-30); NaN anywhere counts as failure (returns +inf).
double rel_error(const Tensor& got, const Tensor& ref) {
  std::vector<float> a = got.to_floats(), b = ref.to_floats();
  double num = 0, den = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    num = std::max(num, std::abs(double(a[i]) - b[i]));
    den = std::max(den, std::abs(double(b[i])));
  }
  return num / den;
}

std::vector<Tensor> forward_on(const OpDef& def, Device dev, const std::vector<Tensor>& in,
                               const Attrs& attrs) {
  if (def.inputs.empty()) return run_forward_on(dev, def.name, attrs);
  std::vector<Tensor> moved;
  for (auto& t : in) moved.push_back(t.defined() ? t.to(dev) : Tensor());
  return run_forward(def.name, moved, attrs);
}

class OpParity : public ::testing::TestWithParam<std::string> {};

TEST_P(OpParity, CudaMatchesCpu) {
  const OpDef& def = Registry::get().at(GetParam());
  ASSERT_TRUE(bool(def.cuda.forward)) << def.name << " has no CUDA forward";
  if (def.differentiable()) {
    ASSERT_TRUE(bool(def.cuda.backward)) << def.name << " has no CUDA backward";
  }
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  set_alloc_poison(true);
  uint64_t seed = 777;
  for (const TestCase& tc : def.tests) {
    std::vector<Tensor> in = make_op_inputs(tc, seed++, DType::F32);
    std::vector<Tensor> ref = forward_on(def, Device::CPU, in, tc.attrs);
    std::vector<Tensor> got = forward_on(def, Device::CUDA, in, tc.attrs);
    for (size_t j = 0; j < ref.size(); ++j)
      EXPECT_LE(rel_error(got[j], ref[j]), def.parity_tol)
          << def.name << " [" << tc.label << "] output '" << def.outputs[j].name << "'";
    if (!def.differentiable()) continue;
    std::vector<Tensor> gout, gout_d, in_d, out_d;
    for (size_t j = 0; j < ref.size(); ++j) {
      gout.push_back(def.outputs[j].differentiable
                         ? random_uniform_tensor(ref[j].shape(), seed + 99, j)
                         : Tensor());
      gout_d.push_back(gout.back().defined() ? gout.back().to(Device::CUDA) : Tensor());
      out_d.push_back(got[j]);
    }
    std::vector<bool> need;
    for (size_t i = 0; i < in.size(); ++i) {
      need.push_back(in[i].defined() && def.inputs[i].differentiable);
      in_d.push_back(in[i].defined() ? in[i].to(Device::CUDA) : Tensor());
    }
    std::vector<Tensor> gref = run_backward(def.name, in, ref, gout, need, tc.attrs);
    std::vector<Tensor> ggot = run_backward(def.name, in_d, out_d, gout_d, need, tc.attrs);
    for (size_t i = 0; i < gref.size(); ++i) {
      if (!gref[i].defined()) continue;
      EXPECT_LE(rel_error(ggot[i], gref[i]), def.parity_tol)
          << def.name << " [" << tc.label << "] gradient of '" << def.inputs[i].name << "'";
    }
  }
  set_alloc_poison(false);
}

INSTANTIATE_TEST_SUITE_P(Registry, OpParity, ::testing::ValuesIn(op_names()),
                         [](const auto& info) { return info.param; });
#else
TEST(OpParity, CudaMatchesCpu) { GTEST_SKIP() << "built without CUDA: no parity to check"; }
#endif

}  // namespace
}  // namespace sd
