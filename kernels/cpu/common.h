// Shared pieces of the CPU backend: dtype dispatch (float for speed, double for the gradient
// check), OpenMP loops, and the BLAS GEMM every matrix product goes through.
#pragma once
#include <cstdint>

#include "kernels/registry.h"

namespace sd::cpu {

// Calls f(T{}) with T = float or double according to the tensor dtype.
template <class F>
void dispatch_float(const std::string& op, DType dt, F&& f) {
  if (dt == DType::F32) f(float{});
  else if (dt == DType::F64) f(double{});
  else fail(op, ": the cpu backend computes in f32 or f64, got ", dtype_name(dt));
}

// Row-major C[M,N] = alpha * op(A) op(B) + beta * C, op = transpose when the flag is set.
// lda/ldb/ldc are row strides of A, B, C as stored. Called outside an OpenMP parallel region, a
// large product is split over the threads; inside one, it runs on the calling thread.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace sd::cpu
