// One loop over the registry: every op on CUDA against the CPU reference, on fresh random inputs,
// with every new buffer poisoned (NaN) so an unwritten element fails the check.
//   CudaMatchesCpu    forward and backward in f32, every input gradient requested;
//   Bf16              every op with a float input, forward and backward, with every float tensor
//                     in bf16 (native kernels or the registry's f32 adapter) against an f64 CPU
//                     reference: within twice one bf16 rounding of the result (4x for a native
//                     kernel with bf16 intermediates: attention; tests/bf16_rule.h);
//   Bf16MixedDtypes   native bf16 kernels with f32 tensors beside the bf16 ones (f32 bias, gamma);
//   GradientSubsets   backward with one input gradient requested at a time;
//   NoOutputGradient  backward with one output's gradient undefined ("no gradient flows back");
//   CappedGrids       f32 again with 2 SMs, every grid-stride grid capped at 3 blocks and 1-byte
//                     scratch buffers, so grid-stride loops, split reductions and chunked paths run;
// and OpParityInPlace: the in-place updates the training loop makes (an output aliasing an input).
// They run on a GPU, and on the CPU in the emulation build (SIMDIFF_CUDA=EMULATE, in CI).
#include <gtest/gtest.h>

#include <cmath>
#include <optional>

#include "kernels/op_inputs.h"
#include "runtime/allocator.h"
#include "runtime/cuda_limits.h"
#include "tests/bf16_rule.h"

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
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    num = std::max(num, std::abs(double(a[i]) - b[i]));
    den = std::max(den, std::abs(double(b[i])));
  }
  return num / den;
}

std::vector<Tensor> forward(const OpDef& def, Device dev, const std::vector<Tensor>& in,
                            const Attrs& attrs) {
  return def.inputs.empty() ? run_forward_on(dev, def.name, attrs) : run_forward(def.name, in, attrs);
}

// What varies between the f32 checks of one op: which input gradients are requested (empty:
// every differentiable one), which output gradient is left undefined (-1: none).
struct Variant {
  std::vector<bool> need;
  int no_grad_output = -1;
  std::string what;  // for messages
};

// One test case of one op: forward on both devices, then backward when the op has one.
void check_case(const OpDef& def, const TestCase& tc, uint64_t seed, const Variant& v) {
  const double tol = def.parity_tol;
  const std::string at = def.name + " [" + tc.label + "]" + v.what;
  std::vector<Tensor> in_cpu = make_op_inputs(tc, seed, DType::F32);
  std::vector<Tensor> in_dev = bf16_rule::place(in_cpu, Device::CUDA, DType::F32);
  std::vector<Tensor> ref = forward(def, Device::CPU, in_cpu, tc.attrs), got;
  try {
    got = forward(def, Device::CUDA, in_dev, tc.attrs);
  } catch (const Error& e) {
    FAIL() << at << ": the cuda forward failed: " << e.what();
  }
  for (size_t j = 0; j < ref.size(); ++j)
    EXPECT_LE(rel_error(got[j], ref[j]), tol) << at << " output '" << def.outputs[j].name << "'";
  if (!def.differentiable()) return;

  std::vector<Tensor> gout_cpu;
  for (size_t j = 0; j < ref.size(); ++j)
    gout_cpu.push_back(def.outputs[j].differentiable && int(j) != v.no_grad_output
                           ? random_uniform_tensor(ref[j].shape(), seed + 99, j, ref[j].dtype())
                           : Tensor());
  std::vector<Tensor> gout_dev;  // in each output's dtype (cast's f64 output takes an f64 one)
  for (const Tensor& g : gout_cpu) gout_dev.push_back(g.defined() ? g.to(Device::CUDA) : Tensor());
  std::vector<bool> need = v.need;
  if (need.empty())
    for (size_t i = 0; i < in_cpu.size(); ++i)
      need.push_back(in_cpu[i].defined() && def.inputs[i].differentiable);

  // A backward must not fail, except that with the only output gradient left out both backends
  // may refuse alike (autograd never asks for that, see autograd/tape.cpp); with one of several
  // left out they must treat it as zero.
  std::optional<std::string> cpu_error, cuda_error;
  std::vector<Tensor> gref, ggot;
  try {
    gref = run_backward(def.name, in_cpu, ref, gout_cpu, need, tc.attrs);
  } catch (const Error& e) {
    cpu_error = e.what();
  }
  try {
    ggot = run_backward(def.name, in_dev, got, gout_dev, need, tc.attrs);
  } catch (const Error& e) {
    cuda_error = e.what();
  }
  if (cpu_error || cuda_error) {
    ASSERT_TRUE(v.no_grad_output >= 0 && cpu_error && cuda_error)
        << at << ": the backward failed; cpu: " << cpu_error.value_or("ok")
        << "; cuda: " << cuda_error.value_or("ok");
    int differentiable_outputs = 0;
    for (auto& o : def.outputs) differentiable_outputs += o.differentiable;
    EXPECT_EQ(differentiable_outputs, 1)
        << at << ": autograd may leave one of several output gradients out, the backward must "
        << "take that: " << *cpu_error;
    return;
  }
  for (size_t i = 0; i < gref.size(); ++i) {
    ASSERT_EQ(gref[i].defined(), ggot[i].defined()) << at << " gradient of '" << def.inputs[i].name << "'";
    if (gref[i].defined()) {
      EXPECT_LE(rel_error(ggot[i], gref[i]), tol) << at << " gradient of '" << def.inputs[i].name << "'";
    }
  }
}

// Runs `check` for each test case of the parameter's op, poisoned buffers on.
template <class F>
void for_each_case(const std::string& op, F&& check) {
  const OpDef& def = Registry::get().at(op);
  ASSERT_TRUE(bool(def.cuda.forward)) << def.name << " has no CUDA forward";
  if (def.differentiable()) {
    ASSERT_TRUE(bool(def.cuda.backward)) << def.name << " has no CUDA backward";
  }
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  set_alloc_poison(true);
  uint64_t seed = 777;
  for (const TestCase& tc : def.tests) check(def, tc, seed++);
  set_alloc_poison(false);
}

class OpParity : public ::testing::TestWithParam<std::string> {};

TEST_P(OpParity, CudaMatchesCpu) {
  for_each_case(GetParam(), [](const OpDef& def, const TestCase& tc, uint64_t seed) {
    check_case(def, tc, seed, {});
  });
}

TEST_P(OpParity, Bf16) {
  const OpDef& def = Registry::get().at(GetParam());
  bool float_input = false;
  for (const TestInput& ti : def.tests.at(0).inputs) float_input |= !ti.integer;
  if (!float_input) GTEST_SKIP() << def.name << " has no floating-point input";
  // The adapter takes every shape; a native kernel may refuse some (attention: a head dim that is
  // not a multiple of 8) with an error naming the op, but must run at least one case.
  const bool native = def.cuda.bf16;
  int checked = 0;
  for_each_case(def.name, [&](const OpDef& def, const TestCase& tc, uint64_t seed) {
    try {
      checked += bf16_rule::check_case(def, tc, seed, Device::CUDA, def.bf16_parity_factor);
    } catch (const Error& e) {
      EXPECT_TRUE(native && std::string(e.what()).rfind(def.name + ":", 0) == 0)
          << def.name << " [" << tc.label << "] refused bf16 on cuda: " << e.what();
    }
  });
  if (cuda_available()) {
    EXPECT_GT(checked, 0) << def.name << ": no test case runs in bf16";
  }
}

// A native bf16 kernel also takes f32 tensors next to bf16 ones where the op allows it (an f32
// bias, gamma or conditioning beside bf16 activations): every such mix of the float inputs after
// the first (kept bf16) that the op's infer() accepts, under the same bound.
TEST_P(OpParity, Bf16MixedDtypes) {
  const OpDef& def = Registry::get().at(GetParam());
  if (!def.cuda.bf16) GTEST_SKIP() << def.name << " runs bf16 through the registry's f32 adapter";
  int checked = 0;
  for_each_case(def.name, [&](const OpDef& def, const TestCase& tc, uint64_t seed) {
    std::vector<size_t> later;  // float inputs after the first
    bool first = true;
    for (size_t i = 0; i < tc.inputs.size(); ++i) {
      if (tc.inputs[i].integer || tc.inputs[i].absent) continue;
      if (!first) later.push_back(i);
      first = false;
    }
    std::vector<Tensor> probe = make_op_inputs(tc, seed, DType::F32);
    for (uint32_t mask = 1; mask < (1u << later.size()); ++mask) {
      std::vector<bool> keep(tc.inputs.size(), false);
      for (size_t k = 0; k < later.size(); ++k) keep[later[k]] = mask >> k & 1;
      try {
        def.infer(bf16_rule::place(probe, Device::CPU, DType::BF16, keep),
                  resolve_attrs(def, tc.attrs));
      } catch (const Error&) {
        continue;  // a mix the op refuses on every backend (expect_same_dtype)
      }
      checked += bf16_rule::check_case(def, tc, seed, Device::CUDA, def.bf16_parity_factor, keep);
    }
  });
  if (cuda_available()) RecordProperty("mixes_checked", checked);
}

TEST_P(OpParity, GradientSubsets) {
  const OpDef& def = Registry::get().at(GetParam());
  if (!def.differentiable()) GTEST_SKIP() << def.name << " is not differentiable";
  int checked = 0;
  for_each_case(def.name, [&](const OpDef& def, const TestCase& tc, uint64_t seed) {
    std::vector<size_t> grads;
    for (size_t i = 0; i < tc.inputs.size(); ++i)
      if (!tc.inputs[i].absent && def.inputs[i].differentiable) grads.push_back(i);
    if (grads.size() < 2) return;  // one gradient: the full check already requests only it
    for (size_t i : grads) {
      std::vector<bool> need(tc.inputs.size(), false);
      need[i] = true;
      check_case(def, tc, seed, {need, -1, " only d" + def.inputs[i].name});
      ++checked;
    }
  });
  if (!checked && cuda_available()) GTEST_SKIP() << def.name << " has one differentiable input";
}

TEST_P(OpParity, NoOutputGradient) {
  const OpDef& def = Registry::get().at(GetParam());
  if (!def.differentiable()) GTEST_SKIP() << def.name << " is not differentiable";
  for_each_case(def.name, [](const OpDef& def, const TestCase& tc, uint64_t seed) {
    for (size_t j = 0; j < def.outputs.size(); ++j)
      if (def.outputs[j].differentiable)
        check_case(def, tc, seed, {{}, int(j), " no gradient for " + def.outputs[j].name});
  });
}

TEST_P(OpParity, CappedGrids) {
  CudaLimits saved = cuda_limits();
  cuda_limits() = {2, 3, 1};
  for_each_case(GetParam(), [](const OpDef& def, const TestCase& tc, uint64_t seed) {
    check_case(def, tc, seed, {{}, -1, " with capped grids"});
  });
  cuda_limits() = saved;
}

INSTANTIATE_TEST_SUITE_P(Registry, OpParity, ::testing::ValuesIn(op_names()),
                         [](const auto& info) { return info.param; });

// In-place updates as the training loop makes them: outputs[k] written into inputs[alias[k]].
struct InPlace {
  std::string op, why;
  std::vector<int> alias;
};

class OpParityInPlace : public ::testing::TestWithParam<InPlace> {};

TEST_P(OpParityInPlace, CudaMatchesCpu) {
  const InPlace& p = GetParam();
  int cases = 0;
  for_each_case(p.op, [&](const OpDef& def, const TestCase& tc, uint64_t seed) {
    std::vector<Tensor> in = make_op_inputs(tc, seed, DType::F32);
    std::vector<OutMeta> metas = def.infer(in, resolve_attrs(def, tc.attrs));
    for (size_t k = 0; k < p.alias.size(); ++k)
      if (metas[k].shape != in[size_t(p.alias[k])].shape()) return;  // a broadcast operand
    std::vector<Tensor> cpu, dev;
    for (const Tensor& t : in) {
      cpu.push_back(t.clone());
      dev.push_back(t.to(Device::CUDA));
    }
    auto outs = [&](const std::vector<Tensor>& v) {
      std::vector<Tensor> o;
      for (int a : p.alias) o.push_back(v[size_t(a)]);
      return o;
    };
    run_forward_into(def.name, cpu, outs(cpu), tc.attrs);
    run_forward_into(def.name, dev, outs(dev), tc.attrs);
    for (int a : p.alias)
      EXPECT_LE(rel_error(dev[size_t(a)], cpu[size_t(a)]), def.parity_tol)
          << def.name << " [" << tc.label << "] in place into '" << def.inputs[size_t(a)].name
          << "' (" << p.why << ")";
    ++cases;
  });
  if (cuda_available()) {
    EXPECT_GT(cases, 0) << p.op << ": no test case can run in place";
  }
}

INSTANTIATE_TEST_SUITE_P(
    TrainingLoop, OpParityInPlace,
    ::testing::Values(InPlace{"add", "gradient accumulation (autograd/tape.cpp)", {0}},
                      InPlace{"adamw", "the optimizer step (tools/train.cpp)", {0, 2, 3}},
                      InPlace{"ema", "the EMA weights (tools/train.cpp)", {0}}),
    [](const auto& info) { return info.param.op; });
#else
TEST(OpParity, CudaMatchesCpu) { GTEST_SKIP() << "built without CUDA: no parity to check"; }
#endif

}  // namespace
}  // namespace sd
