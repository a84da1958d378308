// The emulated CUDA backend's checks (built only with SIMDIFF_CUDA=EMULATE): small kernels that
// break one of CUDA's rules each, and the report that must come back naming the kernel and, where
// the emulator can tell, the source line. The six planted-bug kinds of the emulator's README come
// first; then launch limits, copies, shuffle and vote semantics, bf16 rounding and the knobs.
#include <gmock/gmock.h>
#include <cublasLt.h>
#include <gtest/gtest.h>
#include <mma.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/cuda/launch.cuh"
#include "kernels/op_inputs.h"
#include "tests/error_of.h"

namespace sd {
namespace {

using ::testing::HasSubstr;

Tensor device_floats(int64_t n) { return Tensor::empty({n}, DType::F32, Device::CUDA); }

Tensor device_iota(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0.f);
  return Tensor::from_floats(v, {n}).to(Device::CUDA);
}

std::string at_line(int line) { return "tests/test_emu_checks.cpp:" + std::to_string(line); }

// The reports name threads: run them in order (whatever SIMDIFF_EMU_RANDOM_ORDER says).
class EmuChecks : public ::testing::Test {
 protected:
  void SetUp() override { sd_emu::options().random_order = false; }
  void TearDown() override { sd_emu::options() = saved_; }
  sd_emu::Options saved_ = sd_emu::options();
};

// ---- 1. out-of-bounds write: AddressSanitizer stops the program, naming the kernel ----

__global__ void oob_write_kernel(float* y, int n) {
  int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i <= n) y[i] = 1.f;  // should be i < n
}

TEST_F(EmuChecks, OutOfBoundsWriteNamesTheKernel) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Tensor y = device_floats(100);
        SD_LAUNCH(oob_write_kernel, 1, 128, 0, cuda::stream(), y.data<float>(), 100);
      },
      "heap-buffer-overflow.*WRITE of size 4.*oob_write_kernel.*test_emu_checks.cpp");
}

// A float4 access must be 16-byte aligned: UBSan's alignment check stops the program there.
constexpr int kMisalignedLoad = __LINE__ + 2;
__global__ void misaligned_float4_kernel(const float* x, float* y) {
  float4 v = reinterpret_cast<const float4*>(x + 1)[threadIdx.x];  // x + 1 is 4 bytes off
  y[threadIdx.x] = v.x + v.y + v.z + v.w;
}

TEST_F(EmuChecks, MisalignedVectorAccessNamesTheLine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Tensor x = device_floats(64);
        Tensor y = device_floats(8);
        SD_LAUNCH(misaligned_float4_kernel, 1, 8, 0, cuda::stream(), x.data<float>(),
                  y.data<float>());
      },
      at_line(kMisalignedLoad) + ".*misaligned address.*float4.*16 byte alignment");
}

// ---- 2. a shared-memory read without the __syncthreads after the writes ----

constexpr int kMissingBarrierRead = __LINE__ + 5;
__global__ void missing_barrier_kernel(const float* x, float* y) {
  __shared__ float tile[64];
  tile[threadIdx.x] = x[threadIdx.x];
  // __syncthreads() belongs here
  y[threadIdx.x] = tile[63 - threadIdx.x];
}

TEST_F(EmuChecks, MissingBarrierBeforeSharedReadNamesKernelAndLine) {
  Tensor x = device_iota(64), y = device_floats(64);
  std::string msg = error_of([&] {
    SD_LAUNCH(missing_barrier_kernel, 1, 64, 0, cuda::stream(), x.data<float>(), y.data<float>());
  });
  EXPECT_THAT(msg, HasSubstr("kernel missing_barrier_kernel: shared memory read before any write"));
  EXPECT_THAT(msg, HasSubstr("reads 4 bytes of shared `tile`"));
  EXPECT_THAT(msg, HasSubstr("at " + at_line(kMissingBarrierRead) + " (in missing_barrier_kernel)"));
}

// The same mistake the other way round: the writer ran first, so it is a read-after-write race.
constexpr int kRawRead = __LINE__ + 4;
__global__ void read_after_write_kernel(const float* x, float* y) {
  __shared__ float tile[64];
  tile[threadIdx.x] = x[threadIdx.x];
  y[threadIdx.x] = threadIdx.x ? tile[threadIdx.x - 1] : 0.f;
}

TEST_F(EmuChecks, ReadAfterWriteWithoutBarrierIsARace) {
  Tensor x = device_iota(64), y = device_floats(64);
  std::string msg = error_of([&] {
    SD_LAUNCH(read_after_write_kernel, 1, 64, 0, cuda::stream(), x.data<float>(), y.data<float>());
  });
  EXPECT_THAT(msg, HasSubstr("kernel read_after_write_kernel: shared-memory race: thread (1,0,0) "
                             "of block (0,0,0) reads 4 bytes of shared `tile` (byte 0) at " +
                             at_line(kRawRead)));
  EXPECT_THAT(msg, HasSubstr("which thread (0,0,0) of block (0,0,0) wrote at " +
                             at_line(kRawRead - 1)));
  EXPECT_THAT(msg, HasSubstr("since the block started (no __syncthreads yet)"));
}

// An in-place update of a tile that other threads still read: write after read.
constexpr int kWarBarrier = __LINE__ + 4;
__global__ void write_after_read_kernel(const float* x, float* y) {
  __shared__ float tile[32];
  tile[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  float v = tile[(threadIdx.x + 1) % 32];
  // a __syncthreads() belongs here: thread t overwrites what thread t - 1 reads
  tile[threadIdx.x] = 2.f * v;
  __syncthreads();
  y[threadIdx.x] = tile[threadIdx.x];
}

TEST_F(EmuChecks, OverwriteBeforeOthersReadIsARace) {
  Tensor x = device_iota(32), y = device_floats(32);
  std::string msg = error_of([&] {
    SD_LAUNCH(write_after_read_kernel, 1, 32, 0, cuda::stream(), x.data<float>(), y.data<float>());
  });
  EXPECT_THAT(msg, HasSubstr("kernel write_after_read_kernel: shared-memory race: thread (1,0,0) "
                             "of block (0,0,0) writes 4 bytes of shared `tile` (byte 4) at " +
                             at_line(kWarBarrier + 3)));
  EXPECT_THAT(msg, HasSubstr("which thread (0,0,0) of block (0,0,0) read since the last "
                             "__syncthreads (" + at_line(kWarBarrier) + ")"));
}

// The correct version of the same kernels passes, atomics on shared memory included.
__global__ void barrier_ok_kernel(const float* x, float* y) {
  __shared__ float tile[64];
  __shared__ float total;
  if (threadIdx.x == 0) total = 0.f;
  tile[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  atomicAdd(&total, tile[63 - threadIdx.x]);
  __syncthreads();
  y[threadIdx.x] = total;
}

TEST_F(EmuChecks, CorrectSharedMemoryUseAndAtomicsPass) {
  Tensor x = device_iota(64), y = device_floats(64);
  SD_LAUNCH(barrier_ok_kernel, 1, 64, 0, cuda::stream(), x.data<float>(), y.data<float>());
  for (float v : y.to_floats()) EXPECT_EQ(v, 63.f * 64.f / 2.f);
}

// A plain read of what atomics update, before the barrier that would order them.
__global__ void atomic_then_read_kernel(float* y) {
  __shared__ float total;
  if (threadIdx.x == 0) total = 0.f;
  __syncthreads();
  atomicAdd(&total, 1.f);
  y[threadIdx.x] = total;  // needs a __syncthreads() first
}

TEST_F(EmuChecks, PlainReadOfAtomicallyUpdatedSharedIsARace) {
  Tensor y = device_floats(64);
  std::string msg = error_of(
      [&] { SD_LAUNCH(atomic_then_read_kernel, 1, 64, 0, cuda::stream(), y.data<float>()); });
  EXPECT_THAT(msg, HasSubstr("kernel atomic_then_read_kernel: shared-memory race"));
  EXPECT_THAT(msg, HasSubstr("which atomics updated since the last __syncthreads"));
}

// ---- 3. divergent barriers ----

constexpr int kFirstBarrier = __LINE__ + 3;
__global__ void divergent_barrier_kernel(float* y) {
  if (threadIdx.x < 16)
    __syncthreads();
  else
    __syncthreads();
  y[threadIdx.x] = 1.f;
}

TEST_F(EmuChecks, DivergentBarrierNamesBothSites) {
  Tensor y = device_floats(64);
  std::string msg = error_of(
      [&] { SD_LAUNCH(divergent_barrier_kernel, 1, 64, 0, cuda::stream(), y.data<float>()); });
  EXPECT_THAT(msg, HasSubstr("kernel divergent_barrier_kernel: divergent __syncthreads (threads "
                             "at different barriers) in block (0,0,0)"));
  EXPECT_THAT(msg, HasSubstr("threads 0-15 wait at __syncthreads (" + at_line(kFirstBarrier) + ")"));
  EXPECT_THAT(msg, HasSubstr("threads 16-63 wait at __syncthreads (" + at_line(kFirstBarrier + 2) +
                             ")"));
}

__global__ void early_exit_kernel(float* y, int n) {
  if (int(threadIdx.x) >= n) return;  // the others then wait at a barrier these never reach
  __syncthreads();
  y[threadIdx.x] = 1.f;
}

TEST_F(EmuChecks, ThreadsExitingBeforeABarrierAreDivergent) {
  Tensor y = device_floats(64);
  std::string msg = error_of(
      [&] { SD_LAUNCH(early_exit_kernel, 1, 64, 0, cuda::stream(), y.data<float>(), 40); });
  EXPECT_THAT(msg, HasSubstr("kernel early_exit_kernel: divergent __syncthreads (some threads "
                             "exited, others wait)"));
  EXPECT_THAT(msg, HasSubstr("threads 40-63 exited"));
}

// A shuffle waiting for lanes that wait at a barrier: nothing can move.
__global__ void deadlock_kernel(float* y) {
  float v = 1.f;
  if (threadIdx.x < 16) v = __shfl_xor_sync(0xffffffffu, v, 16);
  else __syncthreads();
  y[threadIdx.x] = v;
}

TEST_F(EmuChecks, ShuffleWaitingForLanesAtABarrierIsADeadlock) {
  Tensor y = device_floats(32);
  std::string msg =
      error_of([&] { SD_LAUNCH(deadlock_kernel, 1, 32, 0, cuda::stream(), y.data<float>()); });
  EXPECT_THAT(msg, HasSubstr("kernel deadlock_kernel: deadlock in block (0,0,0)"));
  EXPECT_THAT(msg, HasSubstr("threads 0-15 wait at __shfl_xor_sync"));
  EXPECT_THAT(msg, HasSubstr("threads 16-31 wait at __syncthreads"));
}

// ---- 4. shuffles with a wrong mask ----

constexpr int kHalfMaskShuffle = __LINE__ + 3;
__global__ void half_mask_kernel(float* y) {
  float v = float(threadIdx.x);
  v += __shfl_xor_sync(0x0000ffffu, v, 1);  // lanes 16-31 call it too
  y[threadIdx.x] = v;
}

TEST_F(EmuChecks, ShuffleMaskWithoutTheCallerNamesKernelAndLine) {
  Tensor y = device_floats(32);
  std::string msg =
      error_of([&] { SD_LAUNCH(half_mask_kernel, 1, 32, 0, cuda::stream(), y.data<float>()); });
  EXPECT_THAT(msg, HasSubstr("kernel half_mask_kernel: __shfl_xor_sync at " +
                             at_line(kHalfMaskShuffle)));
  EXPECT_THAT(msg, HasSubstr("mask 0x0000ffff): the calling lane 16 is not in the mask"));
}

__global__ void source_outside_mask_kernel(float* y) {
  float v = float(threadIdx.x);
  if (threadIdx.x < 16) v = __shfl_xor_sync(0x0000ffffu, v, 16);  // reads lanes 16-31
  y[threadIdx.x] = v;
}

TEST_F(EmuChecks, ShuffleReadingALaneOutsideTheMask) {
  Tensor y = device_floats(32);
  std::string msg = error_of(
      [&] { SD_LAUNCH(source_outside_mask_kernel, 1, 32, 0, cuda::stream(), y.data<float>()); });
  EXPECT_THAT(msg, HasSubstr("kernel source_outside_mask_kernel: __shfl_xor_sync"));
  EXPECT_THAT(msg, HasSubstr("reads lane 16, which is not in the mask"));
}

__global__ void partial_warp_kernel(float* y) {
  float v = __shfl_down_sync(0xffffffffu, float(threadIdx.x), 1);
  y[threadIdx.x] = v;
}

TEST_F(EmuChecks, FullMaskShuffleInAPartialWarp) {
  Tensor y = device_floats(48);
  std::string msg =
      error_of([&] { SD_LAUNCH(partial_warp_kernel, 1, 48, 0, cuda::stream(), y.data<float>()); });
  EXPECT_THAT(msg, HasSubstr("kernel partial_warp_kernel: __shfl_down_sync"));
  EXPECT_THAT(msg, HasSubstr("the mask names lanes that do not exist: warp 1 has 16 threads"));
}

// ---- 5. a kernel relying on a wmma fragment layout ----

namespace wmma = nvcuda::wmma;
using bf16 = __nv_bfloat16;

// C = A B for 16 x 16 bf16 tiles. With `assume_layout` the result is written from the fragment
// directly, as if element i of lane l were row l / 4 + 8 ((i / 2) % 2), column 2 (l % 4) + i % 2
// + 8 (i / 4): the layout sm_80 and sm_90 happen to use, which CUDA does not promise; otherwise
// with store_matrix_sync.
__global__ void wmma_product_kernel(const bf16* a, const bf16* b, float* c, bool assume_layout) {
  __shared__ __align__(32) float staged[256];
  wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
  wmma::fill_fragment(fc, 0.f);
  wmma::load_matrix_sync(fa, a, 16);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(fc, fa, fb, fc);
  int lane = int(threadIdx.x);
  if (assume_layout) {
    for (int i = 0; i < fc.num_elements; ++i)
      c[(lane / 4 + 8 * ((i / 2) % 2)) * 16 + 2 * (lane % 4) + i % 2 + 8 * (i / 4)] = fc.x[i];
    return;
  }
  wmma::store_matrix_sync(staged, fc, 16, wmma::mem_row_major);
  __syncwarp();
  for (int i = lane; i < 256; i += 32) c[i] = staged[i];
}

std::vector<float> wmma_product(bool assume_layout, std::vector<float>* want) {
  Tensor a = random_uniform_tensor({16, 16}, 3, 0), b = random_uniform_tensor({16, 16}, 3, 1);
  std::vector<float> ar = a.to(DType::BF16).to(DType::F32).to_floats(),
                     br = b.to(DType::BF16).to(DType::F32).to_floats();
  want->assign(256, 0.f);
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c)
      for (int k = 0; k < 16; ++k) (*want)[r * 16 + c] += ar[r * 16 + k] * br[k * 16 + c];
  Tensor ad = a.to(DType::BF16).to(Device::CUDA), bd = b.to(DType::BF16).to(Device::CUDA);
  Tensor c = device_floats(256);
  SD_LAUNCH(wmma_product_kernel, 1, 32, 0, cuda::stream(), static_cast<const bf16*>(ad.raw()),
            static_cast<const bf16*>(bd.raw()), c.data<float>(), assume_layout);
  return c.to_floats();
}

TEST_F(EmuChecks, WmmaDocumentedUseIsExact) {
  std::vector<float> want, got = wmma_product(false, &want);
  for (int i = 0; i < 256; ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << "element " << i;
}

TEST_F(EmuChecks, WmmaLayoutAssumptionGivesWrongResults) {
  std::vector<float> want, got = wmma_product(true, &want);
  int wrong = 0;
  for (int i = 0; i < 256; ++i) wrong += !(std::abs(got[i] - want[i]) <= 1e-5);
  // A random layout puts almost every element elsewhere.
  EXPECT_GT(wrong, 200) << "wmma_product_kernel relied on an undocumented fragment layout and "
                           "still got the product right";
}

__global__ void wmma_misaligned_kernel(const bf16* a) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
  wmma::load_matrix_sync(fa, a + 8, 16);  // 16 bytes past a 32-byte boundary
}

TEST_F(EmuChecks, WmmaPointerMustBe32ByteAligned) {
  Tensor a = Tensor::zeros({512}, DType::BF16, Device::CUDA);
  std::string msg = error_of([&] {
    SD_LAUNCH(wmma_misaligned_kernel, 1, 32, 0, cuda::stream(), static_cast<const bf16*>(a.raw()));
  });
  EXPECT_THAT(msg, HasSubstr("kernel wmma_misaligned_kernel: wmma::load_matrix_sync at"));
  EXPECT_THAT(msg, HasSubstr("is not 32-byte (256-bit) aligned"));
}

// ---- 6. a transposed cuBLAS operand ----

// Row-major C [M, N] = A [M, K] B [K, N] handed to column-major cuBLAS as if it were row-major:
// the classic mistake. cuda::gemm swaps the operands (C^T = B^T A^T), which is right.
void naive_row_major_gemm(int M, int N, int K, const float* A, const float* B, float* C) {
  const float one = 1.f, zero = 0.f;
  static cublasHandle_t h = [] {
    cublasHandle_t handle;
    CUBLAS_CHECK(cublasCreate(&handle));
    return handle;
  }();
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &one,
                                          A, CUDA_R_32F, K, 0, B, CUDA_R_32F, N, 0, &zero, C,
                                          CUDA_R_32F, N, 0, 1, CUBLAS_COMPUTE_32F,
                                          CUBLAS_GEMM_DEFAULT));
}

TEST_F(EmuChecks, RowMajorOperandsGivenToCublasAsIsAreRefused) {
  // Non-square: the leading dimensions no longer fit the column-major shapes.
  Tensor a = random_uniform_tensor({3, 5}, 1, 0).to(Device::CUDA);
  Tensor b = random_uniform_tensor({5, 4}, 1, 1).to(Device::CUDA), c = device_floats(12);
  std::string msg = error_of(
      [&] { naive_row_major_gemm(3, 4, 5, a.data<float>(), b.data<float>(), c.data<float>()); });
  EXPECT_THAT(msg, HasSubstr("cuBLAS error 7 (emulator: cublasGemmStridedBatchedEx: invalid sizes "
                             "(m=3 n=4 k=5 lda=5 ldb=4 ldc=4"));
}

TEST_F(EmuChecks, RowMajorOperandsGivenToCublasAsIsGiveTheTransposedProduct) {
  // Square: accepted, and the answer is (B A)^T instead of A B.
  const int n = 4;
  Tensor a = random_uniform_tensor({n, n}, 2, 0), b = random_uniform_tensor({n, n}, 2, 1);
  Tensor ad = a.to(Device::CUDA), bd = b.to(Device::CUDA), c = device_floats(n * n),
         right = device_floats(n * n);
  naive_row_major_gemm(n, n, n, ad.data<float>(), bd.data<float>(), c.data<float>());
  cuda::gemm(1, false, false, n, n, n, cuda::gemm_mat(ad, n), cuda::gemm_mat(bd, n), 0.f,
             cuda::gemm_mat(right, n));
  std::vector<float> A = a.to_floats(), B = b.to_floats(), got = c.to_floats(),
                     ok = right.to_floats();
  double wrong = 0, err = 0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double ab = 0, ba = 0;
      for (int k = 0; k < n; ++k) {
        ab += A[i * n + k] * B[k * n + j];
        ba += B[i * n + k] * A[k * n + j];
      }
      err = std::max(err, std::abs(ok[i * n + j] - ab));       // cuda::gemm: A B (TF32)
      wrong = std::max(wrong, std::abs(got[i * n + j] - ba));  // the mistake: B A
    }
  EXPECT_LT(err, 5e-3);
  EXPECT_LT(wrong, 1e-5);
}

// ---- 7. cuBLASLt operands: extents and the bias type ----

// A bf16 [3, 5] handed to cuda::gemm as [4, 5]: its last row lies past the allocation, and our A
// is cuBLASLt's B (the row-major swap).
TEST_F(EmuChecks, CublasLtRefusesAnOperandPastItsAllocation) {
  Tensor a = random_uniform_tensor({3, 5}, 3, 0).to(DType::BF16).to(Device::CUDA);
  Tensor b = random_uniform_tensor({5, 4}, 3, 1).to(DType::BF16).to(Device::CUDA);
  Tensor c = Tensor::empty({4, 4}, DType::BF16, Device::CUDA);
  auto run = [&](int64_t M) {
    cuda::gemm(1, false, false, M, 4, 5, cuda::gemm_mat(a, 5), cuda::gemm_mat(b, 4), 0.f,
               cuda::gemm_mat(c, 4));
  };
  EXPECT_EQ(error_of([&] { run(3); }), "(no error)");  // the right extent passes
  EXPECT_THAT(error_of([&] { run(4); }),
              HasSubstr("cuBLASLt error 7 (emulator: cublasLt: operand B is not inside one device "
                        "allocation"));
}

// The docs give the bias D's type: an f32 bias on a bf16 D is refused, not silently widened.
TEST_F(EmuChecks, CublasLtBiasMustHaveTheOutputType) {
  Tensor a = random_uniform_tensor({2, 8}, 4, 0).to(DType::BF16).to(Device::CUDA);
  Tensor w = random_uniform_tensor({3, 8}, 4, 1).to(DType::BF16).to(Device::CUDA);
  Tensor bias = random_uniform_tensor({3}, 4, 2).to(Device::CUDA);  // f32
  Tensor y = Tensor::empty({2, 3}, DType::BF16, Device::CUDA);
  cublasLtHandle_t h;
  CUBLAS_CHECK(cublasLtCreate(&h));
  cublasLtMatmulDesc_t op;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  uint32_t epi = CUBLASLT_EPILOGUE_BIAS;
  int32_t bt = CUDA_R_32F, tb = CUBLAS_OP_T;
  const void* bp = bias.raw();
  auto set = [&](cublasLtMatmulDescAttributes_t attr, const void* v, size_t bytes) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, attr, v, bytes));
  };
  set(CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
  set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp);
  set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt);
  set(CUBLASLT_MATMUL_DESC_TRANSA, &tb, sizeof tb);
  cublasLtMatrixLayout_t lw, la, ly;  // y^T [3, 2] = w [3, 8] (as w^T stored) x a^T [8, 2]
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lw, CUDA_R_16BF, 8, 3, 8));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, 8, 2, 8));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ly, CUDA_R_16BF, 3, 2, 3));
  const float one = 1.f, zero = 0.f;
  cublasStatus_t s = cublasLtMatmul(h, op, &one, w.raw(), lw, a.raw(), la, &zero, y.raw(), ly,
                                    y.raw(), ly, nullptr, nullptr, 0, cuda::stream());
  EXPECT_EQ(s, CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_THAT(cublasLtGetStatusString(s), HasSubstr("the bias must have D's type"));
  int32_t same = CUDA_R_16BF;  // with the bias declared bf16 (its memory is larger: in bounds)
  set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &same, sizeof same);
  EXPECT_EQ(cublasLtMatmul(h, op, &one, w.raw(), lw, a.raw(), la, &zero, y.raw(), ly, y.raw(), ly,
                           nullptr, nullptr, 0, cuda::stream()),
            CUBLAS_STATUS_SUCCESS);
  for (auto l : {lw, la, ly}) CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(l));
  CUBLAS_CHECK(cublasLtMatmulDescDestroy(op));
  CUBLAS_CHECK(cublasLtDestroy(h));
}

// ---- launch limits, memory and copies ----

__global__ void noop_kernel(float* y) {
  if (y && threadIdx.x == 0 && blockIdx.x == 0) y[0] = 0.f;
}

TEST_F(EmuChecks, LaunchLimitsAreChecked) {
  const int line = __LINE__ + 1;
  std::string msg = error_of([] { SD_LAUNCH(noop_kernel, 1, 1025, 0, cuda::stream(), nullptr); });
  EXPECT_THAT(msg, HasSubstr("CUDA launch of noop_kernel at "));
  EXPECT_THAT(msg, HasSubstr(at_line(line) + " failed: invalid launch configuration: block "
                             "(1025,1,1) (1025 threads): a block has 1 to 1024 threads"));
  EXPECT_THAT(error_of([] { SD_LAUNCH(noop_kernel, dim3(1, 70000), 32, 0, cuda::stream(), nullptr); }),
              HasSubstr("grid (1,70000,1)"));
  EXPECT_THAT(error_of([] { SD_LAUNCH(noop_kernel, 1, 32, 49 * 1024, cuda::stream(), nullptr); }),
              HasSubstr("50176 bytes of dynamic shared memory, the kernel's limit is 49152 (more "
                        "needs cudaFuncSetAttribute"));
  EXPECT_THAT(error_of([] {
                CUDA_CHECK(cudaFuncSetAttribute(noop_kernel,
                                                cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                228 * 1024));
              }),
              HasSubstr("an sm_90 block can have at most 232448"));
  CUDA_CHECK(cudaFuncSetAttribute(noop_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  100 * 1024));
  SD_LAUNCH(noop_kernel, 1, 32, 100 * 1024, cuda::stream(), nullptr);
}

TEST_F(EmuChecks, HostPointerArgumentIsRefused) {
  std::vector<float> host(4);
  EXPECT_THAT(error_of([&] { SD_LAUNCH(noop_kernel, 1, 32, 0, cuda::stream(), host.data()); }),
              HasSubstr("argument 0 of kernel noop_kernel is 0x"));
}

TEST_F(EmuChecks, CopiesCheckTheirDirection) {
  Tensor d = device_floats(4);
  std::vector<float> host(4);
  EXPECT_THAT(error_of([&] {
                CUDA_CHECK(cudaMemcpyAsync(host.data(), d.data<float>(), 16,
                                           cudaMemcpyHostToDevice, cuda::stream()));
              }),
              HasSubstr("cudaMemcpyAsync HostToDevice of 16 bytes: the destination 0x"));
  EXPECT_THAT(error_of([&] {
                CUDA_CHECK(cudaMemcpyAsync(d.data<float>(), host.data(), 32,
                                           cudaMemcpyHostToDevice, cuda::stream()));
              }),
              HasSubstr("is not device memory (or the copy overruns it)"));
  EXPECT_THAT(error_of([&] {
                CUDA_CHECK(cudaMemsetAsync(host.data(), 0, 16, cuda::stream()));
              }),
              HasSubstr("not inside one device allocation"));
}

// ---- shuffle and vote semantics, bf16 rounding, the knobs ----

__global__ void shuffle_semantics_kernel(const int* in, int* out) {
  int lane = int(threadIdx.x);
  out[lane] = __shfl_down_sync(0xffffffffu, lane, 3, 8);        // within groups of 8
  out[32 + lane] = __shfl_up_sync(0xffffffffu, lane, 2);
  out[64 + lane] = __shfl_xor_sync(0xffffffffu, lane, 5, 4);    // later group: own value
  out[96 + lane] = __shfl_sync(0xffffffffu, lane, 33, 16);      // source 33 mod 16 in the segment
  out[128 + lane] = int(__ballot_sync(0xffffffffu, lane % 3 == 0));
  out[160 + lane] = __any_sync(0xffffffffu, lane == 7) + 2 * __all_sync(0xffffffffu, lane < 31);
  out[192 + lane] = __ldg(&in[lane]);
}

TEST_F(EmuChecks, ShufflesAndVotesFollowCuda) {
  std::vector<int32_t> ids(32);
  std::iota(ids.begin(), ids.end(), 100);
  Tensor in = Tensor::from_ints(ids, {32}).to(Device::CUDA);
  Tensor t = Tensor::empty({224}, DType::I32, Device::CUDA);
  SD_LAUNCH(shuffle_semantics_kernel, 1, 32, 0, cuda::stream(), in.data<int32_t>(),
            t.data<int32_t>());
  Tensor h = t.to(Device::CPU);
  const int32_t* o = h.data<int32_t>();
  unsigned ballot = 0;
  for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
  for (int l = 0; l < 32; ++l) {
    EXPECT_EQ(o[l], l % 8 + 3 < 8 ? l + 3 : l) << l;
    EXPECT_EQ(o[32 + l], l >= 2 ? l - 2 : l) << l;
    EXPECT_EQ(o[64 + l], (l ^ 5) < (l / 4 + 1) * 4 ? l ^ 5 : l) << l;
    EXPECT_EQ(o[96 + l], (l / 16) * 16 + 1) << l;
    EXPECT_EQ(unsigned(o[128 + l]), ballot) << l;
    EXPECT_EQ(o[160 + l], 1) << l;  // any: yes, all: no
    EXPECT_EQ(o[192 + l], 100 + l) << l;
  }
}

TEST_F(EmuChecks, Bf16RoundsToNearestEven) {
  auto bits = [](float f) { return __nv_bfloat16(f).__x; };
  EXPECT_EQ(bits(1.f), 0x3f80);
  EXPECT_EQ(bits(1.00390625f), 0x3f80);   // halfway to 0x3f81: down to even
  EXPECT_EQ(bits(1.01171875f), 0x3f82);   // halfway between 0x3f81 and 0x3f82: up to even
  EXPECT_EQ(bits(std::nextafter(1.00390625f, 2.f)), 0x3f81);  // just above halfway
  EXPECT_EQ(bits(-2.5f), 0xc020);
  EXPECT_EQ(bits(std::nanf("")), 0x7fff);
  EXPECT_EQ(bits(3.4e38f), 0x7f80);       // rounds up to infinity
  EXPECT_EQ(float(__nv_bfloat16(0.15625f)), 0.15625f);
}

__global__ void arrival_order_kernel(float* counter, float* order) {
  float slot = atomicAdd(counter, 1.f);
  order[int(slot)] = float(blockIdx.x * blockDim.x + threadIdx.x);
}

std::vector<float> arrival_order() {
  Tensor counter = Tensor::zeros({1}, DType::F32, Device::CUDA), order = device_floats(256);
  SD_LAUNCH(arrival_order_kernel, 4, 64, 0, cuda::stream(), counter.data<float>(),
            order.data<float>());
  return order.to_floats();
}

TEST_F(EmuChecks, RandomOrderRunsThreadsAndBlocksShuffled) {
  std::vector<float> in_order = arrival_order(), identity(256);
  std::iota(identity.begin(), identity.end(), 0.f);
  EXPECT_EQ(in_order, identity);
  sd_emu::options().random_order = true;
  std::vector<float> shuffled = arrival_order();
  EXPECT_NE(shuffled, identity);
  std::sort(shuffled.begin(), shuffled.end());
  EXPECT_EQ(shuffled, identity);  // every thread ran once
}

}  // namespace
}  // namespace sd
