// Known values and bad-input messages of the shape, embed, reduce and random families (their
// gradients and CUDA parity are covered by the registry loops).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tests/error_of.h"
#include "kernels/op_inputs.h"
#include "kernels/registry.h"
#include "runtime/philox.h"

using namespace sd;
using ::testing::HasSubstr;

namespace {

Tensor iota(const Shape& s) {
  std::vector<float> v(size_t(shape_numel(s)));
  std::iota(v.begin(), v.end(), 0.0f);
  return Tensor::from_floats(v, s);
}

// Reference N-D transpose by explicit multi-indices.
std::vector<float> naive_permute(const Tensor& x, const std::vector<int64_t>& perm) {
  const Shape& s = x.shape();
  int n = x.ndim();
  Shape ys(n), xstride(n, 1);
  for (int d = n - 2; d >= 0; --d) xstride[d] = xstride[d + 1] * s[d + 1];
  for (int i = 0; i < n; ++i) ys[i] = s[perm[i]];
  std::vector<float> xv = x.to_floats(), y(xv.size());
  for (int64_t o = 0; o < int64_t(y.size()); ++o) {
    int64_t rem = o, off = 0;
    for (int i = n - 1; i >= 0; --i) {
      off += rem % ys[i] * xstride[perm[i]];
      rem /= ys[i];
    }
    y[o] = xv[off];
  }
  return y;
}

TEST(Permute, MatchesNaiveForEveryPermutationOf4D) {
  for (Shape s : {Shape{2, 3, 5, 7}, Shape{3, 1, 4, 33}, Shape{1, 40, 1, 35}}) {
    Tensor x = iota(s);
    std::vector<int64_t> perm = {0, 1, 2, 3};
    do {
      Tensor y = run_forward("permute", {x}, {{"perm", perm}})[0];
      EXPECT_EQ(y.to_floats(), naive_permute(x, perm))
          << shape_str(s) << " perm " << shape_str(perm);
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
}

TEST(Permute, SixDimsAndInverse) {
  Tensor x = iota({2, 3, 2, 5, 1, 3});
  std::vector<int64_t> perm = {5, 3, 0, 4, 2, 1};
  Tensor y = run_forward("permute", {x}, {{"perm", perm}})[0];
  EXPECT_EQ(y.shape(), (Shape{3, 5, 2, 1, 2, 3}));
  EXPECT_EQ(y.to_floats(), naive_permute(x, perm));
  // The backward is the inverse permutation: applied to y it gives x back.
  Tensor g = run_backward("permute", {x}, {y}, {y}, {true}, {{"perm", perm}})[0];
  EXPECT_EQ(g.to_floats(), x.to_floats());
}

TEST(Permute, BadPermutations) {
  Tensor x = iota({2, 3, 4});
  EXPECT_THAT(error_of([&] { run_forward("permute", {x}, {{"perm", {0, 1, 1}}}); }),
              HasSubstr("axis 1 repeated"));
  EXPECT_THAT(error_of([&] { run_forward("permute", {x}, {{"perm", {0, 1}}}); }),
              HasSubstr("a permutation of 0..2"));
  EXPECT_THAT(error_of([&] { run_forward("permute", {x}, {{"perm", {0, 1, 3}}}); }),
              HasSubstr("perm"));
}

TEST(ConcatSplit, KnownValuesAndRoundTrip) {
  Tensor a = Tensor::from_floats({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from_floats({5, 6}, {2, 1});
  Tensor y = run_forward("concat", {a, b}, {{"axis", -1}})[0];
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(y.to_floats(), (std::vector<float>{1, 2, 5, 3, 4, 6}));
  auto parts = run_forward("split", {y}, {{"first", 2}, {"axis", 1}});
  EXPECT_EQ(parts[0].to_floats(), a.to_floats());
  EXPECT_EQ(parts[1].to_floats(), b.to_floats());
  // An absent gradient of one part counts as zeros.
  Tensor gx = run_backward("split", {y}, parts, {parts[0], Tensor()}, {true},
                           {{"first", 2}, {"axis", 1}})[0];
  EXPECT_EQ(gx.to_floats(), (std::vector<float>{1, 2, 0, 3, 4, 0}));
}

TEST(ConcatSplit, BadInputs) {
  Tensor a = iota({2, 3, 6}), b = iota({2, 4, 5});
  std::string msg = error_of([&] { run_forward("concat", {a, b}, {{"axis", 1}}); });
  EXPECT_THAT(msg, HasSubstr("[2, 3, 6]"));
  EXPECT_THAT(msg, HasSubstr("[2, 4, 5]"));
  EXPECT_THAT(error_of([&] { run_forward("concat", {a, a}, {{"axis", 3}}); }), HasSubstr("axis"));
  EXPECT_THAT(error_of([&] { run_forward("split", {a}, {{"first", 4}, {"axis", 1}}); }),
              HasSubstr("'first'"));
}

TEST(Embedding, RowsAndScatterAddGradient) {
  Tensor table = iota({4, 3});
  Tensor idx = Tensor::from_ints({2, 0, 2}, {3});
  Tensor y = run_forward("embedding", {table, idx})[0];
  EXPECT_EQ(y.to_floats(), (std::vector<float>{6, 7, 8, 0, 1, 2, 6, 7, 8}));
  Tensor g = Tensor::from_floats({1, 1, 1, 2, 2, 2, 10, 10, 10}, {3, 3});
  Tensor dt = run_backward("embedding", {table, idx}, {y}, {g}, {true, false})[0];
  EXPECT_EQ(dt.to_floats(), (std::vector<float>{2, 2, 2, 0, 0, 0, 11, 11, 11, 0, 0, 0}));
}

TEST(Embedding, IndexOutOfRangeNamesTheIndex) {
  Tensor table = iota({10, 3});
  std::string msg = error_of([&] {
    run_forward("embedding", {table, Tensor::from_ints({1, 12, 3}, {3})});
  });
  EXPECT_THAT(msg, HasSubstr("12"));
  EXPECT_THAT(msg, HasSubstr("V = 10"));
  EXPECT_THAT(error_of([&] { run_forward("embedding", {table, Tensor::from_ints({-1}, {1})}); }),
              HasSubstr("index -1"));
}

TEST(Sinusoidal, KnownValues) {
  Tensor x = Tensor::from_floats({0, 1}, {2});
  Tensor y = run_forward("sinusoidal_embedding", {x}, {{"dim", 4}})[0];
  std::vector<float> v = y.to_floats();
  // x = 0: cos = 1, sin = 0. x = 1: f = [1, 10000^(-1/2)] = [1, 0.01].
  std::vector<float> want = {1, 1, 0, 0, std::cos(1.f), std::cos(0.01f), std::sin(1.f),
                             std::sin(0.01f)};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(v[i], want[i], 1e-6) << i;
  EXPECT_THAT(error_of([&] { run_forward("sinusoidal_embedding", {x}, {{"dim", 5}}); }),
              HasSubstr("even"));
}

TEST(Dropout, KeepsFractionAndBackwardUsesTheSameMask) {
  const double p = 0.3;
  Attrs at = {{"p", p}, {"seed", 1234}, {"offset", 99}};
  Tensor x = Tensor::full({1, 100003}, 1.0);
  Tensor y = run_forward("dropout", {x}, at)[0];
  Tensor g = random_uniform_tensor(x.shape(), 5, 0);
  Tensor dx = run_backward("dropout", {x}, {y}, {g}, {true}, at)[0];
  std::vector<float> yv = y.to_floats(), gv = g.to_floats(), dv = dx.to_floats();
  const float s = float(1.0 / (1.0 - p));
  int64_t kept = 0;
  for (size_t i = 0; i < yv.size(); ++i) {
    bool keep = yv[i] != 0;
    ASSERT_EQ(keep, double(philox_uniform(1234, 99, i)) >= p) << "mask is not the stream at " << i;
    kept += keep;
    if (keep) {
      EXPECT_EQ(yv[i], s) << i;
    }
    ASSERT_EQ(dv[i], keep ? gv[i] * s : 0.0f) << "backward mask differs at " << i;
  }
  EXPECT_NEAR(double(kept) / yv.size(), 1 - p, 0.005);
  // p = 0 is the identity.
  Tensor z = run_forward("dropout", {x}, {{"p", 0.0}, {"seed", 1}, {"offset", 0}})[0];
  EXPECT_EQ(z.to_floats(), x.to_floats());
  EXPECT_THAT(error_of([&] { run_forward("dropout", {x}, {{"p", 1.0}, {"seed", 1}, {"offset", 0}}); }),
              HasSubstr("[0, 1)"));
}

TEST(Reduce, KnownValues) {
  Tensor x = Tensor::from_floats({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor s = run_forward("sum", {x})[0];
  EXPECT_EQ(s.shape(), Shape{});
  EXPECT_EQ(s.item(), 21.0);
  EXPECT_EQ(run_forward("mean", {x})[0].item(), 3.5);
  Tensor g = run_backward("mean", {x}, {s}, {Tensor::full({}, 6.0)}, {true})[0];
  EXPECT_EQ(g.to_floats(), std::vector<float>(6, 1.0f));
  // mse per sample: rows (1,2,3) vs (0,0,0) -> 14/3; (4,5,6) vs (4,5,8) -> 4/3.
  Tensor b = Tensor::from_floats({0, 0, 0, 4, 5, 8}, {2, 3});
  std::vector<float> m = run_forward("mse", {x, b})[0].to_floats();
  EXPECT_FLOAT_EQ(m[0], 14.0f / 3);
  EXPECT_FLOAT_EQ(m[1], 4.0f / 3);
  EXPECT_THAT(error_of([&] { run_forward("mse", {x, iota({3, 2})}); }), HasSubstr("'b'"));
}

}  // namespace
