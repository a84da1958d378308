// Shared pieces of the CUDA backend: error checking for every runtime call, the one stream all
// kernels run on, the cuBLAS handle, and grid sizing (launches go through kernels/cuda/launch.cuh).
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/registry.h"
#include "runtime/cuda_limits.h"

namespace sd::cuda {

[[noreturn]] void throw_cuda(cudaError_t e, const char* what, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t s, const char* what, const char* file, int line);

cudaStream_t stream();        // the stream every kernel and copy is ordered on

// One matrix of a GEMM, row-major: at `p`, in `dt` (F32 or BF16), leading dimension `ld`,
// `stride` elements between the matrices of a batch (0: one matrix shared by the batch).
struct GemmMat {
  const void* p;
  DType dt;
  int64_t ld, stride;
};

// t's data from element `offset` on, as a GEMM matrix.
inline GemmMat gemm_mat(const Tensor& t, int64_t ld, int64_t stride = 0, int64_t offset = 0) {
  return {static_cast<const char*>(t.raw()) + offset * int64_t(dtype_size(t.dtype())), t.dtype(),
          ld, stride};
}

// Row-major C_i = op(A_i) op(B_i) + beta C_i (+ bias[j] in every row) for i < batch: one
// cublasLtMatmul, f32 accumulation (kernels/cuda/blas.cu). A and B share a dtype: f32 operands
// run on TF32 tensor cores into an f32 C; bf16 ones are read exactly into a bf16 C (rounded once,
// bias included) or an f32 C. `bias` (N values in C's dtype, cuBLASLt's rule) needs batch 1.
void gemm(int64_t batch, bool ta, bool tb, int64_t M, int64_t N, int64_t K, GemmMat A, GemmMat B,
          float beta, GemmMat C, const void* bias = nullptr);


// A grid dimension of `want` blocks for a grid-stride or split kernel: at least 1, at most the
// kernel's `cap` and, when a test sets one, cuda_limits().max_grid.
inline unsigned capped_grid(int64_t want, int64_t cap) {
  int64_t test_cap = cuda_limits().max_grid;
  if (test_cap > 0 && test_cap < cap) cap = test_cap;
  return unsigned(want < 1 ? 1 : (want > cap ? cap : want));
}

// Blocks of `block` threads for a grid-stride loop over n items, one item per thread.
inline unsigned grid_for(int64_t n, int block) {
  return capped_grid((n + block - 1) / block, 1048576);
}

}  // namespace sd::cuda

#define CUDA_CHECK(call)                                                        \
  do {                                                                          \
    cudaError_t e_ = (call);                                                    \
    if (e_ != cudaSuccess) ::sd::cuda::throw_cuda(e_, #call, __FILE__, __LINE__); \
  } while (0)

#define CUBLAS_CHECK(call)                                                          \
  do {                                                                              \
    cublasStatus_t s_ = (call);                                                     \
    if (s_ != CUBLAS_STATUS_SUCCESS) ::sd::cuda::throw_cublas(s_, #call, __FILE__, __LINE__); \
  } while (0)

// Grid-stride loop over [0, n).
#define CUDA_LOOP(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)
