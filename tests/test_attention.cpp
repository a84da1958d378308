// Attention against the textbook computation with the explicit N x N matrix (double), numerical
// stability, argument errors, the CUDA f32 kernels at their tile edges, and the CUDA bf16
// (tensor-core) kernels under FlashAttention's test rule.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "kernels/cuda/kernel_log.h"
#include "kernels/op_inputs.h"
#include "kernels/registry.h"
#include "runtime/allocator.h"
#include "tests/error_of.h"

namespace sd {
namespace {

std::vector<double> to_doubles(const Tensor& t) {
  Tensor d = t.to(Device::CPU).to(DType::F64);
  return std::vector<double>(d.data<double>(), d.data<double>() + d.numel());
}

struct Naive {
  std::vector<double> out, lse, dq, dk, dv;
};

// softmax(s Q K^T) V with the full score matrix per head, and its gradients from the softmax
// Jacobian: dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik).
Naive naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                      double s) {
  std::vector<double> Q = to_doubles(q), K = to_doubles(k), V = to_doubles(v), G = to_doubles(g);
  int64_t BH = q.dim(0) * q.dim(1), N = q.dim(2), D = q.dim(3);
  Naive r;
  for (auto* x : {&r.out, &r.dq, &r.dk, &r.dv}) x->assign(size_t(BH * N * D), 0.0);
  r.lse.assign(size_t(BH * N), 0.0);
  std::vector<double> P(size_t(N * N)), dS(size_t(N * N));
  for (int64_t bh = 0; bh < BH; ++bh) {
    auto at = [&](const std::vector<double>& t, int64_t i, int64_t d) {
      return t[size_t((bh * N + i) * D + d)];
    };
    auto ref = [&](std::vector<double>& t, int64_t i, int64_t d) -> double& {
      return t[size_t((bh * N + i) * D + d)];
    };
    for (int64_t i = 0; i < N; ++i) {
      double mx = -INFINITY;
      for (int64_t j = 0; j < N; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += at(Q, i, d) * at(K, j, d);
        P[size_t(i * N + j)] = s * dot;
        mx = std::max(mx, s * dot);
      }
      double sum = 0;
      for (int64_t j = 0; j < N; ++j) sum += std::exp(P[size_t(i * N + j)] - mx);
      r.lse[size_t(bh * N + i)] = mx + std::log(sum);
      for (int64_t j = 0; j < N; ++j)
        P[size_t(i * N + j)] = std::exp(P[size_t(i * N + j)] - mx) / sum;
      for (int64_t j = 0; j < N; ++j)
        for (int64_t d = 0; d < D; ++d) ref(r.out, i, d) += P[size_t(i * N + j)] * at(V, j, d);
      double row = 0;
      for (int64_t j = 0; j < N; ++j) {
        double dp = 0;
        for (int64_t d = 0; d < D; ++d) dp += at(G, i, d) * at(V, j, d);
        dS[size_t(i * N + j)] = dp;
        row += P[size_t(i * N + j)] * dp;
      }
      for (int64_t j = 0; j < N; ++j)
        dS[size_t(i * N + j)] = P[size_t(i * N + j)] * (dS[size_t(i * N + j)] - row);
    }
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j)
        for (int64_t d = 0; d < D; ++d) {
          double p = P[size_t(i * N + j)], ds = dS[size_t(i * N + j)];
          ref(r.dq, i, d) += s * ds * at(K, j, d);
          ref(r.dk, j, d) += s * ds * at(Q, i, d);
          ref(r.dv, j, d) += p * at(G, i, d);
        }
  }
  return r;
}

// max |got - want| / max |want|
double rel_err(const Tensor& got, const std::vector<double>& want) {
  std::vector<double> a = to_doubles(got);
  double num = 0, den = 1e-300;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(a[i] - want[i]));
    den = std::max(den, std::abs(want[i]));
  }
  return num / den;
}

std::vector<Tensor> random_qkvg(const Shape& s, DType dt, double qk_range, uint64_t seed) {
  std::vector<Tensor> t;
  for (uint64_t i = 0; i < 4; ++i) {
    Tensor x = random_uniform_tensor(s, seed, i, DType::F64);
    if (i < 2) {
      double* p = x.data<double>();
      for (int64_t e = 0; e < x.numel(); ++e) p[e] *= qk_range;
    }
    t.push_back(x.to(dt));
  }
  return t;
}

struct Case {
  Shape shape;
  double scale;  // attribute value (0: 1/sqrt(D))
};

TEST(Attention, MatchesNaiveSoftmaxInDoubleAndFloat) {
  // N = 300 spans two CPU key blocks (256): the online-softmax rescale.
  for (Case c : {Case{{2, 3, 70, 8}, 0.0}, Case{{1, 2, 5, 4}, 0.9}, Case{{1, 1, 300, 16}, -0.2}}) {
    double s = c.scale == 0 ? 1 / std::sqrt(double(c.shape[3])) : c.scale;
    for (DType dt : {DType::F64, DType::F32}) {
      double tol = dt == DType::F64 ? 1e-12 : 2e-6;
      auto t = random_qkvg(c.shape, dt, 2.0, 11);
      Naive want = naive_attention(t[0], t[1], t[2], t[3], s);
      auto out = run_forward("attention", {t[0], t[1], t[2]}, {{"scale", c.scale}});
      ASSERT_EQ(out[1].shape(), Shape({c.shape[0], c.shape[1], c.shape[2]}));
      EXPECT_EQ(out[1].dtype(), dt);
      EXPECT_LE(rel_err(out[0], want.out), tol) << shape_str(c.shape) << " out " << dtype_name(dt);
      EXPECT_LE(rel_err(out[1], want.lse), tol) << shape_str(c.shape) << " lse " << dtype_name(dt);
      auto g = run_backward("attention", {t[0], t[1], t[2]}, out, {t[3], Tensor()},
                            {true, true, true}, {{"scale", c.scale}});
      double gtol = dt == DType::F64 ? 1e-11 : 2e-5;
      EXPECT_LE(rel_err(g[0], want.dq), gtol) << shape_str(c.shape) << " dq " << dtype_name(dt);
      EXPECT_LE(rel_err(g[1], want.dk), gtol) << shape_str(c.shape) << " dk " << dtype_name(dt);
      EXPECT_LE(rel_err(g[2], want.dv), gtol) << shape_str(c.shape) << " dv " << dtype_name(dt);
    }
  }
}

// Scores of a few hundred would overflow exp() without the running max; the online softmax
// stays finite and exact.
TEST(Attention, StableForLargeScores) {
  auto t = random_qkvg({1, 2, 300, 8}, DType::F64, 30.0, 5);
  Naive want = naive_attention(t[0], t[1], t[2], t[3], 1.0);
  auto out = run_forward("attention", {t[0], t[1], t[2]}, {{"scale", 1.0}});
  EXPECT_LE(rel_err(out[0], want.out), 1e-12);
  EXPECT_LE(rel_err(out[1], want.lse), 1e-12);
  // f32: finite, and as close as f32 scores of magnitude ~7000 allow (~4e-4 each).
  auto f = run_forward("attention", {t[0].to(DType::F32), t[1].to(DType::F32),
                                     t[2].to(DType::F32)}, {{"scale", 1.0}});
  for (float x : f[0].to_floats()) ASSERT_TRUE(std::isfinite(x));
  EXPECT_LE(rel_err(f[0], want.out), 5e-3);
  EXPECT_LE(rel_err(f[1], want.lse), 1e-6);
}

TEST(Attention, GradientOnlyWhereRequestedAndZeroWithoutOutputGradient) {
  auto t = random_qkvg({1, 2, 9, 4}, DType::F64, 1.0, 3);
  auto out = run_forward("attention", {t[0], t[1], t[2]});
  auto g = run_backward("attention", {t[0], t[1], t[2]}, out, {t[3], Tensor()},
                        {false, true, false});
  EXPECT_FALSE(g[0].defined());
  EXPECT_TRUE(g[1].defined());
  EXPECT_FALSE(g[2].defined());
  auto z = run_backward("attention", {t[0], t[1], t[2]}, out, {Tensor(), Tensor()},
                        {true, true, true});
  for (auto& x : z)
    for (float f : x.to_floats()) EXPECT_EQ(f, 0.f);
}

TEST(Attention, BadInputsNameTheArgument) {
  Tensor q = Tensor::zeros({1, 2, 5, 4}), k6 = Tensor::zeros({1, 2, 6, 4});
  expect_error_containing([&] { run_forward("attention", {q, k6, q}); },
                          "attention: 'k' expected shape [1, 2, 5, 4], got f32[1, 2, 6, 4]");
  Tensor q3 = Tensor::zeros({2, 5, 4});
  expect_error_containing([&] { run_forward("attention", {q3, q3, q3}); },
                          "attention: 'q' expected 4 dimensions");
  Tensor k64 = Tensor::zeros({1, 2, 5, 4}, DType::F64);
  expect_error_containing([&] { run_forward("attention", {q, k64, q}); },
                          "attention: 'k' expected dtype F32");
  expect_error_containing([&] { run_forward("attention", {q, q, q}, {{"scale", "big"}}); },
                          "attention: attribute 'scale' expected a finite number");
  Tensor empty = Tensor::zeros({1, 2, 0, 4});
  expect_error_containing([&] { run_forward("attention", {empty, empty, empty}); },
                          "N > 0 and D > 0");
}

TEST(Attention, CudaRejectsUnsupportedHeadDim) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  Tensor q = Tensor::zeros({1, 1, 8, 130}).to(Device::CUDA);
  expect_error_containing([&] { run_forward("attention", {q, q, q}); }, "got head dim D = 130");
  Tensor h = Tensor::zeros({1, 1, 8, 36}).to(DType::BF16).to(Device::CUDA);
  expect_error_containing([&] { run_forward("attention", {h, h, h}); },
                          "bf16 on cuda needs head dim D a multiple of 8");
}

std::vector<Tensor> on(Device dev, DType dt, const std::vector<Tensor>& t) {
  std::vector<Tensor> r;
  for (auto& x : t) r.push_back(x.to(dt).to(dev));
  return r;
}

// Lengths and head dims at the edges of the kernels' tiles and padding (one key, a tile plus one,
// D = 1, D just past 32, D = 100 padded to 128), forward and every gradient.
TEST(Attention, CudaF32TileEdgesMatchCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  for (Shape s : {Shape{1, 1, 1, 4}, Shape{1, 1, 64, 16}, Shape{1, 1, 65, 33}, Shape{1, 1, 97, 1},
                  Shape{1, 1, 130, 100}}) {
    auto t = random_qkvg(s, DType::F32, 2.0, 23);
    auto d = on(Device::CUDA, DType::F32, t);
    auto ref = run_forward("attention", {t[0], t[1], t[2]});
    auto got = run_forward("attention", {d[0], d[1], d[2]});
    for (int j = 0; j < 2; ++j)
      EXPECT_LE(rel_err(got[j], to_doubles(ref[j])), 2e-5) << shape_str(s) << " output " << j;
    std::vector<bool> all{true, true, true};
    auto gref = run_backward("attention", {t[0], t[1], t[2]}, ref, {t[3], Tensor()}, all);
    auto ggot = run_backward("attention", {d[0], d[1], d[2]}, got, {d[3], Tensor()}, all);
    for (int i = 0; i < 3; ++i)
      EXPECT_LE(rel_err(ggot[i], to_doubles(gref[i])), 2e-5) << shape_str(s) << " gradient " << i;
  }
}

// D = 128 is not in the registry's parity cases (they stay small for the gradient check).
TEST(Attention, CudaF32HeadDim128MatchesCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  auto t = random_qkvg({2, 2, 150, 128}, DType::F32, 2.0, 17);
  auto d = on(Device::CUDA, DType::F32, t);
  auto ref = run_forward("attention", {t[0], t[1], t[2]});
  auto got = run_forward("attention", {d[0], d[1], d[2]});
  for (int j = 0; j < 2; ++j)
    EXPECT_LE(rel_err(got[j], to_doubles(ref[j])), 2e-5) << "output " << j;
  std::vector<bool> all{true, true, true};
  auto gref = run_backward("attention", {t[0], t[1], t[2]}, ref, {t[3], Tensor()}, all);
  auto ggot = run_backward("attention", {d[0], d[1], d[2]}, got, {d[3], Tensor()}, all);
  for (int i = 0; i < 3; ++i)
    EXPECT_LE(rel_err(ggot[i], to_doubles(gref[i])), 2e-5) << "gradient " << i;
}

// ---- bf16 on CUDA: FlashAttention's test rule ----
// Inputs and output gradient are bf16 values. Reference: the textbook computation in double on
// those values (naive_attention). Baseline: the same computation as PyTorch runs it in bf16 with
// FlashAttention's rounding points: f32 arithmetic, P rounded to bf16 before P V and P^T dO, dS
// rounded to bf16 before dS K and dS^T Q, results stored in bf16 (lse in f32). The CUDA kernels
// pass when their largest error against the reference is at most twice the baseline's, + 1e-5
// (where the baseline is exact, as dQ = dK = 0 at N = 1, the kernels' summation order need not
// be). The baseline is written here after FlashAttention's reference; it is not compared with
// PyTorch's own bf16 attention (not done: no PyTorch in the test suite).

float bf16_round(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// The baseline on bf16 tensors q, k, v, g (CPU).
Naive pytorch_like_bf16(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                        float s) {
  std::vector<float> Q = q.to_floats(), K = k.to_floats(), V = v.to_floats(), G = g.to_floats();
  int64_t BH = q.dim(0) * q.dim(1), N = q.dim(2), D = q.dim(3);
  Naive r;
  for (auto* x : {&r.out, &r.dq, &r.dk, &r.dv}) x->assign(size_t(BH * N * D), 0.0);
  r.lse.assign(size_t(BH * N), 0.0);
  std::vector<float> P(size_t(N * N)), dS(size_t(N * N)), O(size_t(N * D)), acc(size_t(N * D));
  for (int64_t bh = 0; bh < BH; ++bh) {
    const size_t h = size_t(bh * N * D);
    auto row = [&](const std::vector<float>& t, int64_t i) { return t.data() + h + size_t(i * D); };
    auto dot = [&](const float* a, const float* b) {
      float x = 0;
      for (int64_t d = 0; d < D; ++d) x += a[d] * b[d];
      return x;
    };
    for (int64_t i = 0; i < N; ++i) {  // forward: softmax in f32, P in bf16 for P V
      float* p = &P[size_t(i * N)];
      float mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < N; ++j) mx = std::max(mx, p[j] = s * dot(row(Q, i), row(K, j)));
      for (int64_t j = 0; j < N; ++j) sum += p[j] = std::exp(p[j] - mx);
      for (int64_t j = 0; j < N; ++j) p[j] /= sum;
      r.lse[size_t(bh * N + i)] = mx + std::log(sum);
      for (int64_t d = 0; d < D; ++d) {
        float o = 0;
        for (int64_t j = 0; j < N; ++j) o += bf16_round(p[j]) * row(V, j)[d];
        O[size_t(i * D + d)] = bf16_round(o);
        r.out[h + size_t(i * D + d)] = O[size_t(i * D + d)];
      }
    }
    for (int64_t i = 0; i < N; ++i) {  // dS = P (dP - D_i) from the bf16 output, rounded to bf16
      float di = dot(row(G, i), &O[size_t(i * D)]);
      for (int64_t j = 0; j < N; ++j)
        dS[size_t(i * N + j)] = bf16_round(P[size_t(i * N + j)] * (dot(row(G, i), row(V, j)) - di));
    }
    for (int64_t i = 0; i < N; ++i)  // dQ = s dS K
      for (int64_t d = 0; d < D; ++d) {
        float x = 0;
        for (int64_t j = 0; j < N; ++j) x += dS[size_t(i * N + j)] * row(K, j)[d];
        r.dq[h + size_t(i * D + d)] = bf16_round(s * x);
      }
    for (int64_t j = 0; j < N; ++j)  // dK = s dS^T Q, dV = P^T dO with P in bf16
      for (int64_t d = 0; d < D; ++d) {
        float xk = 0, xv = 0;
        for (int64_t i = 0; i < N; ++i) {
          xk += dS[size_t(i * N + j)] * row(Q, i)[d];
          xv += bf16_round(P[size_t(i * N + j)]) * row(G, i)[d];
        }
        r.dk[h + size_t(j * D + d)] = bf16_round(s * xk);
        r.dv[h + size_t(j * D + d)] = bf16_round(xv);
      }
  }
  return r;
}

// max |got - want|; +inf when got has a NaN (an element no kernel wrote, under poisoning).
double max_abs_error(const std::vector<double>& got, const std::vector<double>& want) {
  double m = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i])) return INFINITY;
    m = std::max(m, std::abs(got[i] - want[i]));
  }
  return m;
}

// New buffers hold NaN while alive (runtime/allocator.h), so unwritten elements fail.
struct PoisonedBuffers {
  PoisonedBuffers() { set_alloc_poison(true); }
  ~PoisonedBuffers() { set_alloc_poison(false); }
};

// Head dims 64 and 128 and the padded widths (8 and 32 -> 32, 48 -> 64), N = 1, N below, at and
// across the 64-row tiles, B and H > 1, the scale attribute; forward and every gradient. Each
// case prints its errors (kernel and baseline against the double reference).
TEST(Attention, CudaBf16WithinTwiceThePytorchBf16Error) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  PoisonedBuffers poison;
  for (Case c : {Case{{2, 4, 70, 64}, 0.0}, Case{{1, 2, 200, 128}, 0.0}, Case{{1, 1, 1, 64}, 0.0},
                 Case{{2, 1, 17, 128}, 0.5}, Case{{1, 3, 45, 48}, 0.0}, Case{{2, 2, 33, 32}, -0.3},
                 Case{{1, 1, 130, 8}, 0.0}}) {
    Attrs a{{"scale", c.scale}};
    float s = float(c.scale == 0 ? 1 / std::sqrt(double(c.shape[3])) : c.scale);
    auto t = random_qkvg(c.shape, DType::BF16, 2.0, 21);
    Naive ref = naive_attention(t[0], t[1], t[2], t[3], s);
    Naive base = pytorch_like_bf16(t[0], t[1], t[2], t[3], s);
    auto d = on(Device::CUDA, DType::BF16, t);
    cuda::KernelLog log;
    auto got = run_forward("attention", {d[0], d[1], d[2]}, a);
    const std::string fwd = log.take();
    std::vector<bool> all{true, true, true};
    auto grads = run_backward("attention", {d[0], d[1], d[2]}, got, {d[3], Tensor()}, all, a);
    const std::string bwd = log.take();
    ASSERT_EQ(got[0].dtype(), DType::BF16);
    ASSERT_EQ(got[1].dtype(), DType::F32);
    // The backward runs on tensor cores: the wmma kernels, not the f32 ones.
    EXPECT_NE(bwd.find("attn_bwd_dkdv_bf16"), std::string::npos) << bwd;
    EXPECT_NE(bwd.find("attn_bwd_dq_bf16"), std::string::npos) << bwd;
    struct Check {
      const char* what;
      const Tensor& got;
      const std::vector<double>&want, &baseline;
      const std::string& kernels;
    };
    std::string line = shape_str(c.shape) + " kernel (baseline) error:";
    for (const Check& k : {Check{"out", got[0], ref.out, base.out, fwd},
                           Check{"lse", got[1], ref.lse, base.lse, fwd},
                           Check{"dq", grads[0], ref.dq, base.dq, bwd},
                           Check{"dk", grads[1], ref.dk, base.dk, bwd},
                           Check{"dv", grads[2], ref.dv, base.dv, bwd}}) {
      double err = max_abs_error(to_doubles(k.got), k.want);
      double bound = max_abs_error(k.baseline, k.want);
      EXPECT_LE(err, 2 * bound + 1e-5)
          << shape_str(c.shape) << " " << k.what << ": error " << err << ", baseline's " << bound
          << " (" << k.kernels << ")";
      char buf[64];
      std::snprintf(buf, sizeof buf, " %s %.2e (%.2e)", k.what, err, bound);
      line += buf;
    }
    std::printf("%s\n", line.c_str());
  }
}

// dQ is its own pass (no atomics), so the bf16 backward gives the same bits on every run; and
// each gradient is the same whichever others are requested.
TEST(Attention, CudaBf16BackwardDeterministicAndSubsets) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  auto d = on(Device::CUDA, DType::BF16, random_qkvg({1, 2, 100, 64}, DType::F32, 2.0, 8));
  auto out = run_forward("attention", {d[0], d[1], d[2]});
  auto grads = [&](std::vector<bool> need) {
    return run_backward("attention", {d[0], d[1], d[2]}, out, {d[3], Tensor()}, need);
  };
  auto first = grads({true, true, true}), second = grads({true, true, true});
  const char* names[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(first[i].to_floats(), second[i].to_floats()) << names[i] << " differs between runs";
    std::vector<bool> one(3, false);
    one[size_t(i)] = true;
    auto only = grads(one);
    for (int j = 0; j < 3; ++j) EXPECT_EQ(only[j].defined(), i == j);
    EXPECT_EQ(only[i].to_floats(), first[i].to_floats()) << names[i] << " alone";
  }
}

}  // namespace
}  // namespace sd
