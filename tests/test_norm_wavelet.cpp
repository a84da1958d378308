// Known values and bad-input messages of the norm and wavelet families (gradients and CUDA parity
// come from the registry loops).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "tests/error_of.h"
#include "kernels/op_inputs.h"

namespace sd {
namespace {

using ::testing::HasSubstr;

Tensor uniform(const Shape& shape, uint64_t seed, DType dt = DType::F32) {
  return random_uniform_tensor(shape, seed, 0, dt);
}

double sum_sq(const Tensor& t) {
  double s = 0;
  for (float v : t.to_floats()) s += double(v) * v;
  return s;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<float> x = a.to_floats(), y = b.to_floats();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(double(x[i]) - y[i]));
  return m;
}

TEST(HaarDwt, KnownBlock) {
  // a b / c d = 1 2 / 3 4: LL = 5, LH = (1-2+3-4)/2 = -1, HL = (1+2-3-4)/2 = -2, HH = 0.
  Tensor y = run_forward("haar_dwt", {Tensor::from_floats({1, 2, 3, 4}, {1, 1, 2, 2})})[0];
  EXPECT_EQ(y.shape(), (Shape{1, 4, 1, 1}));
  EXPECT_EQ(y.to_floats(), (std::vector<float>{5, -1, -2, 0}));
}

TEST(HaarDwt, ConstantImageHasOnlyLowLow) {
  Tensor x = Tensor::full({2, 3, 6, 8}, 0.75);
  Tensor y = run_forward("haar_dwt", {x})[0];
  ASSERT_EQ(y.shape(), (Shape{2, 12, 3, 4}));
  std::vector<float> v = y.to_floats();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t ch = 0; ch < 12; ++ch)
      for (int64_t k = 0; k < 12; ++k) {
        float want = ch < 3 ? 1.5f : 0.f;  // LL = 2 * const on the first C channels
        EXPECT_FLOAT_EQ(v[size_t((b * 12 + ch) * 12 + k)], want) << "channel " << ch;
      }
}

TEST(HaarDwt, InverseRoundTripsAndPreservesEnergy) {
  Tensor x = uniform({2, 3, 8, 10}, 11);
  Tensor y = run_forward("haar_dwt", {x})[0];
  Tensor back = run_forward("haar_idwt", {y})[0];
  ASSERT_EQ(back.shape(), x.shape());
  EXPECT_LE(max_abs_diff(back, x), 1e-6);
  EXPECT_NEAR(sum_sq(y), sum_sq(x), 1e-5 * sum_sq(x));
}

TEST(HaarDwt, ThreeLevelsRoundTrip) {
  Tensor x = uniform({1, 2, 16, 24}, 12);
  Tensor y = x;
  for (int l = 0; l < 3; ++l) y = run_forward("haar_dwt", {y})[0];
  EXPECT_EQ(y.shape(), (Shape{1, 128, 2, 3}));
  EXPECT_NEAR(sum_sq(y), sum_sq(x), 1e-5 * sum_sq(x));
  for (int l = 0; l < 3; ++l) y = run_forward("haar_idwt", {y})[0];
  ASSERT_EQ(y.shape(), x.shape());
  EXPECT_LE(max_abs_diff(y, x), 1e-6);
}

TEST(HaarDwt, BadInputsNameTheShape) {
  EXPECT_THAT(error_of([] {
                run_forward("haar_dwt", {Tensor::zeros({1, 2, 5, 4})});
              }),
              HasSubstr("[1, 2, 5, 4]"));
  EXPECT_THAT(error_of([] {
                run_forward("haar_dwt", {Tensor::zeros({1, 2, 5, 4})});
              }),
              HasSubstr("even H and W"));
  EXPECT_THAT(error_of([] {
                run_forward("haar_dwt", {Tensor::zeros({2, 4, 4})});
              }),
              HasSubstr("4 dimensions"));
  EXPECT_THAT(error_of([] {
                run_forward("haar_idwt", {Tensor::zeros({1, 6, 2, 2})});
              }),
              HasSubstr("divisible by 4, got f32[1, 6, 2, 2]"));
}

// Per-row mean and variance of y (gamma = 1, beta = 0) over consecutive runs of n values.
void expect_standardised(const Tensor& y, int64_t n) {
  std::vector<float> v = y.to_floats();
  for (size_t r = 0; r < v.size() / size_t(n); ++r) {
    double m = 0, var = 0;
    for (int64_t j = 0; j < n; ++j) m += v[r * n + j];
    m /= double(n);
    for (int64_t j = 0; j < n; ++j) var += (v[r * n + j] - m) * (v[r * n + j] - m);
    var /= double(n);
    EXPECT_NEAR(m, 0.0, 1e-6) << "row " << r;
    EXPECT_NEAR(var, 1.0, 1e-4) << "row " << r;
  }
}

TEST(LayerNorm, RowsHaveZeroMeanUnitVariance) {
  Tensor x = uniform({3, 4, 50}, 21);
  auto out =
      run_forward("layer_norm", {x, Tensor::full({50}, 1.0), Tensor::zeros({50})}, {{"eps", 1e-9}});
  EXPECT_EQ(out[1].shape(), (Shape{12}));
  expect_standardised(out[0], 50);
  // The saved statistics are those of x.
  std::vector<float> xv = x.to_floats(), mean = out[1].to_floats(), rstd = out[2].to_floats();
  double m = 0, var = 0;
  for (int j = 0; j < 50; ++j) m += xv[size_t(50 + j)];
  m /= 50;
  for (int j = 0; j < 50; ++j) var += (xv[size_t(50 + j)] - m) * (xv[size_t(50 + j)] - m);
  EXPECT_NEAR(mean[1], m, 1e-6);
  EXPECT_NEAR(rstd[1], 1 / std::sqrt(var / 50 + 1e-9), 1e-4);
}

TEST(LayerNorm, AffineAppliesPerChannel) {
  Tensor x = Tensor::from_floats({1, 3, 1, 3}, {1, 4});  // mean 2, var 1
  Tensor g = Tensor::from_floats({1, 2, 3, 4}, {4}), b = Tensor::from_floats({0, 0, 1, 1}, {4});
  auto y = run_forward("layer_norm", {x, g, b}, {{"eps", 0.0}})[0].to_floats();
  std::vector<float> want{-1, 2, -2, 5};
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(y[size_t(j)], want[size_t(j)], 1e-6);
}

TEST(LayerNorm, GammaOfWrongSizeNamesExpectedAndGot) {
  std::string msg = error_of([] {
    run_forward("layer_norm", {Tensor::zeros({2, 5}), Tensor::zeros({4}), Tensor::zeros({5})});
  });
  EXPECT_THAT(msg, HasSubstr("layer_norm"));
  EXPECT_THAT(msg, HasSubstr("'gamma' expected shape [5], got f32[4]"));
}

TEST(GroupNorm, GroupsHaveZeroMeanUnitVariance) {
  Tensor x = uniform({2, 6, 5, 3}, 31);
  auto out = run_forward("group_norm", {x, Tensor::full({6}, 1.0), Tensor::zeros({6})},
                         {{"groups", 3}, {"eps", 1e-9}});
  EXPECT_EQ(out[1].shape(), (Shape{2, 3}));
  expect_standardised(out[0], 2 * 15);  // a group = 2 channels x 15 positions, contiguous
}

TEST(GroupNorm, OneGroupPerChannelIsInstanceNorm) {
  Tensor x = uniform({2, 4, 3, 3}, 32);
  auto y = run_forward("group_norm", {x, Tensor::full({4}, 1.0), Tensor::zeros({4})},
                       {{"groups", 4}, {"eps", 1e-9}})[0];
  expect_standardised(y, 9);
}

TEST(GroupNorm, BadInputMessages) {
  Tensor x = Tensor::zeros({2, 6, 4, 4});
  std::string msg = error_of([&] {
    run_forward("group_norm", {x, Tensor::zeros({6}), Tensor::zeros({6})}, {{"groups", 4}});
  });
  EXPECT_THAT(msg, HasSubstr("C = 6"));
  EXPECT_THAT(msg, HasSubstr("groups = 4"));
  EXPECT_THAT(
      error_of([&] {
        run_forward("group_norm", {x, Tensor::zeros({6}), Tensor::zeros({3})}, {{"groups", 3}});
      }),
      HasSubstr("'beta' expected shape [6], got f32[3]"));
  EXPECT_THAT(error_of([&] {
                run_forward("group_norm", {x, Tensor::zeros({6}), Tensor::zeros({6})});
              }),
              HasSubstr("missing required attribute 'groups'"));
}

TEST(ScaleShift, LayoutsAgree) {
  // The same values as nchw [2, 3, 4] and as nlc [2, 4, 3] (transposed) give transposed outputs.
  Tensor x = uniform({2, 3, 4}, 41), sc = uniform({2, 3}, 42), sh = uniform({2, 3}, 43);
  std::vector<float> xv = x.to_floats(), xt(24);
  for (int b = 0; b < 2; ++b)
    for (int ch = 0; ch < 3; ++ch)
      for (int n = 0; n < 4; ++n)
        xt[size_t((b * 4 + n) * 3 + ch)] = xv[size_t((b * 3 + ch) * 4 + n)];
  auto y1 = run_forward("scale_shift", {x, sc, sh})[0].to_floats();
  auto y2 = run_forward("scale_shift", {Tensor::from_floats(xt, {2, 4, 3}), sc, sh},
                        {{"layout", "nlc"}})[0]
                .to_floats();
  std::vector<float> scv = sc.to_floats(), shv = sh.to_floats();
  for (int b = 0; b < 2; ++b)
    for (int ch = 0; ch < 3; ++ch)
      for (int n = 0; n < 4; ++n) {
        size_t i = size_t((b * 3 + ch) * 4 + n);
        float want = xv[i] * (1 + scv[size_t(b * 3 + ch)]) + shv[size_t(b * 3 + ch)];
        EXPECT_NEAR(y1[i], want, 1e-6);
        EXPECT_NEAR(y2[size_t((b * 4 + n) * 3 + ch)], want, 1e-6);
      }
}

TEST(ScaleShift, BadInputMessages) {
  EXPECT_THAT(error_of([] {
                run_forward("scale_shift", {Tensor::zeros({2, 3, 4}), Tensor::zeros({2, 4}),
                                            Tensor::zeros({2, 4})});
              }),
              HasSubstr("'scale' expected shape [2, 3], got f32[2, 4]"));
  EXPECT_THAT(error_of([] {
                run_forward(
                    "scale_shift",
                    {Tensor::zeros({2, 3, 4}), Tensor::zeros({2, 3}), Tensor::zeros({2, 3})},
                    {{"layout", "nhwc"}});
              }),
              HasSubstr("\"nchw\" or \"nlc\""));
}

}  // namespace
}  // namespace sd
