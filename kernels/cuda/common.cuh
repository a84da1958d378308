// Shared pieces of the CUDA backend: error checking for every runtime call and launch, the one
// stream all kernels run on, the cuBLAS handle, and small launch helpers.
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/registry.h"

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

inline unsigned grid_for(int64_t n, int block) {
  int64_t g = (n + block - 1) / block;
  return unsigned(g < 1 ? 1 : (g > 1048576 ? 1048576 : g));  // kernels use grid-stride loops
}

}  // namespace sd::cuda

#define CUDA_CHECK(call)                                                        \
  do {                                                                          \
    cudaError_t e_ = (call);                                                    \
    if (e_ != cudaSuccess) ::sd::cuda::throw_cuda(e_, #call, __FILE__, __LINE__); \
  } while (0)

// After every <<<...>>>: catches bad launch configurations at once (execution errors surface at
// the next synchronising call, which is checked too).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                          \
  do {                                                                              \
    cublasStatus_t s_ = (call);                                                     \
    if (s_ != CUBLAS_STATUS_SUCCESS) ::sd::cuda::throw_cublas(s_, #call, __FILE__, __LINE__); \
  } while (0)

// Grid-stride loop over [0, n).
#define CUDA_LOOP(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)
