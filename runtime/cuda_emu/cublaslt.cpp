// cuBLASLt on the host: cublasLtMatmul by its column-major definition, with the argument checks
// and type rules of the cuBLAS docs for the subset in include/cublasLt.h, and every operand
// (bias and workspace too) checked to lie in one device allocation, as cublas.cpp does.
#include <cstdint>
#include <cstring>
#include <string>

#include "cublasLt.h"
#include "cuda_bf16.h"
#include "memory.h"

struct cublasLtContext {};
struct cublasLtMatmulDescOpaque_t {
  cublasComputeType_t compute;
  cudaDataType scale;
  int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int32_t bias_type = -1;  // -1: D's type
};
struct cublasLtMatrixLayoutOpaque_t {
  cudaDataType type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t order = CUBLASLT_ORDER_COL, batch = 1;
  int64_t stride = 0;
};
struct cublasLtMatmulPreferenceOpaque_t {
  uint64_t max_workspace = 0;
  uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D
};

namespace sd_emu {
bool stream_ok(cudaStream_t s);  // runtime_api.cpp
float tf32(float x);             // cublas.cpp: f32 rounded to TF32
}

namespace {

thread_local std::string t_detail;  // why the last call failed (cublasLtGetStatusString)

cublasStatus_t fail(cublasStatus_t s, const std::string& why) {
  t_detail = "cublasLt: " + why;
  return s;
}

// Copies an attribute whose size the caller states, as the real setters do.
template <class T>
cublasStatus_t set(T& field, const void* buf, size_t bytes, const char* what) {
  if (!buf || bytes != sizeof(T))
    return fail(CUBLAS_STATUS_INVALID_VALUE, std::string(what) + ": expected " +
                                                 std::to_string(sizeof(T)) + " bytes, got " +
                                                 std::to_string(bytes));
  std::memcpy(&field, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

size_t type_size(cudaDataType t) { return t == CUDA_R_16BF ? 2 : 4; }

std::string dims(const cublasLtMatrixLayoutOpaque_t& l) {
  return std::to_string(l.rows) + "x" + std::to_string(l.cols) + " ld=" + std::to_string(l.ld) +
         " batch=" + std::to_string(l.batch) + " stride=" + std::to_string(l.stride);
}

// The checks cublasLtMatmulAlgoGetHeuristic and cublasLtMatmul share: descriptor values, the
// type combination, and sizes that agree (op(A) m x k, op(B) k x n, C and D m x n).
cublasStatus_t check_problem(cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                             cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                             cublasLtMatrixLayout_t d) {
  if (!op || !a || !b || !c || !d) return fail(CUBLAS_STATUS_INVALID_VALUE, "a null descriptor");
  if (op->scale != CUDA_R_32F) return fail(CUBLAS_STATUS_NOT_SUPPORTED, "scale type must be f32");
  const bool tf32 = op->compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  if (!tf32 && op->compute != CUBLAS_COMPUTE_32F)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, "compute type must be 32F or 32F_FAST_TF32");
  // The docs' table: 32F_FAST_TF32 takes f32 everywhere; 32F takes f32 everywhere, or bf16 A/B
  // with bf16 or f32 C/D. C and D always share a type.
  const bool types_ok = a->type == b->type && c->type == d->type &&
                        (a->type == CUDA_R_32F ? d->type == CUDA_R_32F : !tf32);
  if (!types_ok)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED,
                "type combination A=" + std::to_string(a->type) + " B=" + std::to_string(b->type) +
                    " C=" + std::to_string(c->type) + " D=" + std::to_string(d->type) +
                    " is not offered for this compute type");
  for (auto* l : {a, b, c, d})
    if (l->order != CUBLASLT_ORDER_COL)
      return fail(CUBLAS_STATUS_NOT_SUPPORTED, "only column-major layouts are emulated");
  if (op->epilogue != CUBLASLT_EPILOGUE_DEFAULT && op->epilogue != CUBLASLT_EPILOGUE_BIAS)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, "only the DEFAULT and BIAS epilogues are emulated");
  if (op->epilogue == CUBLASLT_EPILOGUE_BIAS && op->bias_type != -1 && op->bias_type != d->type)
    return fail(CUBLAS_STATUS_NOT_SUPPORTED, "the bias must have D's type (BIAS_DATA_TYPE " +
                                                 std::to_string(op->bias_type) + ", D " +
                                                 std::to_string(d->type) + ")");
  const bool na = op->transa == CUBLAS_OP_N, nb = op->transb == CUBLAS_OP_N;
  const uint64_t m = d->rows, n = d->cols, k = na ? a->cols : a->rows;
  const bool sizes_ok = (na ? a->rows : a->cols) == m && (nb ? b->rows : b->cols) == k &&
                        (nb ? b->cols : b->rows) == n && c->rows == m && c->cols == n;
  const bool batch_ok = a->batch == d->batch && b->batch == d->batch && c->batch == d->batch &&
                        d->batch >= 1;
  bool ld_ok = true;
  for (auto* l : {a, b, c, d}) ld_ok = ld_ok && l->ld >= int64_t(l->rows) && l->ld >= 1;
  if (!sizes_ok || !batch_ok || !ld_ok)
    return fail(CUBLAS_STATUS_INVALID_VALUE,
                std::string("inconsistent layouts (transa=") + (na ? "N" : "T") +
                    " transb=" + (nb ? "N" : "T") + "; A " + dims(*a) + ", B " + dims(*b) +
                    ", C " + dims(*c) + ", D " + dims(*d) + "; ld >= rows, equal batches)");
  return CUBLAS_STATUS_SUCCESS;
}

// The byte span a layout's `batch` matrices cover, from its pointer, lies in one allocation.
bool operand_ok(const void* p, const cublasLtMatrixLayoutOpaque_t& l) {
  if (l.rows == 0 || l.cols == 0) return true;  // nothing is read
  if (l.stride < 0) return false;
  int64_t last = int64_t(l.cols - 1) * l.ld + int64_t(l.rows) - 1 + int64_t(l.batch - 1) * l.stride;
  return sd_emu::in_device_memory(p, size_t(last + 1) * type_size(l.type));
}

float load(const void* p, cudaDataType t, int64_t i) {
  return t == CUDA_R_16BF ? float(static_cast<const __nv_bfloat16*>(p)[i])
                          : static_cast<const float*>(p)[i];
}

// The algo's data: [0] a tag, [1..4] the alignments A, B, C, D the preference promised,
// [5] the workspace bytes it needs.
constexpr uint64_t kTag = 0x51bd1ff1a160ull, kWorkspace = 4096;

uint64_t alignment_of(const void* p, int64_t stride_bytes, int batch) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p) | (batch > 1 ? uint64_t(stride_bytes) : 0);
  return bits ? bits & (~bits + 1) : 256;  // the lowest set bit
}

}  // namespace

const char* cublasLtGetStatusString(cublasStatus_t s) {
  static thread_local std::string out;
  out = s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "emulator: " + t_detail;
  return out.c_str();
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  if (!h) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtCreate: null handle pointer");
  *h = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
  if (!d) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescCreate: null pointer");
  *d = new cublasLtMatmulDescOpaque_t{compute, scale};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  delete d;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d,
                                              cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t bytes) {
  if (!d) return fail(CUBLAS_STATUS_INVALID_VALUE, "null matmul descriptor");
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: {
      int32_t v;
      cublasStatus_t s = set(v, buf, bytes, "COMPUTE_TYPE");
      if (s == CUBLAS_STATUS_SUCCESS) d->compute = cublasComputeType_t(v);
      return s;
    }
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: {
      int32_t v;
      cublasStatus_t s = set(v, buf, bytes, "SCALE_TYPE");
      if (s == CUBLAS_STATUS_SUCCESS) d->scale = cudaDataType(v);
      return s;
    }
    case CUBLASLT_MATMUL_DESC_TRANSA: return set(d->transa, buf, bytes, "TRANSA");
    case CUBLASLT_MATMUL_DESC_TRANSB: return set(d->transb, buf, bytes, "TRANSB");
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return set(d->epilogue, buf, bytes, "EPILOGUE");
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set(d->bias, buf, bytes, "BIAS_POINTER");
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
      return set(d->bias_type, buf, bytes, "BIAS_DATA_TYPE");
  }
  return fail(CUBLAS_STATUS_INVALID_VALUE, "unknown matmul attribute " + std::to_string(attr));
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
  if (!l) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatrixLayoutCreate: null pointer");
  *l = new cublasLtMatrixLayoutOpaque_t{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete l;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l,
                                                cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t bytes) {
  if (!l) return fail(CUBLAS_STATUS_INVALID_VALUE, "null matrix layout");
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: {
      uint32_t v;
      cublasStatus_t s = set(v, buf, bytes, "LAYOUT_TYPE");
      if (s == CUBLAS_STATUS_SUCCESS) l->type = cudaDataType(v);
      return s;
    }
    case CUBLASLT_MATRIX_LAYOUT_ORDER: return set(l->order, buf, bytes, "LAYOUT_ORDER");
    case CUBLASLT_MATRIX_LAYOUT_ROWS: return set(l->rows, buf, bytes, "LAYOUT_ROWS");
    case CUBLASLT_MATRIX_LAYOUT_COLS: return set(l->cols, buf, bytes, "LAYOUT_COLS");
    case CUBLASLT_MATRIX_LAYOUT_LD: return set(l->ld, buf, bytes, "LAYOUT_LD");
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return set(l->batch, buf, bytes, "BATCH_COUNT");
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET:
      return set(l->stride, buf, bytes, "STRIDED_BATCH_OFFSET");
  }
  return fail(CUBLAS_STATUS_INVALID_VALUE, "unknown layout attribute " + std::to_string(attr));
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
  if (!p) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulPreferenceCreate: null pointer");
  *p = new cublasLtMatmulPreferenceOpaque_t;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  delete p;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void* buf, size_t bytes) {
  if (!p) return fail(CUBLAS_STATUS_INVALID_VALUE, "null preference");
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
      return set(p->max_workspace, buf, bytes, "MAX_WORKSPACE_BYTES");
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
      return set(p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, bytes,
                 "MIN_ALIGNMENT");
  }
  return fail(CUBLAS_STATUS_INVALID_VALUE, "unknown preference attribute " + std::to_string(attr));
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
    cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
    cublasLtMatmulPreference_t pref, int requested, cublasLtMatmulHeuristicResult_t results[],
    int* returned) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (requested <= 0 || !results || !returned || !pref)
    return fail(CUBLAS_STATUS_INVALID_VALUE, "heuristic: requestedAlgoCount <= 0 or null output");
  *returned = 0;
  if (cublasStatus_t s = check_problem(op, a, b, c, d); s != CUBLAS_STATUS_SUCCESS) return s;
  cublasLtMatmulHeuristicResult_t& r = results[0];
  r = {};
  r.algo.data[0] = kTag;
  for (int i = 0; i < 4; ++i) r.algo.data[1 + i] = pref->align[i];
  r.workspaceSize = pref->max_workspace >= kWorkspace ? kWorkspace : 0;
  r.algo.data[5] = r.workspaceSize;
  r.state = CUBLAS_STATUS_SUCCESS;
  r.wavesCount = 1.f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void* alpha,
                              const void* A, cublasLtMatrixLayout_t a, const void* B,
                              cublasLtMatrixLayout_t b, const void* beta, const void* C,
                              cublasLtMatrixLayout_t c, void* D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t* algo, void* workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (cublasStatus_t s = check_problem(op, a, b, c, d); s != CUBLAS_STATUS_SUCCESS) return s;
  if (!alpha || !beta) return fail(CUBLAS_STATUS_INVALID_VALUE, "null alpha or beta");
  if (!sd_emu::stream_ok(stream)) return fail(CUBLAS_STATUS_INVALID_VALUE, "not a live stream");
  // In place (C == D) needs C's layout to be D's.
  if (C == D && (c->ld != d->ld || c->stride != d->stride))
    return fail(CUBLAS_STATUS_INVALID_VALUE, "C == D with different layouts");
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  const char* bad = !operand_ok(A, *a)                 ? "A"
                    : !operand_ok(B, *b)               ? "B"
                    : be != 0.f && !operand_ok(C, *c)  ? "C"
                    : !operand_ok(D, *d)               ? "D"
                                                       : nullptr;
  const bool bias = op->epilogue == CUBLASLT_EPILOGUE_BIAS;
  if (!bad && bias && !sd_emu::in_device_memory(op->bias, d->rows * type_size(d->type)))
    bad = "bias";
  if (bad)
    return fail(CUBLAS_STATUS_INVALID_VALUE, std::string("operand ") + bad +
                                                 " is not inside one device allocation (A " +
                                                 dims(*a) + ", B " + dims(*b) + ", D " +
                                                 dims(*d) + ")");
  if (algo) {  // the algo from the heuristic: its workspace and the alignments it assumed
    if (algo->data[0] != kTag)
      return fail(CUBLAS_STATUS_INVALID_VALUE, "algo did not come from the heuristic");
    if (workspace_bytes < algo->data[5] ||
        (algo->data[5] && !sd_emu::in_device_memory(workspace, algo->data[5])))
      return fail(CUBLAS_STATUS_INVALID_VALUE,
                  "the algo needs a device workspace of " + std::to_string(algo->data[5]) +
                      " bytes, got " + std::to_string(workspace_bytes));
    const void* ptr[4] = {A, B, C, D};
    const cublasLtMatrixLayoutOpaque_t* lay[4] = {a, b, c, d};
    for (int i = 0; i < 4; ++i) {
      uint64_t have = alignment_of(ptr[i], lay[i]->stride * int64_t(type_size(lay[i]->type)),
                                   lay[i]->batch);
      if (have < algo->data[1 + i])
        return fail(CUBLAS_STATUS_INVALID_VALUE,
                    std::string("operand ") + "ABCD"[i] + " is " + std::to_string(have) +
                        "-byte aligned, the heuristic was promised " +
                        std::to_string(algo->data[1 + i]) + " (MIN_ALIGNMENT preference)");
    }
  }
  const bool na = op->transa == CUBLAS_OP_N, nb = op->transb == CUBLAS_OP_N;
  const bool round = op->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && sd_emu::options().tf32;
  auto in = [round](float x) { return round ? sd_emu::tf32(x) : x; };
  const int64_t m = d->rows, n = d->cols, k = na ? a->cols : a->rows;
  const cudaDataType bias_type = d->type;
  for (int64_t q = 0; q < d->batch; ++q) {
    const int64_t oa = q * a->stride, ob = q * b->stride, oc = q * c->stride, od = q * d->stride;
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < m; ++i) {
        float s = 0.f;
        for (int64_t p = 0; p < k; ++p) {
          float x = load(A, a->type, oa + (na ? i + p * a->ld : p + i * a->ld));
          float y = load(B, b->type, ob + (nb ? p + j * b->ld : j + p * b->ld));
          s += in(x) * in(y);
        }
        float v = al * s;
        if (be != 0.f) v += be * load(C, c->type, oc + i + j * c->ld);  // beta = 0: C unread
        if (bias) v += load(op->bias, bias_type, i);
        const int64_t at = od + i + j * d->ld;
        if (d->type == CUDA_R_16BF) static_cast<__nv_bfloat16*>(D)[at] = __nv_bfloat16(v);
        else static_cast<float*>(D)[at] = v;
      }
  }
  return CUBLAS_STATUS_SUCCESS;
}
