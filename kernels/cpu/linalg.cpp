// Matrix products: matmul (batched, optional transposes, or a 2-D b shared across a's batch) and
// linear (x W^T + b over all leading dimensions). Every product is a BLAS GEMM.
//   matmul: C = op(A) op(B)        dop(A) = G op(B)^T,   dop(B) = op(A)^T G
//           (a shared b sums dop(B) over the batch: one GEMM whose inner dimension is batch*M)
//   linear: y = x W^T + b          dx = g W,   dW = g^T x,   db = sum over rows of g
#include <cblas.h>
#include <omp.h>

#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/matmul_dims.h"

namespace sd {
namespace {

// OpenBLAS (the pthread build) threads each GEMM itself. Calling it from inside an OpenMP loop
// would put 2 BLAS threads under each of 2 OpenMP threads on 2 cores, so batch-parallel loops hold
// BLAS to one thread while they run and restore the setting afterwards.

// Below this many multiply-adds per product, independent products run one per OpenMP thread;
// above it cpu::gemm splits each product over the threads. Measured on the 2-core machine
// (best of 5): [512,256,64]x[512,64,256] forward 123 ms batch-parallel vs 150 ms with each
// product split, [512,256,256]x[512,256,64] backward 195 vs 257 ms.
constexpr double kBatchParallelMNK = 256.0 * 256 * 256;

// C_i = op(A_i) op(B_i) + beta C_i for i < batch; sa/sb/sc are element strides between items
// (0 shares an operand). A shared B with an untransposed A whose rows run on across items folds
// the batch into M: one larger GEMM.
template <class T>
void gemm_batched(int64_t batch, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A,
                  int64_t lda, int64_t sa, const T* B, int64_t ldb, int64_t sb, T beta, T* C,
                  int64_t ldc, int64_t sc) {
  if (batch > 1 && sb == 0 && !ta && sa == M * lda && sc == M * ldc) {
    M *= batch;
    batch = 1;
  }
  if (batch > 1 && double(M) * N * K < kBatchParallelMNK && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < batch; ++i)
      cpu::gemm(ta, tb, M, N, K, T(1), A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
    return;
  }
  for (int64_t i = 0; i < batch; ++i)
    cpu::gemm(ta, tb, M, N, K, T(1), A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
}

// ---- matmul ----


bool attr_flag(const Attrs& at, const char* name) { return at[name].get<bool>(); }

std::vector<OutMeta> infer_matmul(const std::vector<Tensor>& in, const Attrs& at) {
  for (const char* f : {"trans_a", "trans_b"})
    expect_attr("matmul", f, at[f].is_boolean(), "true or false", at[f]);
  expect_float("matmul", "a", in[0]);
  expect_float("matmul", "b", in[1]);
  expect_compatible_dtype("matmul", "b", in[1], in[0]);
  MatmulDims d = matmul_dims(in[0], in[1], attr_flag(at, "trans_a"), attr_flag(at, "trans_b"));
  Shape s = in[0].shape();
  s[s.size() - 2] = d.M;
  s[s.size() - 1] = d.N;
  return {{s, in[0].dtype()}};
}

template <class T>
void matmul_forward(const Tensor& a, const Tensor& b, const Tensor& y, bool ta, bool tb) {
  MatmulDims d = matmul_dims(a, b, ta, tb);
  gemm_batched<T>(d.batch, ta, tb, d.M, d.N, d.K, a.data<T>(), a.dim(-1), d.M * d.K, b.data<T>(),
                  b.dim(-1), d.shared_b ? 0 : d.K * d.N, T(0), y.data<T>(), d.N, d.M * d.N);
}

// Derivation: C = A B means C_ik = sum_j A_ij B_jk, so dA_ij = sum_k G_ik B_jk = (G B^T)_ij and
// dB_jk = sum_i A_ij G_ik = (A^T G)_jk. With op(A) = A^T the gradient of the stored A is the
// transpose of d op(A): dA = (G op(B)^T)^T = op(B) G^T; likewise for B. Two GEMMs, no new kernel.
template <class T>
void matmul_backward(GradCall& c, bool ta, bool tb) {
  const Tensor &a = c.in[0], &b = c.in[1];
  MatmulDims d = matmul_dims(a, b, ta, tb);
  const T *pa = a.data<T>(), *pb = b.data<T>(), *g = c.grad_out[0].data<T>();
  int64_t M = d.M, N = d.N, K = d.K, lda = a.dim(-1), ldb = b.dim(-1);
  int64_t sb = d.shared_b ? 0 : K * N;
  if (c.grad_in[0].defined()) {
    T* da = c.grad_in[0].data<T>();
    if (!ta)  // dA [M,K] = G op(B)^T
      gemm_batched<T>(d.batch, false, !tb, M, K, N, g, N, M * N, pb, ldb, sb, T(0), da, K, M * K);
    else  // dA [K,M] = op(B) G^T
      gemm_batched<T>(d.batch, tb, true, K, M, N, pb, ldb, sb, g, N, M * N, T(0), da, M, K * M);
  }
  if (c.grad_in[1].defined()) {
    T* db = c.grad_in[1].data<T>();
    if (!d.shared_b) {
      if (!tb)  // dB [K,N] = op(A)^T G
        gemm_batched<T>(d.batch, !ta, false, K, N, M, pa, lda, M * K, g, N, M * N, T(0), db, N,
                        K * N);
      else  // dB [N,K] = G^T op(A)
        gemm_batched<T>(d.batch, true, ta, N, K, M, g, N, M * N, pa, lda, M * K, T(0), db, K,
                        N * K);
      return;
    }
    // Shared b: the same products summed over the batch. Untransposed a has its rows contiguous
    // across items, so the sum is one GEMM with inner dimension batch*M; a transposed a is
    // accumulated item by item.
    int64_t reps = ta ? d.batch : 1, inner = ta ? M : d.batch * M;
    for (int64_t i = 0; i < reps; ++i) {
      const T *ai = pa + i * M * K, *gi = g + i * M * N;
      T beta = i ? T(1) : T(0);
      if (!tb) cpu::gemm(!ta, false, K, N, inner, T(1), ai, lda, gi, N, beta, db, N);
      else cpu::gemm(true, ta, N, K, inner, T(1), gi, N, ai, lda, beta, db, K);
    }
  }
}

// ---- linear ----

std::vector<OutMeta> infer_linear(const std::vector<Tensor>& in, const Attrs&) {
  const Tensor &x = in[0], &w = in[1], &b = in[2];
  expect_float("linear", "x", x);
  expect_float("linear", "w", w);
  expect_compatible_dtype("linear", "w", w, x);
  SD_CHECK(x.ndim() >= 1, "linear: 'x' expected at least 1 dimension, got ", x.desc());
  expect_ndim("linear", "w", w, 2);
  SD_CHECK(w.dim(1) == x.dim(-1), "linear: 'w' expected [out, ", x.dim(-1),
           "] to match the last dimension of x ", x.desc(), ", got ", w.desc());
  if (b.defined()) {
    expect_compatible_dtype("linear", "b", b, x);
    expect_shape("linear", "b", b, {w.dim(0)});
  }
  Shape s = x.shape();
  s.back() = w.dim(0);
  return {{s, x.dtype()}};
}

// sum[j] = sum_r g[r, j]: each thread sums a block of rows (contiguous, vectorised), then the
// per-thread partials are added in thread order so the result does not depend on timing.
template <class T>
void sum_rows(const T* g, int64_t rows, int64_t cols, T* sum) {
  int nt = rows * cols < (1 << 15) ? 1 : omp_get_max_threads();
  std::vector<T> part(size_t(nt) * cols, T(0));
#pragma omp parallel num_threads(nt)
  {
    T* p = part.data() + int64_t(omp_get_thread_num()) * cols;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) p[j] += g[r * cols + j];
  }
  for (int64_t j = 0; j < cols; ++j) {
    T s = 0;
    for (int t = 0; t < nt; ++t) s += part[t * cols + j];
    sum[j] = s;
  }
}

template <class T>
void linear_forward(OpCall& c) {
  const Tensor &x = c.in[0], &w = c.in[1], &b = c.in[2];
  int64_t in = w.dim(1), out = w.dim(0), rows = x.numel() / in;
  T* y = c.out[0].data<T>();
  if (b.defined()) {  // y starts as the bias; the GEMM adds x W^T (beta = 1)
    const T* pb = b.data<T>();
#pragma omp parallel for
    for (int64_t r = 0; r < rows; ++r) std::copy(pb, pb + out, y + r * out);
  }
  cpu::gemm(false, true, rows, out, in, T(1), x.data<T>(), in, w.data<T>(), in,
            b.defined() ? T(1) : T(0), y, out);
}

template <class T>
void linear_backward(GradCall& c) {
  const Tensor &x = c.in[0], &w = c.in[1];
  int64_t in = w.dim(1), out = w.dim(0), rows = x.numel() / in;
  const T* g = c.grad_out[0].data<T>();
  if (c.grad_in[0].defined())
    cpu::gemm(false, false, rows, in, out, T(1), g, out, w.data<T>(), in, T(0),
              c.grad_in[0].data<T>(), in);
  if (c.grad_in[1].defined())
    cpu::gemm(true, false, out, in, rows, T(1), g, out, x.data<T>(), in, T(0),
              c.grad_in[1].data<T>(), in);
  if (c.grad_in[2].defined()) sum_rows(g, rows, out, c.grad_in[2].data<T>());
}

double matmul_flops(const std::vector<Tensor>& in, const Attrs& at) {
  MatmulDims d = matmul_dims(in[0], in[1], attr_flag(at, "trans_a"), attr_flag(at, "trans_b"));
  return 2.0 * d.batch * d.M * d.N * d.K;
}

std::vector<TestCase> matmul_tests() {
  auto t = [](bool a, bool b) { return Attrs{{"trans_a", a}, {"trans_b", b}}; };
  return {{"2d", {{{5, 7}}, {{7, 3}}}},
          {"batched", {{{2, 5, 7}}, {{2, 7, 3}}}},
          {"4d", {{{2, 3, 5, 4}}, {{2, 3, 4, 6}}}},
          {"trans_a", {{{2, 7, 5}}, {{2, 7, 3}}}, t(true, false)},
          {"trans_b", {{{2, 5, 7}}, {{2, 3, 7}}}, t(false, true)},
          {"trans_ab", {{{3, 7, 5}}, {{3, 6, 7}}}, t(true, true)},
          {"shared_b", {{{3, 5, 7}}, {{7, 6}}}},
          {"shared_b trans_a", {{{2, 3, 7, 5}}, {{7, 6}}}, t(true, false)},
          {"shared_b trans_b", {{{3, 5, 7}}, {{6, 7}}}, t(false, true)},
          {"shared_b trans_ab", {{{3, 7, 5}}, {{6, 7}}}, t(true, true)}};
}

}  // namespace

void register_linalg_ops(Registry& r) {
  // TF32 on the GPU: each input is rounded to a 10-bit mantissa (relative error <= 2^-11), so
  // each product carries at most 2^-10 relative error and |err| <= 2^-10 * sum_k |a_k b_k|. For
  // the uniform [-1, 1] test inputs (inner lengths <= 30, backward included) sum |a b| stays
  // within ~3x the largest |output|, so 3e-3 bounds the max-abs / max-ref error. Emulating TF32
  // by truncation (the worst rounding) on these test cases gives at most 1.1e-3.
  const double tf32_tol = 3e-3;

  OpDef mm{.name = "matmul",
           .doc = "op(a) op(b), op = transpose when trans_a / trans_b; a [..., M, K], b [..., K, N] "
                  "with the same leading dimensions, or b 2-D and shared across a's batch. "
                  "PyTorch: torch.matmul with .mT where asked; no other broadcasting.",
           .inputs = {{"a", "[..., M, K] ([..., K, M] with trans_a)"},
                      {"b", "[..., K, N] ([..., N, K] with trans_b), or 2-D"}},
           .attrs = {{"trans_a", "use a^T ([..., K, M] stored)", false},
                     {"trans_b", "use b^T ([..., N, K] stored)", false}},
           .outputs = {{"y", "[..., M, N]"}}};
  mm.infer = infer_matmul;
  mm.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("matmul", c.in[0].dtype(), [&](auto t) {
      matmul_forward<decltype(t)>(c.in[0], c.in[1], c.out[0], attr_flag(c.attrs, "trans_a"),
                                  attr_flag(c.attrs, "trans_b"));
    });
  };
  mm.cpu.backward = [](GradCall& c) {
    cpu::dispatch_float("matmul", c.in[0].dtype(), [&](auto t) {
      matmul_backward<decltype(t)>(c, attr_flag(c.attrs, "trans_a"), attr_flag(c.attrs, "trans_b"));
    });
  };
  mm.tests = matmul_tests();
  mm.bench_cases = {{"attn-scores 512x[256,64]x[64,256]", {{{512, 256, 64}}, {{512, 64, 256}}}},
                    {"attn-values 512x[256,256]x[256,64]", {{{512, 256, 256}}, {{512, 256, 64}}}},
                    {"shared [32,256,1024]x[1024,1024]^T",
                     {{{32, 256, 1024}}, {{1024, 1024}}},
                     {{"trans_a", false}, {"trans_b", true}}}};
  mm.flops = matmul_flops;
  mm.parity_tol = tf32_tol;
  mm.saved = {"a", "b"};
  r.add(std::move(mm));

  OpDef lin{.name = "linear",
            .doc = "x W^T + b over the last axis: x [..., in], w [out, in], b [out] optional. "
                   "PyTorch: F.linear (the same weight layout).",
            .inputs = {{"x", "[..., in]"}, {"w", "weight [out, in]"}, {"b", "bias [out]", true, true}},
            .outputs = {{"y", "[..., out]"}}};
  lin.infer = infer_linear;
  lin.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("linear", c.in[0].dtype(), [&](auto t) { linear_forward<decltype(t)>(c); });
  };
  lin.cpu.backward = [](GradCall& c) {
    cpu::dispatch_float("linear", c.in[0].dtype(), [&](auto t) { linear_backward<decltype(t)>(c); });
  };
  lin.tests = {{"3d bias", {{{2, 3, 5}}, {{7, 5}}, {{7}}}},
               {"2d no bias", {{{4, 5}}, {{3, 5}}, {.absent = true}}},
               {"4d bias", {{{2, 3, 2, 6}}, {{5, 6}}, {{5}}}},
               {"1d", {{{9}}, {{4, 9}}, {{4}}}}};
  lin.bench_cases = {{"mlp [32*256,1024]x[4096,1024]", {{{8192, 1024}}, {{4096, 1024}}, {{4096}}}},
                     {"proj [32*256,4096]x[1024,4096]", {{{8192, 4096}}, {{1024, 4096}}, {{1024}}}}};
  lin.flops = [](const std::vector<Tensor>& in, const Attrs&) {
    return 2.0 * double(in[0].numel()) * double(in[1].dim(0));
  };
  lin.parity_tol = tf32_tol;
  lin.saved = {"x", "w"};
  r.add(std::move(lin));
}

}  // namespace sd
