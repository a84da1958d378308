// Every GEMM of the CUDA backend: one cublasLtMatmul per call (f32 on TF32 tensor cores, bf16
// read exactly, f32 accumulation, an optional bias epilogue).
#include <cublasLt.h>

#include <memory>
#include <type_traits>
#include <vector>

#include "kernels/cuda/checked_int.h"
#include "kernels/cuda/common.cuh"

namespace sd::cuda {
namespace {

#define LT_CHECK(call)                                                                      \
  do {                                                                                      \
    cublasStatus_t s_ = (call);                                                             \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                        \
      fail("cuBLASLt error ", int(s_), " (", cublasLtGetStatusString(s_), ") in ", #call, \
           " at ", __FILE__, ":", __LINE__);                                                \
  } while (0)

// The most workspace an algorithm may ask for: 32 MiB, NVIDIA's recommendation for Hopper. The
// buffer comes from the caching allocator per call (reused, not a cudaMalloc each time); one
// stream orders the GEMM before any later user of the block.
constexpr uint64_t kMaxWorkspace = uint64_t(32) << 20;

cublasLtHandle_t lt() {
  static cublasLtHandle_t h = [] {
    cublasLtHandle_t handle;
    LT_CHECK(cublasLtCreate(&handle));
    return handle;
  }();
  return h;
}

cudaDataType lt_type(DType d) {
  SD_CHECK(d == DType::F32 || d == DType::BF16, "cuda gemm: f32 or bf16 operands, got ",
           dtype_name(d));
  return d == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
}

// The alignment (a power of two, at most 256 bytes) every matrix of a batch has: what the
// heuristic must be told, since it assumes 256 otherwise and tensors may start at any element.
uint32_t alignment(const GemmMat& m) {
  uint64_t bits = reinterpret_cast<uintptr_t>(m.p) | uint64_t(m.stride) * dtype_size(m.dt) | 256;
  return uint32_t(bits & (~bits + 1));
}

// Descriptors are destroyed with their owner (the destroy calls only report success).
template <class H, cublasStatus_t (*destroy)(H)>
struct Destroy {
  void operator()(H h) const { destroy(h); }
};
template <class H, cublasStatus_t (*destroy)(H)>
using Owned = std::unique_ptr<std::remove_pointer_t<H>, Destroy<H, destroy>>;
using Layout = Owned<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;

// A column-major rows x cols layout of `m`'s dtype, `batch` matrices m.stride apart.
Layout layout(const GemmMat& m, int rows, int cols, int batch) {
  cublasLtMatrixLayout_t l;
  LT_CHECK(cublasLtMatrixLayoutCreate(&l, lt_type(m.dt), uint64_t(rows), uint64_t(cols), m.ld));
  Layout owned(l);
  int32_t count = batch;
  int64_t stride = m.stride;
  LT_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                            sizeof(count)));
  LT_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                            &stride, sizeof(stride)));
  return owned;
}

}  // namespace

// cuBLASLt is column-major and a row-major [R, C] matrix is its column-major [C, R], so we ask
// for C^T = op(B)^T op(A)^T: B is cuBLASLt's A, A its B, and M and N swap. Each layout describes
// the matrix as stored (before its op). The sizes are narrowed (and checked) before any handle
// is touched, so an oversized call fails cleanly even without a device.
void gemm(int64_t batch, bool ta, bool tb, int64_t M, int64_t N, int64_t K, GemmMat A, GemmMat B,
          float beta, GemmMat C, const void* bias) {
  const char* what = "cuda gemm";
  const int m = checked_int(what, "M", M), n = checked_int(what, "N", N),
            k = checked_int(what, "K", K), nb = checked_int(what, "batch", batch);
  checked_int(what, "lda", A.ld), checked_int(what, "ldb", B.ld), checked_int(what, "ldc", C.ld);
  SD_CHECK(A.dt == B.dt && (C.dt == DType::F32 || A.dt == DType::BF16) && (!bias || nb == 1),
           "cuda gemm: cuBLASLt takes A and B of one dtype, f32 ones into an f32 C, a bias only "
           "unbatched; got A ", dtype_name(A.dt), ", B ", dtype_name(B.dt), ", C ",
           dtype_name(C.dt), bias ? ", a bias" : "", ", batch ", batch);
  if (m == 0 || n == 0 || nb == 0) return;  // nothing to write
  const bool f32 = A.dt == DType::F32;

  cublasLtMatmulDesc_t op_raw;
  LT_CHECK(cublasLtMatmulDescCreate(
      &op_raw, f32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F));
  Owned<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy> op(op_raw);
  int32_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  LT_CHECK(cublasLtMatmulDescSetAttribute(op_raw, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
  LT_CHECK(cublasLtMatmulDescSetAttribute(op_raw, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
  if (bias) {  // bias[i] added to every column of the column-major D: to each row-major row
    uint32_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    int32_t bias_type = lt_type(C.dt);
    LT_CHECK(cublasLtMatmulDescSetAttribute(op_raw, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                            sizeof(epilogue)));
    LT_CHECK(cublasLtMatmulDescSetAttribute(op_raw, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                            sizeof(bias)));
    LT_CHECK(cublasLtMatmulDescSetAttribute(op_raw, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                            &bias_type, sizeof(bias_type)));
  }
  // cuBLASLt's A = our B (op(A) n x k), its B = our A (op(B) k x m), C = D: n x m.
  Layout la = layout(B, tb ? k : n, tb ? n : k, nb), lb = layout(A, ta ? m : k, ta ? k : m, nb),
         lc = layout(C, n, m, nb);

  cublasLtMatmulPreference_t pref_raw;
  LT_CHECK(cublasLtMatmulPreferenceCreate(&pref_raw));
  Owned<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy> pref(pref_raw);
  uint64_t max_ws = kMaxWorkspace;
  LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref_raw, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &max_ws, sizeof(max_ws)));
  const GemmMat* mats[4] = {&B, &A, &C, &C};  // cuBLASLt's A, B, C, D
  const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i) {
    uint32_t a = alignment(*mats[i]);
    LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref_raw, align_attr[i], &a, sizeof(a)));
  }

  cublasLtMatmulHeuristicResult_t best{};
  int found = 0;
  LT_CHECK(cublasLtMatmulAlgoGetHeuristic(lt(), op_raw, la.get(), lb.get(), lc.get(), lc.get(),
                                          pref_raw, 1, &best, &found));
  SD_CHECK(found >= 1 && best.state == CUBLAS_STATUS_SUCCESS,
           "cuda gemm: cuBLASLt has no algorithm for M=", M, " N=", N, " K=", K, " batch=", batch,
           " (", dtype_name(A.dt), " -> ", dtype_name(C.dt), ")");
  Tensor workspace;
  if (best.workspaceSize > 0)
    workspace = Tensor::empty({int64_t((best.workspaceSize + 3) / 4)}, DType::F32, Device::CUDA);
  const float alpha = 1.f;
  void* c = const_cast<void*>(C.p);  // the output: C and D are one matrix (beta = 0: C unread)
  LT_CHECK(cublasLtMatmul(lt(), op_raw, &alpha, B.p, la.get(), A.p, lb.get(), &beta, c, lc.get(),
                          c, lc.get(), &best.algo, workspace.defined() ? workspace.raw() : nullptr,
                          best.workspaceSize, stream()));
}

}  // namespace sd::cuda
