#include "kernels/cuda/common.cuh"

namespace sd::cuda {

// Row-major C_i = op(A_i) op(B_i) + beta C_i, i < batch, element strides sa/sb/sc (0 shares an
// operand). cuBLAS is column-major and a row-major [R, C] matrix is its column-major transpose,
// so we ask for C^T = op(B)^T op(A)^T: the operands swap places and M and N swap.
void gemm(int64_t batch, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A,
          int64_t lda, int64_t sa, const float* B, int64_t ldb, int64_t sb, float beta, float* C,
          int64_t ldc, int64_t sc) {
  const float alpha = 1.f;
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cuda::cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(N),
      int(M), int(K), &alpha, B, CUDA_R_32F, int(ldb), sb, A, CUDA_R_32F, int(lda), sa, &beta, C,
      CUDA_R_32F, int(ldc), sc, int(batch), CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
}

}  // namespace sd::cuda
