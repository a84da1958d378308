// The Winograd F(4x4, 3x3) path of conv2d (kernels/cpu/conv_winograd.cpp) against the im2col +
// GEMM reference (kernels/cpu/conv.cpp, selected with set_conv3x3_reference): forward, input
// gradient, weight gradient and bias gradient, in f32 and f64, on one and two threads, over
// shapes that leave partial tiles and partial channel vectors (H, W not multiples of 4, C and O
// not multiples of 16), batch 1 and the model's own shapes. Outputs are NaN-poisoned first, so an
// element the fast path fails to write shows up.
//
// Tolerance (the stated error growth): Winograd's f32 result is compared with the f64 reference
// (the exact answer to ~1e-16) and must stay within kWinogradRel * max|exact| per tensor, and
// within kGrowth times the f32 reference's own error (plus a floor of 1e-7 max|exact|). Measured
// on these cases (one thread): the reference's f32 error is 0.3-6e-7 of the largest value;
// Winograd's is 1-12e-6, 5-30x larger (y 5-28x, dx 4-30x, dw 1-18x), growing with the channel
// count (1.2e-5 for y at C = 128): the transforms scale rounding errors by their constants (up to
// 8 in A, 5 in B) before the channel sums. The bias gradient is the same code on both paths.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "kernels/cpu/conv_winograd.h"
#include "kernels/op_inputs.h"
#include "kernels/registry.h"

using namespace sd;

namespace {

constexpr double kWinogradRel = 3e-5;  // |winograd f32 - exact| <= this * max|exact|
constexpr double kGrowth = 64;         // and <= kGrowth * |reference f32 - exact| + 1e-7 max|exact|

struct Threads {
  int saved = omp_get_max_threads();
  explicit Threads(int n) { omp_set_num_threads(n); }
  ~Threads() { omp_set_num_threads(saved); }
};

struct Reference {
  explicit Reference(bool on) { cpu::set_conv3x3_reference(on); }
  ~Reference() { cpu::set_conv3x3_reference(false); }
};

Tensor poisoned(const Shape& s, DType dt) {
  Tensor t = Tensor::empty(s, dt);
  t.fill_(NAN);
  return t;
}

// y, dx, dw, db of conv2d 3x3 stride 1 padding 1 on the CPU, every output NaN-poisoned first.
std::vector<Tensor> conv_all(const std::vector<Tensor>& in, const Tensor& g, bool reference) {
  Reference ref(reference);
  const OpDef& def = Registry::get().at("conv2d");
  Attrs at = resolve_attrs(def, {{"stride", 1}, {"padding", 1}});
  const Tensor& x = in[0];
  Tensor y = poisoned({x.dim(0), in[1].dim(0), x.dim(2), x.dim(3)}, x.dtype());
  OpCall fc{in, {y}, at};
  def.cpu.forward(fc);
  GradCall bc{in, {y}, {g}, {}, at};
  for (const Tensor& t : in) bc.grad_in.push_back(poisoned(t.shape(), t.dtype()));
  def.cpu.backward(bc);
  return {y, bc.grad_in[0], bc.grad_in[1], bc.grad_in[2]};
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float f : v) m = std::max(m, double(std::abs(f)));
  return m;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  }
  return m;
}

struct Case {
  int64_t B, C, H, W, O;
};

void check_case(const Case& c, int threads, uint64_t seed) {
  Threads t(threads);
  std::vector<Tensor> in = make_op_inputs(
      TestCase{"", {{{c.B, c.C, c.H, c.W}}, {{c.O, c.C, 3, 3}, false, -0.3, 0.3}, {{c.O}}}}, seed,
      DType::F64, Device::CPU);
  Tensor g = random_uniform_tensor({c.B, c.O, c.H, c.W}, seed, 9, DType::F64);
  std::vector<Tensor> in32;
  for (const Tensor& x : in) in32.push_back(x.to(DType::F32));
  Tensor g32 = g.to(DType::F32);

  std::vector<Tensor> exact = conv_all(in, g, true);        // f64 reference
  std::vector<Tensor> fast64 = conv_all(in, g, false);      // f64 Winograd
  std::vector<Tensor> ref32 = conv_all(in32, g32, true);    // f32 reference
  std::vector<Tensor> fast32 = conv_all(in32, g32, false);  // f32 Winograd
  const char* names[] = {"y", "dx", "dw", "db"};
  for (int k = 0; k < 4; ++k) {
    std::vector<float> e = exact[k].to_floats();
    double scale = max_abs(e);
    double err64 = max_diff(fast64[k].to_floats(), e), err_ref = max_diff(ref32[k].to_floats(), e);
    double err = max_diff(fast32[k].to_floats(), e);
    SCOPED_TRACE(testing::Message() << names[k] << " B" << c.B << " C" << c.C << " " << c.H << "x"
                                    << c.W << " O" << c.O << " threads " << threads << ": f32 "
                                    << err / scale << " (reference " << err_ref / scale
                                    << "), f64 " << err64 / scale);
    EXPECT_LE(err64, 1e-12 * scale);
    EXPECT_LE(err, kWinogradRel * scale);
    EXPECT_LE(err, kGrowth * err_ref + 1e-7 * scale);
  }
}

TEST(ConvWinograd, MatchesReferenceOnOddShapes) {
  // partial tiles (H, W % 4 != 0), partial channel vectors, one-tile images, batch 1, O < C;
  // rows written four tiles at a time (W >= 16) next to single partial tiles (W = 38, H = 9)
  std::vector<Case> cases = {{2, 3, 7, 6, 5},   {1, 17, 9, 13, 33}, {3, 5, 1, 1, 2},
                             {2, 1, 4, 4, 1},   {1, 20, 5, 3, 19},  {4, 16, 8, 8, 16},
                             {2, 40, 11, 10, 7}, {3, 12, 9, 38, 20}};
  for (int threads : {1, 2})
    for (size_t i = 0; i < cases.size(); ++i) check_case(cases[i], threads, 100 + i);
}

TEST(ConvWinograd, MatchesReferenceOnModelShapes) {
  // configs/demo.json's 3x3 convolutions at batch 4: embed, 16x16 and 8x8 levels, up path, out
  std::vector<Case> cases = {{4, 12, 16, 16, 32}, {4, 32, 16, 16, 32}, {4, 64, 8, 8, 64},
                             {4, 128, 8, 8, 64},  {4, 96, 16, 16, 32}, {4, 32, 16, 16, 12}};
  for (int threads : {1, 2})
    for (size_t i = 0; i < cases.size(); ++i) check_case(cases[i], threads, 200 + i);
}

// The two-thread result is the one-thread result up to the order of the per-thread weight
// gradient partials (forward and input gradient: per-tile work, bitwise equal).
TEST(ConvWinograd, ThreadCountsAgree) {
  std::vector<Tensor> in = make_op_inputs(
      TestCase{"", {{{5, 24, 12, 10}}, {{24, 24, 3, 3}}, {{24}}}}, 7, DType::F32, Device::CPU);
  Tensor g = random_uniform_tensor({5, 24, 12, 10}, 7, 9);
  std::vector<Tensor> r[2];
  for (int threads : {1, 2}) {
    Threads t(threads);
    r[threads - 1] = conv_all(in, g, false);
  }
  EXPECT_EQ(max_diff(r[0][0].to_floats(), r[1][0].to_floats()), 0.0);
  EXPECT_EQ(max_diff(r[0][1].to_floats(), r[1][1].to_floats()), 0.0);
  EXPECT_LE(max_diff(r[0][2].to_floats(), r[1][2].to_floats()),
            1e-5 * max_abs(r[0][2].to_floats()));
}

// Other shapes keep the reference path: the switch only concerns 3x3 stride 1 padding 1.
TEST(ConvWinograd, OnlyThreeByThreeStrideOnePaddingOne) {
  Tensor x = random_uniform_tensor({2, 5, 9, 9}, 1, 0), w = random_uniform_tensor({4, 5, 3, 3}, 1, 1);
  for (Attrs at : {Attrs{{"stride", 2}, {"padding", 1}}, Attrs{{"stride", 1}, {"padding", 0}}}) {
    Tensor a = run_forward("conv2d", {x, w, Tensor()}, at)[0];
    Reference ref(true);
    Tensor b = run_forward("conv2d", {x, w, Tensor()}, at)[0];
    EXPECT_EQ(max_diff(a.to_floats(), b.to_floats()), 0.0) << at.dump();
  }
}

}  // namespace
