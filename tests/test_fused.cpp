// The fused family against the chains of existing ops it replaces (forward values, saved
// statistics and every input gradient, in f64 through autograd), and its bad-input messages.
// Gradients and CUDA parity of the fused ops themselves come from the registry loops.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/ops.h"
#include "kernels/op_inputs.h"
#include "tests/error_of.h"

namespace sd {
namespace {

using ::testing::HasSubstr;

Tensor uniform64(const Shape& shape, uint64_t seed, double scale = 1.0) {
  Tensor t = random_uniform_tensor(shape, seed, 0, DType::F64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] *= scale;
  return t;
}

// max |a - b| / max |b| over f64 tensors of one shape.
double rel_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const double *pa = a.data<double>(), *pb = b.data<double>();
  double num = 0, den = 1e-300;
  for (int64_t i = 0; i < a.numel(); ++i) {
    num = std::max(num, std::abs(pa[i] - pb[i]));
    den = std::max(den, std::abs(pb[i]));
  }
  return num / den;
}

struct ValueAndGrads {
  Tensor y;
  std::vector<Tensor> grads;
};

// f on fresh leaves holding copies of `inputs`, then the backward of <w, f(...)>.
ValueAndGrads run(const std::function<Variable(const std::vector<Variable>&)>& f,
                  const std::vector<Tensor>& inputs, const Tensor& w) {
  std::vector<Variable> leaves;
  for (auto& t : inputs) leaves.emplace_back(t.clone(), true);
  Variable y = f(leaves);
  backward(y, w);
  ValueAndGrads r{y.value(), {}};
  for (auto& v : leaves) r.grads.push_back(v.grad());
  return r;
}

void expect_same(const ValueAndGrads& fused, const ValueAndGrads& chain, const char* what) {
  EXPECT_LE(rel_diff(fused.y, chain.y), 1e-13) << what << ": y";
  const char* names[] = {"x", "gamma", "beta", "scale", "shift"};
  for (size_t i = 0; i < chain.grads.size(); ++i)
    EXPECT_LE(rel_diff(fused.grads[i], chain.grads[i]), 1e-12) << what << ": d" << names[i];
}

TEST(GroupNormMod, MatchesGroupNormScaleShiftSilu) {
  Shape xs{2, 6, 5, 5};
  std::vector<Tensor> in{uniform64(xs, 1, 2), uniform64({6}, 2), uniform64({6}, 3),
                         uniform64({2, 6}, 4), uniform64({2, 6}, 5)};
  Tensor w = uniform64(xs, 6);
  for (bool silu : {true, false}) {
    auto fused = run(
        [&](const std::vector<Variable>& v) {
          return ops::group_norm_mod(v[0], v[1], v[2], v[3], v[4], 3, silu);
        },
        in, w);
    auto chain = run(
        [&](const std::vector<Variable>& v) {
          Variable y = ops::scale_shift(ops::group_norm(v[0], v[1], v[2], 3), v[3], v[4], "nchw");
          return silu ? ops::silu(y) : y;
        },
        in, w);
    expect_same(fused, chain, silu ? "silu" : "no silu");
  }
  // The saved statistics are group_norm's.
  auto f = run_forward("group_norm_mod", in, {{"groups", 3}});
  auto g = run_forward("group_norm", {in[0], in[1], in[2]}, {{"groups", 3}});
  EXPECT_EQ(f[1].shape(), (Shape{2, 3}));
  EXPECT_LE(rel_diff(f[1], g[1]), 1e-15);
  EXPECT_LE(rel_diff(f[2], g[2]), 1e-15);
}

TEST(LayerNormMod, MatchesLayerNormScaleShift) {
  Shape xs{2, 7, 10};
  std::vector<Tensor> in{uniform64(xs, 11, 2), uniform64({10}, 12), uniform64({10}, 13),
                         uniform64({2, 10}, 14), uniform64({2, 10}, 15)};
  Tensor w = uniform64(xs, 16);
  for (bool silu : {false, true}) {
    auto fused = run(
        [&](const std::vector<Variable>& v) {
          return ops::layer_norm_mod(v[0], v[1], v[2], v[3], v[4], silu);
        },
        in, w);
    auto chain = run(
        [&](const std::vector<Variable>& v) {
          Variable y = ops::scale_shift(ops::layer_norm(v[0], v[1], v[2]), v[3], v[4], "nlc");
          return silu ? ops::silu(y) : y;
        },
        in, w);
    expect_same(fused, chain, silu ? "silu" : "no silu");
  }
  auto f = run_forward("layer_norm_mod", in);
  auto g = run_forward("layer_norm", {in[0], in[1], in[2]});
  EXPECT_EQ(f[1].shape(), (Shape{2, 7}));
  EXPECT_LE(rel_diff(f[1], g[1].reshape({2, 7})), 1e-15);
  EXPECT_LE(rel_diff(f[2], g[2].reshape({2, 7})), 1e-15);
}

TEST(BiasGelu, MatchesAddThenGelu) {
  for (Shape xs : {Shape{9, 5}, Shape{2, 7, 5}}) {
    std::vector<Tensor> in{uniform64(xs, 21, 3), uniform64({5}, 22)};
    Tensor w = uniform64(xs, 23);
    auto fused = run([](const std::vector<Variable>& v) { return ops::bias_gelu(v[0], v[1]); },
                     in, w);
    auto chain = run(
        [](const std::vector<Variable>& v) { return ops::gelu(ops::add(v[0], v[1])); }, in, w);
    expect_same(fused, chain, xs.size() == 2 ? "2-D" : "3-D");
  }
}

TEST(GroupNormMod, BadInputMessages) {
  Tensor x = Tensor::zeros({2, 6, 4, 4}), c6 = Tensor::zeros({6}), bc = Tensor::zeros({2, 6});
  EXPECT_THAT(error_of([&] {
                run_forward("group_norm_mod", {x, c6, c6, Tensor::zeros({2, 5}), bc},
                            {{"groups", 3}});
              }),
              HasSubstr("group_norm_mod: 'scale' expected shape [2, 6], got f32[2, 5]"));
  EXPECT_THAT(error_of([&] {
                run_forward("group_norm_mod", {x, c6, c6, bc, Tensor::zeros({6})},
                            {{"groups", 3}});
              }),
              HasSubstr("'shift' expected shape [2, 6], got f32[6]"));
  std::string msg = error_of([&] {
    run_forward("group_norm_mod", {x, c6, c6, bc, bc}, {{"groups", 4}});
  });
  EXPECT_THAT(msg, HasSubstr("C = 6"));
  EXPECT_THAT(msg, HasSubstr("groups = 4"));
  EXPECT_THAT(error_of([&] { run_forward("group_norm_mod", {x, c6, c6, bc, bc}); }),
              HasSubstr("missing required attribute 'groups'"));
  EXPECT_THAT(error_of([&] {
                run_forward("group_norm_mod", {x, c6, c6, bc, bc},
                            {{"groups", 3}, {"silu", 1}});
              }),
              HasSubstr("attribute 'silu' expected true or false, got 1"));
  EXPECT_THAT(error_of([&] {
                run_forward("group_norm_mod",
                            {x, c6, c6, Tensor::zeros({2, 6}, DType::F64), bc}, {{"groups", 3}});
              }),
              HasSubstr("'scale' expected dtype F32 like the first input, got f64[2, 6]"));
}

TEST(LayerNormMod, BadInputMessages) {
  Tensor x = Tensor::zeros({2, 7, 10}), c10 = Tensor::zeros({10}), bc = Tensor::zeros({2, 10});
  EXPECT_THAT(error_of([&] {
                run_forward("layer_norm_mod", {x, c10, c10, Tensor::zeros({7, 10}), bc});
              }),
              HasSubstr("layer_norm_mod: 'scale' expected shape [2, 10], got f32[7, 10]"));
  EXPECT_THAT(error_of([&] {
                run_forward("layer_norm_mod", {Tensor::zeros({14, 10}), c10, c10, bc, bc});
              }),
              HasSubstr("'x' expected 3 dimensions, got f32[14, 10]"));
  EXPECT_THAT(error_of([&] {
                run_forward("layer_norm_mod", {x, Tensor::zeros({7}), c10, bc, bc});
              }),
              HasSubstr("'gamma' expected shape [10], got f32[7]"));
}

TEST(BiasGelu, BadInputMessages) {
  EXPECT_THAT(error_of([] {
                run_forward("bias_gelu", {Tensor::zeros({3, 5}), Tensor::zeros({3})});
              }),
              HasSubstr("bias_gelu: 'b' expected shape [5], got f32[3]"));
}

}  // namespace
}  // namespace sd
