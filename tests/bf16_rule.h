// The accuracy rule for bf16 op results, shared by the CPU loop (tests/test_bf16.cpp) and the CUDA
// parity loop (tests/test_op_parity.cpp), both over the whole registry.
//
// The rule (the FlashAttention test's, with PyTorch's bf16 computation replaced by its floor):
// an op called with bf16 tensors is run, and each of its results is compared, as max |got - ref|,
// with the reference: the same op in f64 on the CPU from the same (bf16-valued) inputs. The
// allowed error is twice the error of "the same computation done in bf16 the PyTorch way", which
// we take at its floor: the f64 result rounded once to bf16 (inputs already bf16). No bf16
// computation can do better than that one rounding of its result; ours, f32 arithmetic and one
// rounding at the end (kernels/registry.h), comes within an f32 rounding of it, and a kernel that
// rounds an intermediate to bf16 (attention's probabilities, a bf16 accumulator) must still stay
// within 2x. A small f32 floor (2^-23 of the largest reference value) covers results that are
// exactly bf16 in f64 (data movement) where f32 arithmetic leaves a few f32 ulps.
//   Results kept in f32 (the statistics saved for the backward, statistic_dtype()) must beat the
// bf16 floor 16-fold: they are not rounded to bf16.
//   A native bf16 kernel that feeds tensor cores rounds intermediates to bf16 as PyTorch's bf16
// computation does (attention's P and dS): the CUDA loop allows it 4x the floor (measured: 2.2x
// for attention's dQ/dK), and the op's own test holds it to 2x PyTorch's computation written
// out (tests/test_attention.cpp, Attention.CudaBf16WithinTwiceThePytorchBf16Error).
//   The backward is checked as a function of what it is given: the reference backward runs in f64
// on the same inputs, the same saved outputs (the bf16 forward's, widened) and the same bf16
// output gradients, so each rounding is counted once, at the op that makes it.
#pragma once
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/op_inputs.h"

namespace sd::bf16_rule {

// Float tensors in `dt` on `dev` (those whose `keep_f32` entry is true in f32 instead: mixed
// precision); integer and undefined ones as they are.
inline std::vector<Tensor> place(const std::vector<Tensor>& v, Device dev, DType dt,
                                 const std::vector<bool>& keep_f32 = {}) {
  std::vector<Tensor> r;
  for (size_t i = 0; i < v.size(); ++i) {
    const Tensor& t = v[i];
    DType to = i < keep_f32.size() && keep_f32[i] ? DType::F32 : dt;
    r.push_back(!t.defined() ? Tensor() : (t.dtype() == DType::I32 ? t : t.to(to)).to(dev));
  }
  return r;
}

// max |got - ref| (NaN anywhere: +inf), and the bf16 floor of ref: max |round_bf16(ref) - ref|.
struct Errors {
  double err = 0, floor = 0, ref_max = 0;
};
inline Errors errors(const Tensor& got, const Tensor& ref64) {
  Tensor g = got.to(Device::CPU).to(DType::F64), r = ref64.to(DType::F64);
  Tensor rb = r.to(DType::BF16).to(DType::F64);  // f64 -> f32 -> bf16: the double rounding moves
                                                 // only values within 2^-24 of a tie, negligibly
  Errors e;
  if (g.shape() != r.shape()) return {INFINITY, 0, 0};
  const double *pg = g.data<double>(), *pr = r.data<double>(), *pb = rb.data<double>();
  for (int64_t i = 0; i < r.numel(); ++i) {
    if (std::isnan(pg[i]) || std::isnan(pr[i])) return {INFINITY, 0, 0};
    e.err = std::max(e.err, std::abs(pg[i] - pr[i]));
    e.floor = std::max(e.floor, std::abs(pb[i] - pr[i]));
    e.ref_max = std::max(e.ref_max, std::abs(pr[i]));
  }
  return e;
}

// The rule above for one result (its dtype says which half applies); `factor`: 2, or 4 for a
// native kernel with bf16 intermediates.
inline void expect_within(const Tensor& got, const Tensor& ref64, const std::string& what,
                          double factor = 2) {
  Errors e = errors(got, ref64);
  const double f32_floor = std::ldexp(e.ref_max, -23);
  if (got.dtype() == DType::BF16) {
    EXPECT_LE(e.err, factor * e.floor + f32_floor)
        << what << " (bf16): error " << e.err << ", one bf16 rounding of the f64 result "
        << e.floor << ", largest value " << e.ref_max;
  } else {
    EXPECT_LE(e.err, e.floor / 16 + f32_floor)
        << what << " (" << dtype_name(got.dtype()) << ", kept in f32): error " << e.err
        << ", one bf16 rounding " << e.floor;
  }
}

// One test case of one op on `dev` with every float input in bf16 (except those `keep_f32` keeps in
// f32: the mixed-precision calls, e.g. an f32 bias next to bf16 activations): forward, then
// backward with every differentiable input's gradient requested. Returns false (and checks
// nothing) for an op without a float input.
inline bool check_case(const OpDef& def, const TestCase& tc, uint64_t seed, Device dev,
                       double factor = 2, const std::vector<bool>& keep_f32 = {}) {
  std::string at = def.name + " [" + tc.label + "] bf16 on " + device_name(dev);
  for (size_t i = 0; i < keep_f32.size(); ++i)
    if (keep_f32[i]) at += ", '" + def.inputs[i].name + "' in f32";
  std::vector<Tensor> in = make_op_inputs(tc, seed, DType::F32);
  bool any_float = false;
  for (const Tensor& t : in) any_float |= t.defined() && t.dtype() != DType::I32;
  if (!any_float) return false;
  // bf16 values first, then the f32 ones widened: every input holds bf16 values, so the f64
  // reference sees exactly what the kernel sees whatever the dtypes.
  std::vector<Tensor> in_b = place(place(in, Device::CPU, DType::BF16), dev, DType::BF16, keep_f32);
  std::vector<Tensor> in64 = place(in_b, Device::CPU, DType::F64);  // the same values, exactly
  std::vector<Tensor> ref = run_forward(def.name, in64, tc.attrs);
  std::vector<Tensor> got = run_forward(def.name, in_b, tc.attrs);
  for (size_t j = 0; j < ref.size(); ++j)
    expect_within(got[j], ref[j], at + " output '" + def.outputs[j].name + "'", factor);
  if (!def.differentiable()) return true;

  std::vector<Tensor> gout, gout64, got64;
  for (size_t j = 0; j < got.size(); ++j) {
    bool flows = def.outputs[j].differentiable;
    // bf16 values, in the output's dtype (an f32 loss or total takes an f32 gradient).
    gout.push_back(flows ? random_uniform_tensor(got[j].shape(), seed + 99, j, DType::BF16)
                               .to(got[j].dtype())
                               .to(dev)
                         : Tensor());
    gout64.push_back(flows ? gout.back().to(Device::CPU).to(DType::F64) : Tensor());
    got64.push_back(got[j].to(Device::CPU).to(DType::F64));
  }
  std::vector<bool> need;
  for (size_t i = 0; i < in.size(); ++i) need.push_back(in[i].defined() && def.inputs[i].differentiable);
  std::vector<Tensor> gref = run_backward(def.name, in64, got64, gout64, need, tc.attrs);
  std::vector<Tensor> ggot = run_backward(def.name, in_b, got, gout, need, tc.attrs);
  for (size_t i = 0; i < gref.size(); ++i) {
    EXPECT_EQ(gref[i].defined(), ggot[i].defined()) << at << " gradient of '" << def.inputs[i].name << "'";
    if (!gref[i].defined() || !ggot[i].defined()) continue;
    EXPECT_EQ(ggot[i].dtype(), in_b[i].dtype()) << at << " gradient of '" << def.inputs[i].name << "'";
    expect_within(ggot[i], gref[i], at + " gradient of '" + def.inputs[i].name + "'", factor);
  }
  return true;
}

}  // namespace sd::bf16_rule
