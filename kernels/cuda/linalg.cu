// CUDA backend of matmul and linear (math in kernels/cpu/linalg.cpp). Every product is one
// cublasGemmStridedBatchedEx call with TF32 tensor-core math and f32 accumulation; bias adds and
// bias gradients are small bandwidth-bound kernels (one read of g, one write).
#include "kernels/cuda/launch.cuh"
#include "kernels/matmul_dims.h"

namespace sd {
namespace {

void check_f32(const char* op, const Tensor& t) {
  SD_CHECK(t.dtype() == DType::F32, op, ": the cuda backend computes this op in f32, got ",
           t.desc());
}

using cuda::gemm;

void matmul_forward(OpCall& c) {
  const Tensor &a = c.in[0], &b = c.in[1];
  check_f32("matmul", a);
  bool ta = c.attrs["trans_a"], tb = c.attrs["trans_b"];
  MatmulDims d = matmul_dims(a, b, ta, tb);
  gemm(d.batch, ta, tb, d.M, d.N, d.K, a.data<float>(), a.dim(-1), d.M * d.K, b.data<float>(),
       b.dim(-1), d.shared_b ? 0 : d.K * d.N, 0.f, c.out[0].data<float>(), d.N, d.M * d.N);
}

// The same products as the CPU backward (kernels/cpu/linalg.cpp, matmul_backward).
void matmul_backward(GradCall& c) {
  const Tensor &a = c.in[0], &b = c.in[1];
  bool ta = c.attrs["trans_a"], tb = c.attrs["trans_b"];
  MatmulDims d = matmul_dims(a, b, ta, tb);
  const float *pa = a.data<float>(), *pb = b.data<float>(), *g = c.grad_out[0].data<float>();
  int64_t M = d.M, N = d.N, K = d.K, lda = a.dim(-1), ldb = b.dim(-1);
  int64_t sb = d.shared_b ? 0 : K * N;
  if (c.grad_in[0].defined()) {
    float* da = c.grad_in[0].data<float>();
    if (!ta) gemm(d.batch, false, !tb, M, K, N, g, N, M * N, pb, ldb, sb, 0.f, da, K, M * K);
    else gemm(d.batch, tb, true, K, M, N, pb, ldb, sb, g, N, M * N, 0.f, da, M, K * M);
  }
  if (c.grad_in[1].defined()) {
    float* db = c.grad_in[1].data<float>();
    if (!d.shared_b) {
      if (!tb) gemm(d.batch, !ta, false, K, N, M, pa, lda, M * K, g, N, M * N, 0.f, db, N, K * N);
      else gemm(d.batch, true, ta, N, K, M, g, N, M * N, pa, lda, M * K, 0.f, db, K, N * K);
      return;
    }
    // Shared b: summed over the batch (one GEMM of inner length batch*M when a is untransposed).
    int64_t reps = ta ? d.batch : 1, inner = ta ? M : d.batch * M;
    for (int64_t i = 0; i < reps; ++i) {
      const float *ai = pa + i * M * K, *gi = g + i * M * N;
      float beta = i ? 1.f : 0.f;
      if (!tb) gemm(1, !ta, false, K, N, inner, ai, lda, 0, gi, N, 0, beta, db, N, 0);
      else gemm(1, true, ta, N, K, inner, gi, N, 0, ai, lda, 0, beta, db, K, 0);
    }
  }
}

// y[r, j] += b[j]: one read-modify-write of y.
__global__ void add_bias_rows(float* y, const float* b, int64_t n, int64_t cols) {
  CUDA_LOOP(i, n) y[i] += b[i % cols];
}

// db[j] = sum_r g[r, j]. A block owns 32 adjacent columns (coalesced row segments); its 8 thread
// rows stride over the rows and the 8 partials are added in shared memory in a fixed order.
__global__ void sum_rows_kernel(const float* g, int64_t rows, int64_t cols, float* db) {
  __shared__ float part[8][33];
  int64_t j = int64_t(blockIdx.x) * 32 + threadIdx.x;
  float s = 0.f;
  if (j < cols)
    for (int64_t r = threadIdx.y; r < rows; r += 8) s += g[r * cols + j];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    float t = 0.f;
    for (int k = 0; k < 8; ++k) t += part[k][threadIdx.x];
    db[j] = t;
  }
}

void linear_forward(OpCall& c) {
  const Tensor &x = c.in[0], &w = c.in[1], &b = c.in[2];
  check_f32("linear", x);
  int64_t in = w.dim(1), out = w.dim(0), rows = x.numel() / in;
  float* y = c.out[0].data<float>();
  gemm(1, false, true, rows, out, in, x.data<float>(), in, 0, w.data<float>(), in, 0, 0.f, y, out,
       0);
  if (b.defined()) {
    int64_t n = rows * out;
    SD_LAUNCH(add_bias_rows, cuda::grid_for(n, 256), 256, 0, cuda::stream(), y, b.data<float>(), n,
              out);
  }
}

void linear_backward(GradCall& c) {
  const Tensor &x = c.in[0], &w = c.in[1];
  int64_t in = w.dim(1), out = w.dim(0), rows = x.numel() / in;
  const float* g = c.grad_out[0].data<float>();
  if (c.grad_in[0].defined())
    gemm(1, false, false, rows, in, out, g, out, 0, w.data<float>(), in, 0, 0.f,
         c.grad_in[0].data<float>(), in, 0);
  if (c.grad_in[1].defined())
    gemm(1, true, false, out, in, rows, g, out, 0, x.data<float>(), in, 0, 0.f,
         c.grad_in[1].data<float>(), in, 0);
  if (c.grad_in[2].defined()) {
    SD_LAUNCH(sum_rows_kernel, unsigned((out + 31) / 32), dim3(32, 8), 0, cuda::stream(), g, rows,
              out, c.grad_in[2].data<float>());
  }
}

}  // namespace

void register_linalg_cuda(Registry& r) {
  r.mutable_at("matmul").cuda = {matmul_forward, matmul_backward};
  r.mutable_at("linear").cuda = {linear_forward, linear_backward};
}

}  // namespace sd
