// Winograd F(4x4, 3x3) convolution (Lavin & Gray 2016) for conv2d's 3x3 stride-1 padding-1 case,
// forward, input gradient and weight gradient, in f32 (speed) and f64 (the gradient check).
//
// Each 4x4 output tile comes from the 6x6 input tile around it:
//   Y = A^T [ U (.) V ] A,   U = G w G^T (per output/input channel pair),   V = B^T d B
// and summing U (.) V over input channels is, for each of the 36 points (.) of the 6x6 domain, a
// matrix product [tiles x C] x [C x O]. That is 36 products of 36/16 = 2.25 multiplies per output
// and channel pair instead of the direct convolution's 9: 4x fewer flops, paid for by the tile
// transforms (adds, a few multiplies by 2, 4, 5, 8) and by the 2.25x larger transformed tiles.
//   input gradient:  dx = the same convolution of g with w flipped and transposed (w'[c, o] =
//                    rot180(w[o, c])), padding 1
//   weight gradient: dU[o, c] = sum over tiles of (A dY A^T)[o] (.) V[c], dw = G^T dU G
//                    (the transpose of the forward's linear maps): again 36 products, now
//                    [O x tiles] x [tiles x C], summed over the batch.
//
// Layout (why channels-last): every transform is the same few adds on each channel, so channels
// go in SIMD lanes. The batch is cut into groups of whole images (one OpenMP task each, about one
// block of tiles: several 8x8 images or one larger one); a group's images are copied to a
// per-thread zero-bordered NHWC buffer [imgs][4*th + 2][4*tw + 2][Cp] (th x tw tiles per image,
// Cp = C rounded up to the vector width): the borders are the padding and the rounding of H and
// W up to whole tiles, so the transforms never test bounds. Its tiles then run in blocks that fit
// in L2: transform the block's inputs to V[36][tiles][Cp], 36 register-blocked products with the
// transformed weights U[36][Cp][Op], transform back and write the outputs in NCHW.
//
// Memory: scratch is per thread and per group, never a copy of the batch: 1-3.3 MiB per call at
// the model's shapes (the weight gradient's is the largest: a second thread's partial sums in
// the 6x6 domain, 1.1 MiB at C128->64, besides the 6x6-domain result dU). It is allocated per
// call and freed on return. Kept between calls (as it was first), it sat on top of the training
// step's peak (heaptrack: the peak falls inside the backward of the up path's C128->64
// convolution) and raised the step's peak resident memory by 2-3 MiB at batch 32; freed, the heap
// hands the same pages to the next tensors, with no page faults once a step has run. Smaller
// scratch (one padded image at a time, or no weight-gradient partials: weight_grad_tiles)
// lowered the live-heap peak by another 0.6 MiB but measured 1-3 MiB more peak resident memory
// at batch 32 (the glibc heap's fragmentation over the steps decides the rest): not kept.
//
// Error: the transforms scale rounding errors by their constants (up to 5 in B, 8 in A, 1/24 in
// G) before the channel sums: in f32 the result is 1e-6 to 1.2e-5 of the largest output away
// from the exact one for the model's shapes (5-30x the im2col reference's error), growing with
// the channel count. tests/test_conv_fast.cpp states and checks the bound; in f64 (the gradient
// check) the difference is ~1e-16.
//
// Vectors: GCC vector extensions of 64 bytes (AVX-512, 32 registers) or 32 bytes (otherwise),
// chosen at compile time from the target (the build uses -march=native); the same code compiles
// for any target. The NCHW <-> NHWC moves use AVX-512 16 x 16 transposes, with plain loops
// elsewhere.
#include "kernels/cpu/conv_winograd.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>

namespace sd::cpu {

namespace {

bool g_reference = [] {
  const char* v = std::getenv("SIMDIFF_CONV3X3");
  return v && std::string(v) == "reference";
}();

#ifdef __AVX512F__
constexpr int kVecBytes = 64;
constexpr int kAccRegs = 24;  // accumulators of the product kernel (of 32 vector registers)
#else
constexpr int kVecBytes = 32;
constexpr int kAccRegs = 12;  // of 16
#endif

template <class T>
struct VecOf {
  typedef T type __attribute__((vector_size(kVecBytes)));
};
template <class T>
using Vec = typename VecOf<T>::type;
template <class T>
constexpr int64_t kLanes = kVecBytes / sizeof(T);

template <class T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
inline void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof v);
}

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Channel pairs below which the weight transforms (and the weight gradient's partial sums) run
// on one thread: with OMP_WAIT_POLICY=passive each parallel region wakes the sleeping threads
// (tens of microseconds), more than 36 x 32 x 32 transforms take.
constexpr int64_t kParallelPairs = 64 * 64;

// 64-byte aligned scratch, uninitialised.
template <class T>
struct Buffer {
  std::unique_ptr<T, decltype(&std::free)> p{nullptr, &std::free};
  explicit Buffer(int64_t n)
      : p(static_cast<T*>(
              std::aligned_alloc(64, size_t(round_up(std::max<int64_t>(n, 1) * sizeof(T), 64)))),
          &std::free) {
    if (!p) throw std::bad_alloc();
  }
  T* get() const { return p.get(); }
};

// ---- the 1-D transforms (each 2-D transform is one pass down the columns, one along the rows) --

// B^T d: 6 -> 6.
template <class V>
inline void bt6(const V d[6], V r[6]) {
  V a = d[4] - 4 * d[2], b = d[3] - 4 * d[1], c = d[4] - d[2], e = 2 * (d[3] - d[1]);
  r[0] = 4 * d[0] - 5 * d[2] + d[4];
  r[1] = a + b;
  r[2] = a - b;
  r[3] = c + e;
  r[4] = c - e;
  r[5] = 4 * d[1] - 5 * d[3] + d[5];
}

// A^T m: 6 -> 4.
template <class V>
inline void at6(const V m[6], V o[4]) {
  V s1 = m[1] + m[2], d1 = m[1] - m[2], s2 = m[3] + m[4], d2 = m[3] - m[4];
  o[0] = m[0] + s1 + s2;
  o[1] = d1 + 2 * d2;
  o[2] = s1 + 4 * s2;
  o[3] = d1 + 8 * d2 + m[5];
}

// G g: 3 -> 6.
template <class V, class T>
inline void g3(const V g[3], V u[6]) {
  const T q = T(1) / 4, s = T(1) / 6, t = T(1) / 12, f = T(1) / 24;
  V sum = g[0] + g[2];
  u[0] = q * g[0];
  u[1] = -s * (sum + g[1]);
  u[2] = -s * (sum - g[1]);
  u[3] = f * g[0] + t * g[1] + s * g[2];
  u[4] = f * g[0] - t * g[1] + s * g[2];
  u[5] = g[2];
}

// A e (the adjoint of at6): 4 -> 6.
template <class V>
inline void a4(const V e[4], V m[6]) {
  V s = e[0] + e[2], d = e[1] + e[3], s4 = e[0] + 4 * e[2], d4 = 2 * e[1] + 8 * e[3];
  m[0] = e[0];
  m[1] = s + d;
  m[2] = s - d;
  m[3] = s4 + d4;
  m[4] = s4 - d4;
  m[5] = e[3];
}

// G^T u (the adjoint of g3): 6 -> 3.
template <class V, class T>
inline void gt6(const V u[6], V g[3]) {
  const T q = T(1) / 4, s = T(1) / 6, t = T(1) / 12, f = T(1) / 24;
  V s12 = u[1] + u[2], s34 = u[3] + u[4];
  g[0] = q * u[0] - s * s12 + f * s34;
  g[1] = s * (u[2] - u[1]) + t * (u[3] - u[4]);
  g[2] = s * (s34 - s12) + u[5];
}

// ---- the batched products: 36 of them per tile block ----

// C[r, 0:NV*L] (+)= sum_k A(r, k) B[k, 0:NV*L] for r < R: R x NV accumulators stay in registers,
// each step loads NV vectors of B and broadcasts R scalars of A. A(r, k) = a[r*a_rs + k*a_ks]
// (row- or column-major A without a copy), B rows ldb apart, C rows ldc apart.
template <class T, int R, int NV, bool Accumulate>
void micro(int64_t K, const T* a, int64_t a_rs, int64_t a_ks, const T* b, int64_t ldb, T* c,
           int64_t ldc) {
  using V = Vec<T>;
  constexpr int64_t L = kLanes<T>;
  V s[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) s[r][v] = Accumulate ? load(c + r * ldc + v * L) : V{};
  for (int64_t k = 0; k < K; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load(b + k * ldb + v * L);
    for (int r = 0; r < R; ++r) {
      T ar = a[r * a_rs + k * a_ks];
      for (int v = 0; v < NV; ++v) s[r][v] += ar * bv[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) store(c + r * ldc + v * L, s[r][v]);
}

// Picks the kernel with R rows (R <= RMax) at run time.
template <class T, int NV, int RMax>
void micro_rows(int rows, int64_t K, const T* a, int64_t a_rs, int64_t a_ks, const T* b,
                int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  if constexpr (RMax > 1)
    if (rows < RMax)
      return micro_rows<T, NV, RMax - 1>(rows, K, a, a_rs, a_ks, b, ldb, c, ldc, accumulate);
  if (accumulate)
    micro<T, RMax, NV, true>(K, a, a_rs, a_ks, b, ldb, c, ldc);
  else
    micro<T, RMax, NV, false>(K, a, a_rs, a_ks, b, ldb, c, ldc);
}

constexpr int rows_for(int nv) { return std::min(12, kAccRegs / nv); }

// C[M, N] (+)= A(M x K) B[K, N] with N a multiple of the vector width: column panels of up to 4
// vectors, row blocks of as many rows as the accumulator registers allow.
template <class T>
void small_gemm(int64_t M, int64_t N, int64_t K, const T* a, int64_t a_rs, int64_t a_ks,
                const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  constexpr int64_t L = kLanes<T>;
  for (int64_t n0 = 0; n0 < N; n0 += 4 * L) {
    int nv = int(std::min<int64_t>(4, (N - n0) / L));
    int rmax = nv == 1 ? rows_for(1) : nv == 2 ? rows_for(2) : nv == 3 ? rows_for(3) : rows_for(4);
    for (int64_t m0 = 0; m0 < M; m0 += rmax) {
      int rows = int(std::min<int64_t>(rmax, M - m0));
      const T* ap = a + m0 * a_rs;
      const T* bp = b + n0;
      T* cp = c + m0 * ldc + n0;
      switch (nv) {
        case 1: micro_rows<T, 1, rows_for(1)>(rows, K, ap, a_rs, a_ks, bp, ldb, cp, ldc, accumulate); break;
        case 2: micro_rows<T, 2, rows_for(2)>(rows, K, ap, a_rs, a_ks, bp, ldb, cp, ldc, accumulate); break;
        case 3: micro_rows<T, 3, rows_for(3)>(rows, K, ap, a_rs, a_ks, bp, ldb, cp, ldc, accumulate); break;
        default: micro_rows<T, 4, rows_for(4)>(rows, K, ap, a_rs, a_ks, bp, ldb, cp, ldc, accumulate);
      }
    }
  }
}

// ---- geometry and layout changes ----

struct Geometry {
  int64_t B, H, W, th, tw, Hp, Wp;
  Geometry(int64_t B_, int64_t H_, int64_t W_)
      : B(B_), H(H_), W(W_), th((H_ + 3) / 4), tw((W_ + 3) / 4), Hp(4 * th + 2), Wp(4 * tw + 2) {}
  // Element offset of the top-left corner of tile t's 6x6 input window in a padded buffer of
  // images (t counts tiles from the buffer's first image).
  int64_t corner(int64_t t, int64_t Cp) const {
    int64_t b = t / (th * tw), ty = t / tw % th, tx = t % tw;
    return ((b * Hp + 4 * ty) * Wp + 4 * tx) * Cp;
  }
};

// ---- 16 x 16 float transposes (AVX-512) for the NCHW <-> tile layout changes ----
#ifdef __AVX512F__
// GCC 12 warns inside its own intrinsics headers (_mm_undefined_ps as the masked-off source).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// r[i] = row i of a 16 x 16 block -> r[k] = column k. Unpacks of 32- then 64-bit pairs within
// 128-bit lanes leave s[4i + k] lane j = rows 4i..4i+3 of column 4j + k; two rounds of lane
// shuffles gather the four row groups of each column.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  auto pd = [](__m512 v) { return _mm512_castps_pd(v); };
  for (int i = 0; i < 4; ++i) {
    __m512 a = t[4 * i], b = t[4 * i + 1], c = t[4 * i + 2], d = t[4 * i + 3];
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(a), pd(c)));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(a), pd(c)));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(b), pd(d)));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(b), pd(d)));
  }
  for (int k = 0; k < 4; ++k) {
    __m512 u = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x44), uh = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xEE);
    __m512 v = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x44), vh = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xEE);
    t[k] = _mm512_shuffle_f32x4(u, v, 0x88);
    t[4 + k] = _mm512_shuffle_f32x4(u, v, 0xDD);
    t[8 + k] = _mm512_shuffle_f32x4(uh, vh, 0x88);
    t[12 + k] = _mm512_shuffle_f32x4(uh, vh, 0xDD);
  }
  for (int k = 0; k < 16; ++k) r[k] = t[k];
}
#endif

// `rows` image rows (adjacent in each NCHW plane): out[r][x][c] = in[c][r*W + x] for c < Cp (zero
// for c >= C), planes cs apart, output rows ors apart. With AVX-512 one 16 x 16 transpose moves 16
// channels of 16 positions; narrow images (W = 8) pass two rows per transpose.
template <class T>
void rows_to_nhwc(const T* in, int64_t cs, int64_t C, int64_t W, int64_t rows, int64_t Cp, T* out,
                  int64_t ors) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    int64_t span = rows * W;  // positions, contiguous in each plane
    for (int64_t c0 = 0; c0 < Cp; c0 += 16)
      for (int64_t q0 = 0; q0 < span; q0 += 16) {
        int64_t n = std::min<int64_t>(16, span - q0);
        __mmask16 m = __mmask16((1u << n) - 1);
        __m512 r[16];
        for (int k = 0; k < 16; ++k)
          r[k] = c0 + k < C ? _mm512_maskz_loadu_ps(m, in + (c0 + k) * cs + q0) : _mm512_setzero_ps();
        transpose16(r);
        for (int64_t q = 0; q < n; ++q)
          _mm512_storeu_ps(out + (q0 + q) / W * ors + (q0 + q) % W * Cp + c0, r[q]);
      }
    return;
  }
#endif
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t c = 0; c < Cp; ++c)
        out[r * ors + x * Cp + c] = c < C ? in[c * cs + r * W + x] : T(0);
}

// Images [b0, b0 + nb) of src [B][C][H][W] -> dst [nb][Hp][Wp][Cp], pixel (y, x) at (y+1, x+1),
// zeros elsewhere. Two rows per transpose where W = 8.
template <class T>
void to_padded_nhwc(const T* src, int64_t C, int64_t Cp, const Geometry& g, int64_t b0,
                    int64_t nb, T* dst) {
  int64_t rows = g.W < 16 && 16 % g.W == 0 && g.H % (16 / g.W) == 0 ? 16 / g.W : 1;
  int64_t ors = g.Wp * Cp;
  for (int64_t b = 0; b < nb; ++b) {
    T* img = dst + b * g.Hp * ors;
    std::fill(img, img + ors, T(0));                              // top border row
    std::fill(img + (g.H + 1) * ors, img + g.Hp * ors, T(0));     // bottom rows
    for (int64_t y = 0; y < g.H; ++y) {                           // left and right borders
      T* row = img + (y + 1) * ors;
      std::fill(row, row + Cp, T(0));
      std::fill(row + (g.W + 1) * Cp, row + ors, T(0));
    }
    for (int64_t y0 = 0; y0 < g.H; y0 += rows)
      rows_to_nhwc(src + ((b0 + b) * C * g.H + y0) * g.W, g.H * g.W, C, g.W, rows, Cp,
                   img + (y0 + 1) * ors + Cp, ors);
  }
}

// One output tile's 4x4 positions from out[q][co] (q = i*4 + j, rows Coutp apart) into NCHW y at
// (b, :, y0.., x0..), plus the bias; hi x wi of the positions lie inside the image.
template <class T>
void tile_to_nchw(const T* out, int64_t Coutp, const T* bias, int64_t Cout, int64_t HW,
                  int64_t W, int64_t hi, int64_t wi, T* y) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    if (hi == 4 && wi == 4) {
      for (int64_t o0 = 0; o0 < Cout; o0 += 16) {
        __m512 r[16];
        for (int q = 0; q < 16; ++q) r[q] = _mm512_loadu_ps(out + q * Coutp + o0);
        transpose16(r);  // r[k]: the 16 positions of channel o0 + k
        for (int64_t k = 0; k < std::min<int64_t>(16, Cout - o0); ++k) {
          __m512 v = _mm512_add_ps(r[k], _mm512_set1_ps(bias ? bias[o0 + k] : 0.f));
          T* dst = y + (o0 + k) * HW;
          _mm_storeu_ps(dst, _mm512_extractf32x4_ps(v, 0));
          _mm_storeu_ps(dst + W, _mm512_extractf32x4_ps(v, 1));
          _mm_storeu_ps(dst + 2 * W, _mm512_extractf32x4_ps(v, 2));
          _mm_storeu_ps(dst + 3 * W, _mm512_extractf32x4_ps(v, 3));
        }
      }
      return;
    }
  }
#endif
  for (int64_t o = 0; o < Cout; ++o) {
    T bo = bias ? bias[o] : T(0);
    for (int64_t i = 0; i < hi; ++i)
      for (int64_t j = 0; j < wi; ++j) y[o * HW + i * W + j] = out[(i * 4 + j) * Coutp + o] + bo;
  }
}

// Four horizontally adjacent whole tiles (out: four tile_to_nchw inputs 16 * Coutp apart) into
// y at x0 = a multiple of 16: each row of each channel is then one 64-byte line, written whole
// by one store instead of four 16-byte pieces from four tiles (with 12 input channels the
// write-out is a quarter of the forward). Per 16 channels: four 16 x 16 transposes into a 4 KiB
// buffer (L1), then for each channel a 4 x 4 transpose of 128-bit lanes (tile j's row i -> row
// i's quarter j) and four full-line stores.
template <class T>
void four_tiles_to_nchw(const T* out, int64_t Coutp, const T* bias, int64_t Cout, int64_t HW,
                        int64_t W, T* y) {
#ifdef __AVX512F__
  if constexpr (std::is_same_v<T, float>) {
    alignas(64) float cols[4][16][16];  // [tile][channel k][position]
    for (int64_t o0 = 0; o0 < Cout; o0 += 16) {
      for (int j = 0; j < 4; ++j) {
        __m512 r[16];
        for (int q = 0; q < 16; ++q) r[q] = _mm512_loadu_ps(out + (j * 16 + q) * Coutp + o0);
        transpose16(r);
        for (int k = 0; k < 16; ++k) _mm512_store_ps(cols[j][k], r[k]);
      }
      for (int64_t k = 0; k < std::min<int64_t>(16, Cout - o0); ++k) {
        __m512 b = _mm512_set1_ps(bias ? bias[o0 + k] : 0.f);
        __m512 a0 = _mm512_load_ps(cols[0][k]), a1 = _mm512_load_ps(cols[1][k]),
               a2 = _mm512_load_ps(cols[2][k]), a3 = _mm512_load_ps(cols[3][k]);
        __m512 t0 = _mm512_shuffle_f32x4(a0, a1, 0x44), t1 = _mm512_shuffle_f32x4(a0, a1, 0xEE),
               t2 = _mm512_shuffle_f32x4(a2, a3, 0x44), t3 = _mm512_shuffle_f32x4(a2, a3, 0xEE);
        T* dst = y + (o0 + k) * HW;
        _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_shuffle_f32x4(t0, t2, 0x88), b));
        _mm512_storeu_ps(dst + W, _mm512_add_ps(_mm512_shuffle_f32x4(t0, t2, 0xDD), b));
        _mm512_storeu_ps(dst + 2 * W, _mm512_add_ps(_mm512_shuffle_f32x4(t1, t3, 0x88), b));
        _mm512_storeu_ps(dst + 3 * W, _mm512_add_ps(_mm512_shuffle_f32x4(t1, t3, 0xDD), b));
      }
    }
    return;
  }
#endif
  for (int j = 0; j < 4; ++j) tile_to_nchw(out + j * 16 * Coutp, Coutp, bias, Cout, HW, W, 4, 4, y + 4 * j);
}

// U[36][Cinp][Coutp] = G w G^T per (input, output) channel pair, zero for padded channels.
// flip = false: the forward (ci = C, co = O, taps w[co][ci]); flip = true: the input gradient
// (ci = O, co = C, taps w[ci][co] rotated by 180 degrees).
template <class T>
void transform_weights(const T* w, int64_t O, int64_t C, bool flip, int64_t Cinp, int64_t Coutp,
                       T* U) {
  using V = Vec<T>;
  constexpr int64_t L = kLanes<T>;
  int64_t Cin = flip ? O : C, Cout = flip ? C : O;
#pragma omp parallel for schedule(static) if (Cinp * Coutp >= kParallelPairs)
  for (int64_t ci = 0; ci < Cinp; ++ci)
    for (int64_t co0 = 0; co0 < Coutp; co0 += L) {
      alignas(64) T taps[9][L];
      for (int64_t k = 0; k < 9; ++k)
        for (int64_t l = 0; l < L; ++l) {
          int64_t co = co0 + l;
          bool live = ci < Cin && co < Cout;
          taps[k][l] = !live ? T(0)
                       : flip ? w[(ci * C + co) * 9 + 8 - k]
                              : w[(co * C + ci) * 9 + k];
        }
      V g[3][3], col[3], t6[6], tmp[6][3], row[3], u[6];
      for (int r = 0; r < 3; ++r)
        for (int k = 0; k < 3; ++k) g[r][k] = load(taps[r * 3 + k]);
      for (int k = 0; k < 3; ++k) {  // columns: tmp = G g
        for (int r = 0; r < 3; ++r) col[r] = g[r][k];
        g3<V, T>(col, t6);
        for (int i = 0; i < 6; ++i) tmp[i][k] = t6[i];
      }
      for (int i = 0; i < 6; ++i) {  // rows: U = tmp G^T
        for (int k = 0; k < 3; ++k) row[k] = tmp[i][k];
        g3<V, T>(row, u);
        for (int j = 0; j < 6; ++j) store(U + ((i * 6 + j) * Cinp + ci) * Coutp + co0, u[j]);
      }
    }
}

// ---- the tile transforms, one channel vector at a time ----

// V[p][c:c+L] of one tile from its 6x6 window (rows rs apart, columns cs apart); p rows ps apart.
template <class T>
inline void input_tile(const T* in, int64_t rs, int64_t cs, T* v, int64_t ps) {
  using V = Vec<T>;
  V d[6][6], col[6], t6[6], tmp[6][6];
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j) d[i][j] = load(in + i * rs + j * cs);
  for (int j = 0; j < 6; ++j) {
    for (int i = 0; i < 6; ++i) col[i] = d[i][j];
    bt6(col, t6);
    for (int i = 0; i < 6; ++i) tmp[i][j] = t6[i];
  }
  for (int i = 0; i < 6; ++i) {
    bt6(tmp[i], t6);
    for (int j = 0; j < 6; ++j) store(v + (i * 6 + j) * ps, t6[j]);
  }
}

// 4x4 outputs (position q at out + q*qs) of one tile from its 36 products M[p] (ps apart).
template <class T>
inline void output_tile(const T* m, int64_t ps, T* out, int64_t qs) {
  using V = Vec<T>;
  V in[6][6], col[6], t4[4], tmp[4][6];
  for (int p = 0; p < 36; ++p) in[p / 6][p % 6] = load(m + p * ps);
  for (int j = 0; j < 6; ++j) {
    for (int i = 0; i < 6; ++i) col[i] = in[i][j];
    at6(col, t4);
    for (int i = 0; i < 4; ++i) tmp[i][j] = t4[i];
  }
  for (int i = 0; i < 4; ++i) {
    at6(tmp[i], t4);
    for (int j = 0; j < 4; ++j) store(out + (i * 4 + j) * qs, t4[j]);
  }
}

// Z[p] = (A e A^T)[p] of one tile's 4x4 output gradient e (rows rs apart, columns cs apart).
template <class T>
inline void grad_tile(const T* e, int64_t rs, int64_t cs, T* z, int64_t ps) {
  using V = Vec<T>;
  V in[4][4], col[4], t6[6], tmp[6][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) in[i][j] = load(e + i * rs + j * cs);
  for (int j = 0; j < 4; ++j) {
    for (int i = 0; i < 4; ++i) col[i] = in[i][j];
    a4(col, t6);
    for (int i = 0; i < 6; ++i) tmp[i][j] = t6[i];
  }
  for (int i = 0; i < 6; ++i) {
    a4(tmp[i], t6);
    for (int j = 0; j < 6; ++j) store(z + (i * 6 + j) * ps, t6[j]);
  }
}

// Tiles per block: the block's transformed inputs and products (36 x tiles x (Cinp + Coutp))
// stay within ~512 KiB of the 1 MiB L2, in whole row blocks of the forward product kernel.
template <class T>
int64_t block_tiles(int64_t Cinp, int64_t Coutp) {
  int64_t per_tile = 36 * (Cinp + Coutp) * int64_t(sizeof(T));
  int64_t nv = std::min<int64_t>(4, Coutp / kLanes<T>), rows = rows_for(int(nv));
  return std::max<int64_t>(1, std::min<int64_t>((512 << 10) / per_tile, 96) / rows) * rows;
}

// The work is split into groups of whole images (one OpenMP task each): a group's images are
// copied to a per-thread padded NHWC buffer, then its tiles run in blocks of NT. Groups hold
// about one block of tiles (several 8x8 images, one larger image).
struct Plan {
  int64_t NT, imgs, groups;
  Plan(const Geometry& g, int64_t NT_) : NT(NT_) {
    imgs = std::max<int64_t>(1, NT / (g.th * g.tw));
    groups = (g.B + imgs - 1) / imgs;
  }
};

// One block of a group: V[p][t][:] for tiles [t0, t0 + n) of the group's padded images xt.
template <class T>
void input_block(const T* xt, int64_t Cp, const Geometry& g, int64_t t0, int64_t n, int64_t NT,
                 T* V) {
  constexpr int64_t L = kLanes<T>;
  for (int64_t t = 0; t < n; ++t) {
    const T* win = xt + g.corner(t0 + t, Cp);
    for (int64_t c = 0; c < Cp; c += L) input_tile(win + c, g.Wp * Cp, Cp, V + t * Cp + c, NT * Cp);
  }
}

// y [B][Cout][H][W] (+ bias) = the convolution of x [B][Cin][H][W] with U [36][Cinp][Coutp].
template <class T>
void conv_tiles(const T* x, int64_t Cin, int64_t Cinp, const T* U, const T* bias, T* y,
                int64_t Cout, int64_t Coutp, const Geometry& g) {
  constexpr int64_t L = kLanes<T>;
  Plan pl(g, block_tiles<T>(Cinp, Coutp));
  int64_t NT = pl.NT;
  int nt = int(std::min<int64_t>(omp_get_max_threads(), pl.groups));
  int64_t nxt = pl.imgs * g.Hp * g.Wp * Cinp, nv = 36 * NT * Cinp, nm = 36 * NT * Coutp;
  int64_t per_thread = nxt + nv + nm + 4 * 16 * Coutp;
  Buffer<T> scratch(nt * per_thread);
  T* work = scratch.get();
#pragma omp parallel num_threads(nt)
  {
    T* xt = work + omp_get_thread_num() * per_thread;
    T *V = xt + nxt, *M = V + nv, *out = M + nm;
#pragma omp for schedule(static)
    for (int64_t grp = 0; grp < pl.groups; ++grp) {
      int64_t b0 = grp * pl.imgs, nb = std::min(pl.imgs, g.B - b0), tiles = nb * g.th * g.tw;
      to_padded_nhwc(x, Cin, Cinp, g, b0, nb, xt);
      for (int64_t t0 = 0; t0 < tiles; t0 += NT) {
        int64_t n = std::min(NT, tiles - t0);
        input_block(xt, Cinp, g, t0, n, NT, V);
        for (int p = 0; p < 36; ++p)  // K = Cin: the padded channels are zero on both sides
          small_gemm(n, Coutp, Cin, V + p * NT * Cinp, Cinp, 1, U + p * Cinp * Coutp, Coutp,
                     M + p * NT * Coutp, Coutp, false);
        for (int64_t t = 0; t < n;) {
          int64_t tt = t0 + t, b = b0 + tt / (g.th * g.tw), y0 = tt / g.tw % g.th * 4,
                  x0 = tt % g.tw * 4;
          T* yt = y + (b * Cout * g.H + y0) * g.W + x0;
          // Four whole tiles of one row starting at a 16-column boundary go out together.
          int64_t run = x0 % 16 == 0 && x0 + 16 <= g.W && y0 + 4 <= g.H && t + 4 <= n ? 4 : 1;
          for (int64_t j = 0; j < run; ++j)
            for (int64_t o = 0; o < Coutp; o += L)
              output_tile(M + (t + j) * Coutp + o, NT * Coutp, out + j * 16 * Coutp + o, Coutp);
          if (run == 4) four_tiles_to_nchw(out, Coutp, bias, Cout, g.H * g.W, g.W, yt);
          else tile_to_nchw(out, Coutp, bias, Cout, g.H * g.W, g.W, std::min<int64_t>(4, g.H - y0),
                            std::min<int64_t>(4, g.W - x0), yt);
          t += run;
        }
      }
    }
  }
}

// dU[36][Op][Cp] = sum over tiles of Z[p]^T V[p], Z = A dY A^T from g, V = B^T d B from x. One
// partial per thread, added in thread order (deterministic for a given thread count, as the
// reference's per-thread weight-gradient partials). (Splitting the channels of the wider side
// between threads instead, each owning its part of dU, drops the 6x6-domain partial and lowered
// the step's live-heap peak by 0.6 MiB, but measured 1-2 MiB more peak resident memory at batch
// 32 and 5-10% slower at C32 16x16: not kept.)
template <class T>
void weight_grad_tiles(const T* x, int64_t C, int64_t Cp, const T* g, int64_t O, int64_t Op,
                       const Geometry& geo, T* dU) {
  constexpr int64_t L = kLanes<T>;
  Plan pl(geo, std::max<int64_t>(24, block_tiles<T>(Cp, Op)));
  int64_t NT = pl.NT;
  int nt = int(std::min<int64_t>(omp_get_max_threads(), pl.groups));
  int64_t nu = 36 * Op * Cp, img = geo.Hp * geo.Wp;
  int64_t nxt = pl.imgs * img * Cp, ngt = pl.imgs * img * Op, nv = 36 * NT * Cp, nz = 36 * NT * Op;
  int64_t per_thread = nxt + ngt + nv + nz;
  Buffer<T> scratch(nt * per_thread + (nt - 1) * nu);
  T* work = scratch.get();
#pragma omp parallel num_threads(nt)
  {
    int tn = omp_get_thread_num();
    T* part = tn == 0 ? dU : work + nt * per_thread + (tn - 1) * nu;  // thread 0 sums into dU
    T *xt = work + tn * per_thread, *gt = xt + nxt, *V = gt + ngt, *Z = V + nv;
    std::fill(part, part + nu, T(0));
#pragma omp for schedule(static)
    for (int64_t grp = 0; grp < pl.groups; ++grp) {
      int64_t b0 = grp * pl.imgs, nb = std::min(pl.imgs, geo.B - b0), tiles = nb * geo.th * geo.tw;
      to_padded_nhwc(x, C, Cp, geo, b0, nb, xt);
      to_padded_nhwc(g, O, Op, geo, b0, nb, gt);
      for (int64_t t0 = 0; t0 < tiles; t0 += NT) {
        int64_t n = std::min(NT, tiles - t0);
        input_block(xt, Cp, geo, t0, n, NT, V);
        for (int64_t t = 0; t < n; ++t) {
          const T* e = gt + geo.corner(t0 + t, Op) + (geo.Wp + 1) * Op;  // output (4ty, 4tx)
          for (int64_t o = 0; o < Op; o += L)
            grad_tile(e + o, geo.Wp * Op, Op, Z + t * Op + o, NT * Op);
        }
        for (int p = 0; p < 36; ++p)
          small_gemm(Op, Cp, n, Z + p * NT * Op, 1, Op, V + p * NT * Cp, Cp, part + p * Op * Cp,
                     Cp, true);
      }
    }
  }
  for (int t = 1; t < nt; ++t) {
    const T* part = work + nt * per_thread + (t - 1) * nu;
#pragma omp parallel for simd schedule(static) if (nu >= 36 * kParallelPairs)
    for (int64_t i = 0; i < nu; ++i) dU[i] += part[i];
  }
}

// dw[o][c][3][3] = G^T dU[o][c] G.
template <class T>
void weights_from_domain(const T* dU, int64_t O, int64_t C, int64_t Op, int64_t Cp, T* dw) {
  using V = Vec<T>;
  constexpr int64_t L = kLanes<T>;
#pragma omp parallel for schedule(static) if (Op * Cp >= kParallelPairs)
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c0 = 0; c0 < Cp; c0 += L) {
      V u[6][6], col[6], t3[3], tmp[3][6], res[3][3];
      for (int p = 0; p < 36; ++p) u[p / 6][p % 6] = load(dU + (p * Op + o) * Cp + c0);
      for (int j = 0; j < 6; ++j) {
        for (int i = 0; i < 6; ++i) col[i] = u[i][j];
        gt6<V, T>(col, t3);
        for (int r = 0; r < 3; ++r) tmp[r][j] = t3[r];
      }
      for (int r = 0; r < 3; ++r) gt6<V, T>(tmp[r], res[r]);
      alignas(64) T lanes[9][L];
      for (int r = 0; r < 3; ++r)
        for (int k = 0; k < 3; ++k) store(lanes[r * 3 + k], res[r][k]);
      for (int64_t l = 0; l < L && c0 + l < C; ++l)
        for (int k = 0; k < 9; ++k) dw[(o * C + c0 + l) * 9 + k] = lanes[k][l];
    }
}

}  // namespace

bool conv3x3_reference() { return g_reference; }
void set_conv3x3_reference(bool on) { g_reference = on; }

template <class T>
void winograd_forward(const T* x, const T* w, const T* bias, T* y, const Conv3x3Dims& d) {
  constexpr int64_t L = kLanes<T>;
  Geometry g(d.B, d.H, d.W);
  int64_t Cp = round_up(d.C, L), Op = round_up(d.O, L);
  Buffer<T> U(36 * Cp * Op);
  transform_weights(w, d.O, d.C, false, Cp, Op, U.get());
  conv_tiles(x, d.C, Cp, U.get(), bias, y, d.O, Op, g);
}

template <class T>
void winograd_backward(const T* x, const T* w, const T* g, T* dx, T* dw, const Conv3x3Dims& d) {
  constexpr int64_t L = kLanes<T>;
  Geometry geo(d.B, d.H, d.W);
  int64_t Cp = round_up(d.C, L), Op = round_up(d.O, L);
  if (dx) {  // the forward convolution of g with the flipped, transposed kernel
    Buffer<T> U(36 * Op * Cp);
    transform_weights(w, d.O, d.C, true, Op, Cp, U.get());
    conv_tiles(g, d.O, Op, U.get(), static_cast<const T*>(nullptr), dx, d.C, Cp, geo);
  }
  if (dw) {
    Buffer<T> dU(36 * Op * Cp);
    weight_grad_tiles(x, d.C, Cp, g, d.O, Op, geo, dU.get());
    weights_from_domain(dU.get(), d.O, d.C, Op, Cp, dw);
  }
}

template void winograd_forward<float>(const float*, const float*, const float*, float*,
                                      const Conv3x3Dims&);
template void winograd_forward<double>(const double*, const double*, const double*, double*,
                                       const Conv3x3Dims&);
template void winograd_backward<float>(const float*, const float*, const float*, float*, float*,
                                       const Conv3x3Dims&);
template void winograd_backward<double>(const double*, const double*, const double*, double*,
                                        double*, const Conv3x3Dims&);

}  // namespace sd::cpu
