// CUDA backend of matmul and linear (math in kernels/cpu/linalg.cpp), native in f32 and bf16:
// every product is one cuBLASLt call (cuda::gemm: TF32 tensor cores for f32, bf16 operands read
// exactly, f32 accumulation, bf16 results rounded once); linear's bias rides in the GEMM's
// epilogue and its gradient is a small deterministic column sum (one read of g).
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/pack8.cuh"
#include "kernels/matmul_dims.h"

namespace sd {
namespace {

using namespace cuda;  // gemm, and pack8.cuh's f32/bf16 element access

void matmul_forward(OpCall& c) {
  const Tensor &a = c.in[0], &b = c.in[1];
  if (a.dtype() != b.dtype()) return sd::run_widened(c, matmul_forward);
  bool ta = c.attrs["trans_a"], tb = c.attrs["trans_b"];
  MatmulDims d = matmul_dims(a, b, ta, tb);
  gemm(d.batch, ta, tb, d.M, d.N, d.K, gemm_mat(a, a.dim(-1), d.M * d.K),
       gemm_mat(b, b.dim(-1), d.shared_b ? 0 : d.K * d.N), 0.f,
       gemm_mat(c.out[0], d.N, d.M * d.N));
}

// The same products as the CPU backward (kernels/cpu/linalg.cpp, matmul_backward); a, b and g
// share a dtype, and so do the gradients.
void matmul_backward(GradCall& c) {
  const Tensor &a = c.in[0], &b = c.in[1], &g = c.grad_out[0];
  SD_CHECK(g.defined(), "matmul: the backward needs the output's gradient");
  if (a.dtype() != b.dtype()) return sd::run_widened(c, matmul_backward);
  bool ta = c.attrs["trans_a"], tb = c.attrs["trans_b"];
  MatmulDims d = matmul_dims(a, b, ta, tb);
  int64_t M = d.M, N = d.N, K = d.K, lda = a.dim(-1), ldb = b.dim(-1);
  int64_t sb = d.shared_b ? 0 : K * N;
  if (c.grad_in[0].defined()) {
    const Tensor& da = c.grad_in[0];
    if (!ta)
      gemm(d.batch, false, !tb, M, K, N, gemm_mat(g, N, M * N), gemm_mat(b, ldb, sb), 0.f,
           gemm_mat(da, K, M * K));
    else
      gemm(d.batch, tb, true, K, M, N, gemm_mat(b, ldb, sb), gemm_mat(g, N, M * N), 0.f,
           gemm_mat(da, M, K * M));
  }
  if (c.grad_in[1].defined()) {
    const Tensor& db = c.grad_in[1];
    if (!d.shared_b) {
      if (!tb)
        gemm(d.batch, !ta, false, K, N, M, gemm_mat(a, lda, M * K), gemm_mat(g, N, M * N), 0.f,
             gemm_mat(db, N, K * N));
      else
        gemm(d.batch, true, ta, N, K, M, gemm_mat(g, N, M * N), gemm_mat(a, lda, M * K), 0.f,
             gemm_mat(db, K, N * K));
      return;
    }
    // Shared b: summed over the batch (one GEMM of inner length batch*M when a is untransposed),
    // in f32 (bf16 operands may write an f32 result) and rounded once.
    Accumulator sum(db);
    int64_t reps = ta ? d.batch : 1, inner = ta ? M : d.batch * M;
    for (int64_t i = 0; i < reps; ++i) {
      float beta = i ? 1.f : 0.f;
      if (!tb)
        gemm(1, !ta, false, K, N, inner, gemm_mat(a, lda, 0, i * M * K),
             gemm_mat(g, N, 0, i * M * N), beta, gemm_mat(sum.acc, N));
      else
        gemm(1, true, ta, N, K, inner, gemm_mat(g, N, 0, i * M * N),
             gemm_mat(a, lda, 0, i * M * K), beta, gemm_mat(sum.acc, K));
    }
    sum.finish();
  }
}

// db[j] = sum_r g[r, j]. A block owns 32 adjacent columns (coalesced row segments); its 8 thread
// rows stride over the rows and the 8 partials are added in shared memory in a fixed order.
template <class G, class DB>
__global__ void sum_rows_kernel(const G* g, int64_t rows, int64_t cols, DB* db) {
  __shared__ float part[8][33];
  int64_t j = int64_t(blockIdx.x) * 32 + threadIdx.x;
  float s = 0.f;
  if (j < cols)
    for (int64_t r = threadIdx.y; r < rows; r += 8) s += float(g[r * cols + j]);
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    float t = 0.f;
    for (int k = 0; k < 8; ++k) t += part[k][threadIdx.x];
    db[j] = from_f32<DB>(t);
  }
}

// y = x w^T + b. x and w share a dtype (else run_widened). cuBLASLt's bias has the output's dtype
// (its docs), so an f32 bias next to a bf16 y (the model's case) goes through an f32 result that
// is then rounded once: bias included, as the adapter does; a bf16 bias next to an f32 y is
// widened (exact).
void linear_forward(OpCall& c) {
  const Tensor &x = c.in[0], &w = c.in[1], &b = c.in[2], &y = c.out[0];
  if (x.dtype() != w.dtype()) return sd::run_widened(c, linear_forward);
  int64_t in = w.dim(1), out = w.dim(0), rows = x.numel() / in;
  const bool wide_bias = b.defined() && b.dtype() == DType::BF16 && y.dtype() == DType::F32;
  const bool via_f32 = b.defined() && b.dtype() == DType::F32 && y.dtype() == DType::BF16;
  Tensor bias = wide_bias ? b.to(DType::F32) : b;
  Tensor dst = via_f32 ? Tensor::empty(y.shape(), DType::F32, Device::CUDA) : y;
  gemm(1, false, true, rows, out, in, gemm_mat(x, in), gemm_mat(w, in), 0.f, gemm_mat(dst, out),
       bias.defined() ? bias.raw() : nullptr);
  if (via_f32) y.convert_from(dst);
}

void linear_backward(GradCall& c) {
  const Tensor &x = c.in[0], &w = c.in[1], &g = c.grad_out[0];
  SD_CHECK(g.defined(), "linear: the backward needs the output's gradient");
  if (x.dtype() != w.dtype()) return sd::run_widened(c, linear_backward);
  int64_t in = w.dim(1), out = w.dim(0), rows = x.numel() / in;
  if (c.grad_in[0].defined())
    gemm(1, false, false, rows, in, out, gemm_mat(g, out), gemm_mat(w, in), 0.f,
         gemm_mat(c.grad_in[0], in));
  if (c.grad_in[1].defined())
    gemm(1, true, false, out, in, rows, gemm_mat(g, out), gemm_mat(x, in), 0.f,
         gemm_mat(c.grad_in[1], in));
  if (const Tensor& db = c.grad_in[2]; db.defined())
    dispatch_f32_bf16("linear", g, [&](auto gt) {
      dispatch_f32_bf16("linear", db, [&](auto bt) {
        using G = decltype(gt);
        using DB = decltype(bt);
        SD_LAUNCH(sum_rows_kernel<G, DB>, unsigned((out + 31) / 32), dim3(32, 8), 0,
                  cuda::stream(), static_cast<const G*>(g.raw()), rows, out,
                  static_cast<DB*>(db.raw()));
      });
    });
}

}  // namespace

void register_linalg_cuda(Registry& r) {
  r.mutable_at("matmul").cuda = {matmul_forward, matmul_backward};
  r.mutable_at("linear").cuda = {linear_forward, linear_backward};
  // Native bf16 (kernels/registry.h): bf16 operands go to cuBLASLt as they are.
  for (const char* op : {"matmul", "linear"}) r.mutable_at(op).cuda.bf16 = true;
}

}  // namespace sd
