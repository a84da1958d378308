#include "kernels/cuda/checked_int.h"
#include "kernels/cuda/common.cuh"

namespace sd::cuda {

// Row-major C_i = op(A_i) op(B_i) + beta C_i, i < batch, element strides sa/sb/sc (0 shares an
// operand). cuBLAS is column-major and a row-major [R, C] matrix is its column-major transpose,
// so we ask for C^T = op(B)^T op(A)^T: the operands swap places and M and N swap. The sizes are
// narrowed (and checked) before the handle is touched, so an oversized call fails cleanly even
// without a device.
void gemm(int64_t batch, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A,
          int64_t lda, int64_t sa, const float* B, int64_t ldb, int64_t sb, float beta, float* C,
          int64_t ldc, int64_t sc) {
  const char* what = "cuda gemm";
  const int m = checked_int(what, "M", M), n = checked_int(what, "N", N),
            k = checked_int(what, "K", K), la = checked_int(what, "lda", lda),
            lb = checked_int(what, "ldb", ldb), lc = checked_int(what, "ldc", ldc),
            nb = checked_int(what, "batch", batch);
  const float alpha = 1.f;
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cuda::cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k,
      &alpha, B, CUDA_R_32F, lb, sb, A, CUDA_R_32F, la, sa, &beta, C, CUDA_R_32F, lc, sc, nb,
      CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
}

}  // namespace sd::cuda
