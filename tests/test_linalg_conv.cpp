// Known-value and bad-input tests of the linalg and image families: matmul, linear and conv2d
// against naive loops (at sizes where the CPU kernels take their multi-threaded paths), the
// pixel (un)shuffle order and round trip, pooling, and the error messages.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>

#include "tests/error_of.h"
#include "kernels/cpu/conv_winograd.h"
#include "kernels/op_inputs.h"
#include "kernels/registry.h"

using namespace sd;
using ::testing::HasSubstr;

namespace {

void expect_close(const Tensor& got, const std::vector<double>& want, double tol) {
  std::vector<float> g = got.to_floats();
  ASSERT_EQ(g.size(), want.size());
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], want[i], tol * (1 + std::abs(want[i]))) << "element " << i;
}

std::string error_of(const std::string& op, const std::vector<Tensor>& in,
                     const Attrs& attrs = Attrs::object()) {
  return ::error_of([&] { run_forward(op, in, attrs); });
}

// Runs the enclosing test body with n OpenMP threads (ctest sets OMP_NUM_THREADS=1), so the
// multi-threaded paths (per-image convolutions, GEMMs split by cpu::gemm) are exercised too.
struct Threads {
  int saved = omp_get_max_threads();
  explicit Threads(int n) { omp_set_num_threads(n); }
  ~Threads() { omp_set_num_threads(saved); }
};

// C[b] = op(A[b]) op(B[b or shared]) by the definition.
std::vector<double> naive_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  std::vector<float> A = a.to_floats(), B = b.to_floats();
  int64_t M = ta ? a.dim(-1) : a.dim(-2), K = ta ? a.dim(-2) : a.dim(-1);
  int64_t N = tb ? b.dim(-2) : b.dim(-1);
  int64_t batch = a.numel() / (M * K);
  bool shared = b.ndim() == 2;
  std::vector<double> C(batch * M * N);
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) {
          double av = A[i * M * K + (ta ? k * M + m : m * K + k)];
          double bv = B[(shared ? 0 : i * K * N) + (tb ? n * K + k : k * N + n)];
          s += av * bv;
        }
        C[(i * M + m) * N + n] = s;
      }
  return C;
}

TEST(Matmul, MatchesNaiveLoops) {
  struct Case { Shape a, b; bool ta, tb; };
  // Batches of small products (batch-parallel path), shared b (folded into one GEMM), and
  // products large enough for cpu::gemm to split C by rows (M >= N) or by columns, each transpose.
  std::vector<Case> cases = {{{6, 9, 13}, {6, 13, 11}, false, false},
                             {{6, 13, 9}, {6, 11, 13}, true, true},
                             {{2, 3, 9, 13}, {13, 5}, false, false},
                             {{4, 13, 9}, {5, 13}, true, true},
                             {{3, 70, 90}, {3, 110, 90}, false, true},
                             {{301, 200}, {200, 45}, false, false},
                             {{200, 301}, {45, 200}, true, true},
                             {{45, 200}, {200, 301}, false, false},
                             {{200, 45}, {301, 200}, true, true}};
  for (int threads : {1, 2}) {
    Threads t(threads);
    uint64_t seed = 1;
    for (const Case& c : cases) {
      Tensor a = random_uniform_tensor(c.a, seed++, 0), b = random_uniform_tensor(c.b, seed++, 1);
      Tensor y = run_forward("matmul", {a, b}, {{"trans_a", c.ta}, {"trans_b", c.tb}})[0];
      expect_close(y, naive_matmul(a, b, c.ta, c.tb), 1e-5);
    }
  }
}

TEST(Linear, MatchesNaiveLoops) {
  Tensor x = random_uniform_tensor({3, 4, 10}, 5, 0), w = random_uniform_tensor({7, 10}, 5, 1);
  Tensor b = random_uniform_tensor({7}, 5, 2);
  Tensor y = run_forward("linear", {x, w, b})[0];
  EXPECT_EQ(y.shape(), (Shape{3, 4, 7}));
  std::vector<float> X = x.to_floats(), Wt = w.to_floats(), Bv = b.to_floats();
  std::vector<double> want(12 * 7);
  for (int r = 0; r < 12; ++r)
    for (int o = 0; o < 7; ++o) {
      double s = Bv[o];
      for (int i = 0; i < 10; ++i) s += double(X[r * 10 + i]) * Wt[o * 10 + i];
      want[r * 7 + o] = s;
    }
  expect_close(y, want, 1e-5);
}

// y[b, o, oy, ox] = bias[o] + sum_{c, ky, kx} w[o, c, ky, kx] x[b, c, oy*s - p + ky, ox*s - p + kx]
std::vector<double> naive_conv(const Tensor& x, const Tensor& w, const Tensor& bias, int s, int p) {
  std::vector<float> X = x.to_floats(), Wt = w.to_floats(), Bv = bias.to_floats();
  int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), O = w.dim(0), k = w.dim(2);
  int64_t Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
  std::vector<double> y(B * O * Ho * Wo);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oy = 0; oy < Ho; ++oy)
        for (int64_t ox = 0; ox < Wo; ++ox) {
          double acc = Bv[o];
          for (int64_t c = 0; c < C; ++c)
            for (int64_t ky = 0; ky < k; ++ky)
              for (int64_t kx = 0; kx < k; ++kx) {
                int64_t iy = oy * s - p + ky, ix = ox * s - p + kx;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += double(X[((b * C + c) * H + iy) * W + ix]) * Wt[((o * C + c) * k + ky) * k + kx];
              }
          y[((b * O + o) * Ho + oy) * Wo + ox] = acc;
        }
  return y;
}

TEST(Conv2d, MatchesDirectConvolution) {
  struct Case { Shape x; int64_t O, k; int s, p; };
  // The last case has one image, so its GEMMs are split over the threads instead.
  std::vector<Case> cases = {{{5, 3, 9, 7}, 4, 3, 1, 1},  {{4, 3, 9, 8}, 5, 3, 2, 1},
                             {{3, 5, 6, 6}, 2, 3, 1, 0},  {{4, 6, 5, 7}, 3, 1, 1, 0},
                             {{2, 2, 8, 8}, 3, 4, 4, 0},  {{1, 3, 6, 5}, 2, 3, 2, 2},
                             {{1, 16, 20, 21}, 32, 3, 1, 1}};
  // Both paths of the 3x3 stride-1 padding-1 cases: the im2col reference, and Winograd, whose
  // f32 error is larger (tests/test_conv_fast.cpp states it), hence its looser bound.
  for (bool reference : {true, false})
    for (int threads : {1, 2}) {
      Threads t(threads);
      cpu::set_conv3x3_reference(reference);
      uint64_t seed = 10;
      for (const Case& c : cases) {
        Tensor x = random_uniform_tensor(c.x, seed, 0);
        Tensor w = random_uniform_tensor({c.O, c.x[1], c.k, c.k}, seed, 1);
        Tensor b = random_uniform_tensor({c.O}, seed++, 2);
        Tensor y = run_forward("conv2d", {x, w, b}, {{"stride", c.s}, {"padding", c.p}})[0];
        expect_close(y, naive_conv(x, w, b, c.s, c.p), reference ? 1e-5 : 5e-5);
      }
      cpu::set_conv3x3_reference(false);
    }
}

// The gradient check runs on one thread in double; the f32 backward on two threads (per-image
// partial weight gradients, split GEMMs) must agree with the one-thread result.
TEST(Conv2d, BackwardAgreesAcrossThreadCounts) {
  for (Shape xs : {Shape{5, 6, 9, 8}, Shape{1, 16, 20, 21}}) {
    Tensor x = random_uniform_tensor(xs, 3, 0), w = random_uniform_tensor({32, xs[1], 3, 3}, 3, 1);
    Tensor b = random_uniform_tensor({32}, 3, 2);
    Attrs at = {{"stride", 1}, {"padding", 1}};
    Tensor y = run_forward("conv2d", {x, w, b}, at)[0];
    Tensor g = random_uniform_tensor(y.shape(), 3, 3);
    std::vector<std::vector<float>> grads[2];
    for (int threads : {1, 2}) {
      Threads t(threads);
      for (const Tensor& gi : run_backward("conv2d", {x, w, b}, {y}, {g}, {true, true, true}, at))
        grads[threads - 1].push_back(gi.to_floats());
    }
    ASSERT_EQ(grads[0].size(), 3u);
    for (size_t i = 0; i < 3; ++i)
      for (size_t j = 0; j < grads[0][i].size(); ++j)
        ASSERT_NEAR(grads[1][i][j], grads[0][i][j], 1e-4 * (1 + std::abs(grads[0][i][j])))
            << "input " << i << " element " << j;
  }
}

TEST(SpaceToDepth, PixelUnshuffleChannelOrder) {
  // x[0, c, h, w] = 100c + 10h + w; p = 2: channel c*4 + dy*2 + dx at (i, j) holds (2i+dy, 2j+dx)
  std::vector<float> v;
  for (int c = 0; c < 2; ++c)
    for (int h = 0; h < 4; ++h)
      for (int w = 0; w < 6; ++w) v.push_back(100 * c + 10 * h + w);
  Tensor y = run_forward("space_to_depth", {Tensor::from_floats(v, {1, 2, 4, 6})}, {{"p", 2}})[0];
  ASSERT_EQ(y.shape(), (Shape{1, 8, 2, 3}));
  std::vector<float> got = y.to_floats();
  for (int c = 0; c < 2; ++c)
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx)
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 3; ++j)
            EXPECT_EQ(got[((c * 4 + dy * 2 + dx) * 2 + i) * 3 + j],
                      100 * c + 10 * (2 * i + dy) + (2 * j + dx));
}

TEST(SpaceToDepth, RoundTripIsIdentity) {
  for (int p : {2, 4}) {
    Tensor x = random_uniform_tensor({2, 3, 8, 12}, 3, p);
    Tensor s = run_forward("space_to_depth", {x}, {{"p", p}})[0];
    EXPECT_EQ(s.shape(), (Shape{2, 3 * p * p, 8 / p, 12 / p}));
    Tensor back = run_forward("depth_to_space", {s}, {{"p", p}})[0];
    EXPECT_EQ(back.to_floats(), x.to_floats());
    // and the other way round: space_to_depth(depth_to_space(z)) == z
    Tensor z = random_uniform_tensor({2, 48, 2, 3}, 4, p);
    Tensor up = run_forward("depth_to_space", {z}, {{"p", p}})[0];
    EXPECT_EQ(up.shape(), (Shape{2, 48 / (p * p), 2 * p, 3 * p}));
    EXPECT_EQ(run_forward("space_to_depth", {up}, {{"p", p}})[0].to_floats(), z.to_floats());
  }
}

TEST(AvgPool2d, ConstantStaysConstant) {
  Tensor x = Tensor::full({2, 3, 6, 9}, 1.25);
  Tensor y = run_forward("avg_pool2d", {x}, {{"k", 3}})[0];
  EXPECT_EQ(y.shape(), (Shape{2, 3, 2, 3}));
  for (float v : y.to_floats()) EXPECT_FLOAT_EQ(v, 1.25f);
}

TEST(UpsampleNearest, RepeatsEachPixel) {
  Tensor x = Tensor::from_floats({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor y = run_forward("upsample_nearest", {x})[0];
  EXPECT_EQ(y.to_floats(), (std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}));
}

TEST(LinalgConvErrors, MatmulInnerDimensionsNameBothShapes) {
  std::string e = error_of("matmul", {Tensor::zeros({2, 3, 4}), Tensor::zeros({2, 5, 6})});
  EXPECT_THAT(e, HasSubstr("matmul"));
  EXPECT_THAT(e, HasSubstr("[2, 3, 4]"));
  EXPECT_THAT(e, HasSubstr("[2, 5, 6]"));
  EXPECT_THAT(e, HasSubstr("inner dimensions"));
  EXPECT_THAT(error_of("matmul", {Tensor::zeros({2, 3, 4}), Tensor::zeros({3, 4, 6})}),
              HasSubstr("batch dimensions"));
  EXPECT_THAT(error_of("linear", {Tensor::zeros({2, 4}), Tensor::zeros({3, 5}), Tensor()}),
              HasSubstr("last dimension of x"));
}

TEST(LinalgConvErrors, ConvChannelMismatch) {
  std::string e = error_of("conv2d", {Tensor::zeros({1, 3, 8, 8}), Tensor::zeros({4, 5, 3, 3}), Tensor()});
  EXPECT_THAT(e, HasSubstr("conv2d"));
  EXPECT_THAT(e, HasSubstr("3 input channels"));
  EXPECT_THAT(e, HasSubstr("[4, 5, 3, 3]"));
  EXPECT_THAT(error_of("conv2d", {Tensor::zeros({1, 3, 8, 8}), Tensor::zeros({4, 3, 3, 3}), Tensor()},
                       {{"stride", 0}}),
              HasSubstr("'stride' expected an integer >= 1"));
  EXPECT_THAT(error_of("conv2d", {Tensor::zeros({1, 3, 2, 2}), Tensor::zeros({4, 3, 5, 5}), Tensor()}),
              HasSubstr("larger than the padded input"));
}

TEST(LinalgConvErrors, NotDivisibleByBlockSize) {
  std::string e = error_of("avg_pool2d", {Tensor::zeros({1, 2, 7, 6})}, {{"k", 2}});
  EXPECT_THAT(e, HasSubstr("avg_pool2d"));
  EXPECT_THAT(e, HasSubstr("height 7"));
  EXPECT_THAT(e, HasSubstr("divisible by k=2"));
  EXPECT_THAT(error_of("space_to_depth", {Tensor::zeros({1, 2, 8, 6})}, {{"p", 4}}),
              HasSubstr("divisible by p=4"));
  EXPECT_THAT(error_of("depth_to_space", {Tensor::zeros({1, 6, 2, 2})}, {{"p", 2}}),
              HasSubstr("divisible by p*p=4"));
}

}  // namespace
