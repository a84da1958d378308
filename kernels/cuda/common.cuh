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
cublasHandle_t cublas();      // bound to stream(), workspace set, TF32 allowed for f32

// Row-major C_i = op(A_i) op(B_i) + beta C_i for i < batch, element strides sa/sb/sc between
// batch items (0 shares an operand); TF32 tensor cores, f32 accumulation (kernels/cuda/blas.cu).
void gemm(int64_t batch, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A,
          int64_t lda, int64_t sa, const float* B, int64_t ldb, int64_t sb, float beta, float* C,
          int64_t ldc, int64_t sc);

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
