// Every CPU matrix product goes through cpu::gemm. OpenBLAS runs single-threaded: Debian's pthread
// build keeps its own worker pool that spins in sched_yield between calls, and beside OpenMP's
// threads on 2 cores that spinning cost ~15% of the demo's training step (perf). Parallelism is
// OpenMP's alone: a large GEMM called outside a parallel region is split into one block of C per
// thread; inside a parallel region (one image or head per thread) it runs as it is.
#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "kernels/cpu/common.h"

namespace sd::cpu {
namespace {

// Below this many flops a GEMM stays on one thread: waking the team costs more than it saves.
constexpr double kSplitFlops = 2e6;

const bool kBlasSerial = [] {
#ifdef SIMDIFF_OPENBLAS  // other CBLAS builds (netlib's reference BLAS) are serial already
  openblas_set_num_threads(1);
#endif
  return true;
}();

void blas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              int(M), int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

void blas(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              int(M), int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

}  // namespace

// C is cut along its longer side into nt blocks (multiples of 16 rows/columns, so each block keeps
// whole micro-kernel tiles): rows m0.. of C use rows m0.. of op(A); columns n0.. use columns n0..
// of op(B). Each thread writes a disjoint block, so the result does not depend on the split.
template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  (void)kBlasSerial;
  int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  bool by_rows = M >= N;
  int64_t len = by_rows ? M : N;
  if (nt <= 1 || 2.0 * M * N * K < kSplitFlops || len < 32) {
    blas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  int64_t chunk = ((len + nt - 1) / nt + 15) / 16 * 16;
#pragma omp parallel for num_threads(nt) schedule(static, 1)
  for (int64_t s = 0; s < len; s += chunk) {
    int64_t n = std::min(chunk, len - s);
    if (by_rows)
      blas(ta, tb, n, N, K, alpha, ta ? A + s : A + s * lda, lda, B, ldb, beta, C + s * ldc, ldc);
    else
      blas(ta, tb, M, n, K, alpha, A, lda, tb ? B + s * ldb : B + s, ldb, beta, C + s, ldc);
  }
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);

}  // namespace sd::cpu
