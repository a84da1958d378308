// nvcuda::wmma for the emulator: m16n16k16 fragments (bf16 A and B, f32 accumulator), with the
// documented semantics of load_matrix_sync, store_matrix_sync, fill_fragment and mma_sync, and a
// deliberately scrambled element-to-lane mapping: which matrix element sits in x[i] of which lane
// is a random permutation drawn once per run (SIMDIFF_EMU_SEED reproduces one). CUDA leaves that
// mapping unspecified, so a kernel that assumes one gets wrong numbers here.
// load/store/mma are warp-collective: all 32 lanes must arrive with the same pointer, leading
// dimension and layout (checked); the pointer must be 32-byte aligned and ldm a multiple of 16
// bytes. Each lane then reads or writes its own elements, so the race detector attributes every
// access to the lane that makes it, as on the GPU.
#pragma once
#include <type_traits>

#include "cuda_bf16.h"
#include "emu/sync.h"

namespace sd_emu::wmma {

enum class Op : uint8_t { Load, Store, Mma };
enum Kind { kRowA, kColA, kRowB, kColB, kAcc };

// Matrix position (row * 16 + col) of element i of lane l: layout(kind)[l * 8 + i].
const uint8_t* layout(int kind);
// This warp's staging matrices for mma_sync (row-major 16 x 16).
struct Stage {
  float a[256], b[256], c[256], d[256];
};
Stage& stage();
int lane();
// The warp-collective entry of a load, store or mma (checks as above). For Mma the scheduler
// computes stage().d = a * b + c once every lane has staged its elements.
void collective(Op op, const void* ptr, unsigned ldm_bytes, int layout, Site at);

}  // namespace sd_emu::wmma

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulator has m16n16k16 fragments only");
  static_assert(std::is_same_v<Use, accumulator> ? std::is_same_v<T, float>
                                                 : std::is_same_v<T, __nv_bfloat16>,
                "the emulator has bf16 A/B and f32 accumulator fragments only");
  static constexpr int num_elements = 8;
  T x[num_elements];
};

namespace detail {
template <class Use, class L>
constexpr int kind() {
  if constexpr (std::is_same_v<Use, matrix_a>) return std::is_same_v<L, row_major> ? 0 : 1;
  else if constexpr (std::is_same_v<Use, matrix_b>) return std::is_same_v<L, row_major> ? 2 : 3;
  else return 4;
}
// Element (r, c) of a 16 x 16 tile at p with leading dimension ldm.
template <class T>
T& at(T* p, unsigned ldm, bool row_major_mem, int pos) {
  int r = pos / 16, c = pos % 16;
  return row_major_mem ? p[size_t(r) * ldm + c] : p[size_t(c) * ldm + r];
}
}  // namespace detail

#define SD_EMU_CALLER const char *file = __builtin_FILE(), int line = __builtin_LINE()

template <class Use, class T, class L, class V>
void fill_fragment(fragment<Use, 16, 16, 16, T, L>& f, const V& v) {
  for (auto& e : f.x) e = T(v);
}

// A and B: the memory layout is the fragment's (row_major or col_major).
template <class Use, class T, class L>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, L>& f, const T* p, unsigned ldm, SD_EMU_CALLER) {
  constexpr int k = detail::kind<Use, L>();
  constexpr bool row = std::is_same_v<L, row_major>;
  sd_emu::wmma::collective(sd_emu::wmma::Op::Load, p, ldm * sizeof(T), k, {file, line});
  const uint8_t* pos = sd_emu::wmma::layout(k) + sd_emu::wmma::lane() * 8;
  for (int i = 0; i < 8; ++i) f.x[i] = detail::at(p, ldm, row, pos[i]);
}

// The accumulator: the memory layout is an argument.
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p,
                             unsigned ldm, layout_t l, SD_EMU_CALLER) {
  sd_emu::wmma::collective(sd_emu::wmma::Op::Load, p, ldm * 4, sd_emu::wmma::kAcc + 8 * l,
                           {file, line});
  const uint8_t* pos = sd_emu::wmma::layout(sd_emu::wmma::kAcc) + sd_emu::wmma::lane() * 8;
  for (int i = 0; i < 8; ++i) f.x[i] = detail::at(p, ldm, l == mem_row_major, pos[i]);
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f,
                              unsigned ldm, layout_t l, SD_EMU_CALLER) {
  sd_emu::wmma::collective(sd_emu::wmma::Op::Store, p, ldm * 4, sd_emu::wmma::kAcc + 8 * l,
                           {file, line});
  const uint8_t* pos = sd_emu::wmma::layout(sd_emu::wmma::kAcc) + sd_emu::wmma::lane() * 8;
  for (int i = 0; i < 8; ++i) detail::at(p, ldm, l == mem_row_major, pos[i]) = f.x[i];
}

// d = a * b + c (f32 accumulation); d may be c.
template <class LA, class LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d,
              const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA>& a,
              const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB>& b,
              const fragment<accumulator, 16, 16, 16, float>& c, SD_EMU_CALLER) {
  using namespace sd_emu::wmma;
  Stage& s = stage();
  const int l8 = lane() * 8;
  const uint8_t *pa = layout(detail::kind<matrix_a, LA>()) + l8,
                *pb = layout(detail::kind<matrix_b, LB>()) + l8, *pc = layout(kAcc) + l8;
  for (int i = 0; i < 8; ++i) {
    s.a[pa[i]] = float(a.x[i]);
    s.b[pb[i]] = float(b.x[i]);
    s.c[pc[i]] = c.x[i];
  }
  collective(Op::Mma, nullptr, 0, 0, {file, line});
  for (int i = 0; i < 8; ++i) d.x[i] = s.d[pc[i]];
}

#undef SD_EMU_CALLER

}  // namespace nvcuda::wmma
