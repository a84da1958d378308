// Scaled dot-product self-attention, flash-attention style: q, k, v [B, H, N, D], scale s.
//   S = s Q K^T,  P = softmax_rows(S),  O = P V,  lse_i = log sum_j exp(S_ij)
// The N x N matrix is never kept: the forward runs an online softmax over key blocks (running
// row max m and sum l; when the max grows the partial O and l are rescaled by exp(m_old - m_new)),
// and the backward recomputes P tile by tile from q, k and the saved lse (FlashAttention-2):
//   D_i = rowsum(dO_i * O_i),  P_ij = exp(s q_i.k_j - lse_i),  dV = P^T dO,  dP = dO V^T,
//   dS = P * (dP - D_i),  dQ = s dS K,  dK = s dS^T Q.
// CPU: OpenMP over (head, query block) in the forward and over heads in the backward (dK, dV sum
// over all query rows of a head); every product is a single-threaded BLAS GEMM on a tile, and
// the softmax work between them is vectorised loops over contiguous score rows.
#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/vmath.h"

namespace sd {
namespace {

constexpr int64_t kRows = 64;   // query rows per task (forward) and per tile (backward)
constexpr int64_t kKeys = 256;  // keys per online-softmax step
constexpr double kParallelFlops = 1 << 22;  // below (~0.2 ms of work) threads cost more

// The scale attribute: 0 selects the usual 1/sqrt(D).
double attention_scale(const Attrs& a, int64_t D) {
  double s = a["scale"];
  return s == 0 ? 1.0 / std::sqrt(double(D)) : s;
}

std::vector<OutMeta> infer_attention(const std::vector<Tensor>& in, const Attrs& a) {
  const char* op = "attention";
  const char* names[] = {"q", "k", "v"};
  for (int i = 0; i < 3; ++i) {
    expect_defined(op, names[i], in[i]);
    expect_ndim(op, names[i], in[i], 4);
    expect_float(op, names[i], in[i]);
  }
  SD_CHECK(in[0].dim(2) > 0 && in[0].dim(3) > 0, op,
           ": 'q' expected [B, H, N, D] with N > 0 and D > 0, got ", in[0].desc());
  for (int i = 1; i < 3; ++i) {
    expect_same_dtype(op, names[i], in[i], in[0]);
    expect_shape(op, names[i], in[i], in[0].shape());  // self-attention: same N, same D
  }
  expect_attr(op, "scale", a["scale"].is_number() && std::isfinite(double(a["scale"])),
              "a finite number (0 selects 1/sqrt(D))", a["scale"]);
  const Shape& s = in[0].shape();
  return {{s, in[0].dtype()}, {{s[0], s[1], s[2]}, statistic_dtype(in[0].dtype())}};
}

// exp(x) for x <= 0 (scores minus their row max or lse). double: std::exp, exact enough for the
// gradient check. float: vmath.h's Cephes expf (within 1.02 ulp of exp over [-87, 0], checked
// exhaustively) behind a clamp without float compares, so the loops around it vectorise. x < -88 (and -inf) gives 0: the clamp
// compares bit patterns, where every negative float beyond -88 is a larger unsigned integer.
template <class T>
inline T exp_nonpos(T x) { return std::exp(x); }
template <>
inline float exp_nonpos(float x) {
  x = std::bit_cast<float>(std::min(std::bit_cast<uint32_t>(x), std::bit_cast<uint32_t>(-88.f)));
  return cpu::exp_clamped(x);
}


// One task = kRows query rows of one head. Per block of kKeys keys: S = s Q_blk K_blk^T (GEMM),
// the online-softmax update of each row (P = exp(S - m_new), acc *= exp(m_old - m_new)), then
// acc += P V_blk (GEMM). Traffic per task: its Q rows once, K and V once.
template <class T>
void forward_cpu(OpCall& c) {
  const Tensor& q = c.in[0];
  int64_t BH = q.dim(0) * q.dim(1), N = q.dim(2), D = q.dim(3);
  T s = T(attention_scale(c.attrs, D));
  const T* Q = q.data<T>();
  const T* K = c.in[1].data<T>();
  const T* V = c.in[2].data<T>();
  T* O = c.out[0].data<T>();
  T* L = c.out[1].data<T>();
  int64_t nqb = (N + kRows - 1) / kRows;
  bool parallel = BH * nqb > 1 && 4.0 * BH * N * N * D > kParallelFlops;
#pragma omp parallel if (parallel)
  {
    std::vector<T> S(size_t(kRows * kKeys)), acc(size_t(kRows * D));
    T m[kRows], l[kRows];
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < BH * nqb; ++t) {
      int64_t bh = t / nqb, i0 = (t % nqb) * kRows, rows = std::min(kRows, N - i0);
      const T* Qb = Q + (bh * N + i0) * D;
      const T* Kh = K + bh * N * D;
      const T* Vh = V + bh * N * D;
      std::fill(acc.begin(), acc.end(), T(0));
      std::fill(m, m + kRows, -std::numeric_limits<T>::infinity());
      std::fill(l, l + kRows, T(0));
      for (int64_t j0 = 0; j0 < N; j0 += kKeys) {
        int64_t cols = std::min(kKeys, N - j0);
        cpu::gemm<T>(false, true, rows, cols, D, s, Qb, D, Kh + j0 * D, D, T(0), S.data(), kKeys);
        for (int64_t r = 0; r < rows; ++r) {
          T* sr = S.data() + r * kKeys;
          T mx = sr[0];
#pragma omp simd reduction(max : mx)
          for (int64_t j = 1; j < cols; ++j) mx = std::max(mx, sr[j]);
          T mnew = std::max(m[r], mx);
          T alpha = std::exp(m[r] - mnew);  // 0 on the first block (m = -inf)
          T sum = 0;
#pragma omp simd reduction(+ : sum)
          for (int64_t j = 0; j < cols; ++j) {
            sr[j] = exp_nonpos(sr[j] - mnew);
            sum += sr[j];
          }
          l[r] = l[r] * alpha + sum;
          m[r] = mnew;
          T* a = acc.data() + r * D;
          for (int64_t d = 0; d < D; ++d) a[d] *= alpha;
        }
        cpu::gemm<T>(false, false, rows, D, cols, T(1), S.data(), kKeys, Vh + j0 * D, D, T(1),
                     acc.data(), D);
      }
      for (int64_t r = 0; r < rows; ++r) {
        T inv = T(1) / l[r];
        T* orow = O + (bh * N + i0 + r) * D;
        for (int64_t d = 0; d < D; ++d) orow[d] = acc[size_t(r * D + d)] * inv;
        L[bh * N + i0 + r] = m[r] + std::log(l[r]);
      }
    }
  }
}

// Derivation, per row i: O_i = sum_j P_ij V_j with P_i = softmax(S_i), S = s Q K^T. Then
//   dV_j = sum_i P_ij dO_i,  dP_ij = dO_i . V_j,  and the softmax Jacobian
//   dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik) where sum_k P_ik dP_ik = dO_i . sum_k P_ik V_k
//   = dO_i . O_i = D_i (one dot product per row, no N x N sum);  dQ = s dS K,  dK = s dS^T Q.
//   P_ij = exp(S_ij - lse_i) is recomputed from the saved log-sum-exp, so P is never stored.
// One task = one head (dK and dV sum over every query row). Per tile of kRows query rows the
// transient P and dS tiles are kRows x N (nothing N x N exists), and every product is a GEMM:
// S = s Q K^T, dP = dO V^T, dQ = s dS K, dV += P^T dO, dK += s dS^T Q.
template <class T>
void backward_cpu(GradCall& c) {
  const Tensor& q = c.in[0];
  int64_t BH = q.dim(0) * q.dim(1), N = q.dim(2), D = q.dim(3);
  Tensor* gq = c.grad_in[0].defined() ? &c.grad_in[0] : nullptr;
  Tensor* gk = c.grad_in[1].defined() ? &c.grad_in[1] : nullptr;
  Tensor* gv = c.grad_in[2].defined() ? &c.grad_in[2] : nullptr;
  if (!c.grad_out[0].defined()) {  // no gradient reaches the output: all input gradients are 0
    for (Tensor* g : {gq, gk, gv})
      if (g) g->zero_();
    return;
  }
  T s = T(attention_scale(c.attrs, D));
  const T* Q = q.data<T>();
  const T* K = c.in[1].data<T>();
  const T* V = c.in[2].data<T>();
  const T* O = c.out[0].data<T>();
  const T* L = c.out[1].data<T>();
  const T* G = c.grad_out[0].data<T>();
  bool parallel = BH > 1 && 10.0 * BH * N * N * D > kParallelFlops;
#pragma omp parallel if (parallel)
  {
    size_t nd = size_t(N * D), rn = size_t(kRows * N);
    std::vector<T> dk(nd), dv(nd), P(rn), dS(rn);
#pragma omp for schedule(dynamic)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const T *Kh = K + bh * N * D, *Vh = V + bh * N * D, *Lh = L + bh * N;
      std::fill(dk.begin(), dk.end(), T(0));
      std::fill(dv.begin(), dv.end(), T(0));
      for (int64_t i0 = 0; i0 < N; i0 += kRows) {
        int64_t rows = std::min(kRows, N - i0), at = (bh * N + i0) * D;
        const T *Qb = Q + at, *Gb = G + at, *Ob = O + at;
        cpu::gemm<T>(false, true, rows, N, D, s, Qb, D, Kh, D, T(0), P.data(), N);
        cpu::gemm<T>(false, true, rows, N, D, T(1), Gb, D, Vh, D, T(0), dS.data(), N);
        for (int64_t r = 0; r < rows; ++r) {
          T di = 0;  // D_i = dO_i . O_i
          for (int64_t d = 0; d < D; ++d) di += Gb[r * D + d] * Ob[r * D + d];
          T lse = Lh[i0 + r];
          T* pr = P.data() + r * N;
          T* dr = dS.data() + r * N;
          for (int64_t j = 0; j < N; ++j) {
            pr[j] = exp_nonpos(pr[j] - lse);
            dr[j] = pr[j] * (dr[j] - di);
          }
        }
        if (gq)
          cpu::gemm<T>(false, false, rows, D, N, s, dS.data(), N, Kh, D, T(0),
                       gq->data<T>() + at, D);
        if (gv) cpu::gemm<T>(true, false, N, D, rows, T(1), P.data(), N, Gb, D, T(1), dv.data(), D);
        if (gk) cpu::gemm<T>(true, false, N, D, rows, s, dS.data(), N, Qb, D, T(1), dk.data(), D);
      }
      if (gk) std::copy(dk.begin(), dk.end(), gk->data<T>() + bh * N * D);
      if (gv) std::copy(dv.begin(), dv.end(), gv->data<T>() + bh * N * D);
    }
  }
}

}  // namespace

void register_attention_ops(Registry& r) {
  OpDef att{
      .name = "attention",
      .doc = "softmax(s q k^T) v per (batch, head) for q, k, v [B, H, N, D]; also returns the "
             "row log-sum-exp of the scaled scores (saved for the backward, which recomputes the "
             "scores tile by tile instead of storing them). PyTorch: "
             "F.scaled_dot_product_attention(q, k, v, scale=s), no mask, no dropout.",
      .inputs = {{"q", "queries [B, H, N, D]"}, {"k", "keys [B, H, N, D]"},
                 {"v", "values [B, H, N, D]"}},
      .attrs = {{"scale", "score scale s; 0 selects 1/sqrt(D)", 0.0}},
      .outputs = {{"out", "attention output [B, H, N, D]"},
                  {"lse", "log-sum-exp of each score row [B, H, N] (f32 for bf16 inputs)", false}}};
  att.infer = infer_attention;
  att.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("attention", c.in[0].dtype(), [&](auto t) { forward_cpu<decltype(t)>(c); });
  };
  att.cpu.backward = [](GradCall& c) {
    cpu::dispatch_float("attention", c.in[0].dtype(),
                        [&](auto t) { backward_cpu<decltype(t)>(c); });
  };
  auto qkv = [](Shape s, double lo = -1, double hi = 1) {
    return std::vector<TestInput>{{s, false, lo, hi}, {s, false, lo, hi}, {s}};
  };
  // Odd N (tails of every tile): N = 70 crosses the CUDA query and key tiles (64, 32), N = 261
  // the CPU key block (256); D = 32 and 64 cover the templated CUDA kernels (smaller D pads to
  // 32); q, k in [-2, 2] give peaked rows.
  att.tests = {{"N5 D4", qkv({2, 1, 5, 4}, -2, 2)},
               {"N17 D8 scale", qkv({1, 3, 17, 8}, -2, 2), {{"scale", 0.7}}},
               {"N33 D4", qkv({2, 2, 33, 4})},
               {"N70 D8", qkv({1, 2, 70, 8}, -2, 2)},
               {"N261 D4", qkv({1, 1, 261, 4}, -2, 2)},
               {"N19 D32", qkv({2, 1, 19, 32})},
               {"N19 D64 scale", qkv({1, 2, 19, 64}), {{"scale", -0.3}}},
               {"N70 D32", qkv({1, 1, 70, 32})}};
  att.bench_cases = {{"B32 H16 N256 D64", qkv({32, 16, 256, 64})},
                     {"B8 H16 N1024 D128", qkv({8, 16, 1024, 128})}};
  att.flops = [](const std::vector<Tensor>& in, const Attrs&) {
    const Shape& s = in[0].shape();
    return 4.0 * double(s[0] * s[1]) * double(s[2]) * double(s[2]) * double(s[3]);
  };
  att.backward_flops_ratio = 2.5;  // FlashAttention convention: 5 N x N x D products vs 2
  // f32 CUDA vs CPU: exp within 1-2 ulp on both sides, but scores, softmax denominators and
  // dQ/dK/dV are summed in different orders (BLAS blocks vs tiles and shuffles). Each output is a
  // convex combination or a sum of at most N = 261 O(1) terms: rounding grows like
  // sqrt(N) 2^-24 ~ 1e-6 (N 2^-24 ~ 1.6e-5 in the worst case), so 2e-5 passes honest
  // reorderings while a wrong mask, a missing rescale or a lost tile is off by far more.
  att.parity_tol = 2e-5;
  r.add(std::move(att));
}

}  // namespace sd
