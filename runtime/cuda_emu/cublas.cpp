// cuBLAS on the host: cublasGemmStridedBatchedEx by its column-major definition, with cuBLAS's
// argument checks, and every operand checked to lie in one device allocation (a host pointer or a
// leading dimension that runs past a buffer is an error here, not a silent wrong answer).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "cublas_v2.h"
#include "memory.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace sd_emu {
bool stream_ok(cudaStream_t s);  // runtime_api.cpp

// TF32: f32 with the mantissa rounded to 10 bits (nearest, ties to even), as tensor cores read
// f32 operands under CUBLAS_COMPUTE_32F_FAST_TF32 (cublaslt.cpp too).
float tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;  // inf, NaN
  u += 0xfffu + ((u >> 13) & 1u);
  u &= ~0x1fffu;
  std::memcpy(&x, &u, 4);
  return x;
}

}  // namespace sd_emu

namespace {

thread_local std::string t_detail;  // why the last call failed (cublasGetStatusString)

cublasStatus_t fail(cublasStatus_t s, const std::string& why) {
  t_detail = "cublasGemmStridedBatchedEx: " + why;
  return s;
}

// A column-major rows x cols operand with leading dimension ld, `batch` of them `stride` apart:
// the byte span it reads, from its pointer.
bool operand_ok(const void* p, int rows, int cols, int ld, long long stride, int batch) {
  if (rows == 0 || cols == 0 || batch == 0) return true;  // nothing is read
  long long last = (long long)(cols - 1) * ld + rows - 1 + (long long)(batch - 1) * stride;
  return stride >= 0 && sd_emu::in_device_memory(p, size_t(last + 1) * sizeof(float));
}

}  // namespace

const char* cublasGetStatusString(cublasStatus_t s) {
  static thread_local std::string out;
  out = s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "emulator: " + t_detail;
  return out.c_str();
}

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!sd_emu::stream_ok(stream)) return fail(CUBLAS_STATUS_INVALID_VALUE, "not a live stream");
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
    const void* alpha, const void* A, cudaDataType Atype, int lda, long long strideA,
    const void* B, cudaDataType Btype, int ldb, long long strideB, const void* beta, void* C,
    cudaDataType Ctype, int ldc, long long strideC, int batch, cublasComputeType_t compute,
    cublasGemmAlgo_t) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (Atype != CUDA_R_32F || Btype != CUDA_R_32F || Ctype != CUDA_R_32F ||
      (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32))
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, "only f32 operands and f32 compute are emulated");
  // op(A) is m x k, op(B) is k x n, C is m x n; A is stored ra x ca, B rb x cb.
  const bool na = transa == CUBLAS_OP_N, nb = transb == CUBLAS_OP_N;
  const int ra = na ? m : k, ca = na ? k : m, rb = nb ? k : n, cb = nb ? n : k;
  auto dims = [&] {
    return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
           " lda=" + std::to_string(lda) + " ldb=" + std::to_string(ldb) +
           " ldc=" + std::to_string(ldc) + " batch=" + std::to_string(batch);
  };
  if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < std::max(1, ra) || ldb < std::max(1, rb) ||
      ldc < std::max(1, m))
    return fail(CUBLAS_STATUS_INVALID_VALUE,
                "invalid sizes (" + dims() + "; lda >= rows of A as stored = " +
                    std::to_string(ra) + ", ldb >= " + std::to_string(rb) + ", ldc >= m)");
  if (!sd_emu::stream_ok(handle->stream)) return fail(CUBLAS_STATUS_INVALID_VALUE, "dead stream");
  const char* bad = !operand_ok(A, ra, ca, lda, strideA, batch)   ? "A"
                    : !operand_ok(B, rb, cb, ldb, strideB, batch) ? "B"
                    : !operand_ok(C, m, n, ldc, strideC, batch)   ? "C"
                                                                  : nullptr;
  if (bad)
    return fail(CUBLAS_STATUS_INVALID_VALUE, std::string("operand ") + bad +
                                                 " is not inside one device allocation (" +
                                                 dims() + ")");
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  const bool round = compute == CUBLAS_COMPUTE_32F_FAST_TF32 && sd_emu::options().tf32;
  auto in = [round](float x) { return round ? sd_emu::tf32(x) : x; };
  for (int q = 0; q < batch; ++q) {
    const float* a = static_cast<const float*>(A) + q * strideA;
    const float* b = static_cast<const float*>(B) + q * strideB;
    float* c = static_cast<float*>(C) + q * strideC;
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        float s = 0.f;
        for (int p = 0; p < k; ++p) {
          float x = na ? a[i + (long long)p * lda] : a[p + (long long)i * lda];
          float y = nb ? b[p + (long long)j * ldb] : b[j + (long long)p * ldb];
          s += in(x) * in(y);
        }
        float& out = c[i + (long long)j * ldc];
        out = be == 0.f ? al * s : al * s + be * out;  // beta = 0: C is not read (may be NaN)
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}
