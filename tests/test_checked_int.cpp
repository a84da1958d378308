// The int64 -> int narrowing in front of cuBLAS (kernels/cuda/checked_int.h): values that fit pass
// through unchanged, the rest are refused with the call, the argument's name and its value. The
// CUDA build also checks that cuda::gemm narrows before it touches the device, so the refusal
// needs no GPU.
#include <gtest/gtest.h>

#include <climits>

#include "kernels/cuda/checked_int.h"
#include "tests/error_of.h"
#ifdef SIMDIFF_WITH_CUDA
#include "kernels/cuda/common.cuh"
#endif

using sd::cuda::checked_int;

TEST(CheckedInt, PassesValuesThatFit) {
  EXPECT_EQ(checked_int("gemm", "M", 0), 0);
  EXPECT_EQ(checked_int("gemm", "M", 12345), 12345);
  EXPECT_EQ(checked_int("gemm", "M", INT_MAX), INT_MAX);
}

TEST(CheckedInt, RefusesValuesThatDoNotFitWithTheirName) {
  expect_error_containing([] { checked_int("cuda gemm", "lda", int64_t(INT_MAX) + 1); },
                          "cuda gemm: lda = 2147483648 does not fit");
  expect_error_containing([] { checked_int("cuda gemm", "batch", int64_t(1) << 40); },
                          "batch = 1099511627776");
  expect_error_containing([] { checked_int("cuda gemm", "K", -1); }, "K = -1");
}

#ifdef SIMDIFF_WITH_CUDA
// One size at a time is oversized; the pointers are never dereferenced: the check comes first.
TEST(CheckedInt, CudaGemmRefusesOversizedSizesBeforeTouchingTheDevice) {
  const int64_t big = int64_t(3) << 30;  // 3221225472: would wrap to a negative int
  auto gemm = [](int64_t batch, int64_t M, int64_t K, int64_t ldb) {
    using sd::DType;
    sd::cuda::gemm(batch, false, false, M, 8, K, {nullptr, DType::F32, K, 0},
                   {nullptr, DType::F32, ldb, 0}, 0.f, {nullptr, DType::F32, 8, 0});
  };
  expect_error_containing([&] { gemm(1, big, 8, 8); }, "cuda gemm: M = 3221225472");
  expect_error_containing([&] { gemm(1, 8, big, 8); }, "cuda gemm: K = 3221225472");
  expect_error_containing([&] { gemm(1, 8, 8, big); }, "cuda gemm: ldb = 3221225472");
  expect_error_containing([&] { gemm(big, 8, 8, 8); }, "cuda gemm: batch = 3221225472");
}
#endif
