// One level of the orthonormal 2-D Haar wavelet transform and its inverse.
//   haar_dwt:  x [B, C, H, W] -> [B, 4C, H/2, W/2], output channel band * C + c with bands
//              LL, LH, HL, HH. The first letter is the filter along H (rows, axis 2), the second
//              along W (columns, axis 3); L is the sum, H the difference first minus second
//              sample. For the 2x2 block a = x[2i, 2j], b = x[2i, 2j+1] (next along W),
//              c = x[2i+1, 2j] (next along H), d = x[2i+1, 2j+1]:
//                LL = (a + b + c + d)/2   LH = (a - b + c - d)/2
//                HL = (a + b - c - d)/2   HH = (a - b - c + d)/2
//              so LH > 0 where the left column is the brighter, HL > 0 where the top row is.
//              pywt.dwt2(x, 'haar') over axes (H, W) returns (cA, (cH, cV, cD)) =
//              (LL, (HL, LH, HH)) with these signs: its "horizontal detail" cH is our HL (a
//              difference along H), its "vertical detail" cV our LH (tests/test_hardening.cpp
//              checks a block against values pywt 1.8 gives).
//   haar_idwt: the inverse [B, 4C, h, w] -> [B, C, 2h, 2w]. The 4x4 block matrix M above is
//              symmetric and orthogonal (M = M^T = M^-1), so the inverse applies the same
//              formulas to (LL, LH, HL, HH) to give (a, b, c, d), and each transform's backward
//              is the other's forward.
#include "kernels/haar_backend.h"
#include "kernels/cpu/common.h"

namespace sd {
namespace {

// The butterfly shared by both directions: (p, q, r, s) -> M (p, q, r, s).
template <class T>
inline void haar4(T p, T q, T r, T s, T& o0, T& o1, T& o2, T& o3) {
  T h = T(0.5);
  o0 = ((p + q) + (r + s)) * h;
  o1 = ((p - q) + (r - s)) * h;
  o2 = ((p + q) - (r + s)) * h;
  o3 = ((p - q) - (r - s)) * h;
}

// x [B, C, H, W] (H, W even) -> y [B, 4C, H/2, W/2].
template <class T>
void dwt(const T* x, T* y, int64_t B, int64_t C, int64_t H, int64_t W) {
  int64_t h = H / 2, w = W / 2, plane = h * w;
#pragma omp parallel for
  for (int64_t bc = 0; bc < B * C; ++bc) {
    int64_t b = bc / C, ch = bc % C;
    const T* xp = x + bc * H * W;
    T* band[4];
    for (int k = 0; k < 4; ++k) band[k] = y + ((b * 4 + k) * C + ch) * plane;
    for (int64_t i = 0; i < h; ++i) {
      const T *r0 = xp + 2 * i * W, *r1 = r0 + W;
      for (int64_t j = 0; j < w; ++j)
        haar4(r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1], band[0][i * w + j],
              band[1][i * w + j], band[2][i * w + j], band[3][i * w + j]);
    }
  }
}

// y [B, 4C, h, w] -> x [B, C, 2h, 2w].
template <class T>
void idwt(const T* y, T* x, int64_t B, int64_t C, int64_t h, int64_t w) {
  int64_t W = 2 * w, plane = h * w;
#pragma omp parallel for
  for (int64_t bc = 0; bc < B * C; ++bc) {
    int64_t b = bc / C, ch = bc % C;
    T* xp = x + bc * 4 * plane;
    const T* band[4];
    for (int k = 0; k < 4; ++k) band[k] = y + ((b * 4 + k) * C + ch) * plane;
    for (int64_t i = 0; i < h; ++i) {
      T *r0 = xp + 2 * i * W, *r1 = r0 + W;
      for (int64_t j = 0; j < w; ++j) {
        int64_t k = i * w + j;
        haar4(band[0][k], band[1][k], band[2][k], band[3][k], r0[2 * j], r0[2 * j + 1], r1[2 * j],
              r1[2 * j + 1]);
      }
    }
  }
}

// Runs the transform from `src` to `dst`; `forward` picks dwt (src is [B, C, H, W]) or idwt
// (src is [B, 4C, h, w]).
void haar(const char* op, bool forward, const Tensor& src, const Tensor& dst) {
  cpu::dispatch_float(op, src.dtype(), [&](auto t) {
    using T = decltype(t);
    int64_t B = src.dim(0), C = src.dim(1), H = src.dim(2), W = src.dim(3);
    if (forward)
      dwt(src.data<T>(), dst.data<T>(), B, C, H, W);
    else
      idwt(src.data<T>(), dst.data<T>(), B, C / 4, H, W);
  });
}

}  // namespace

void register_wavelet_ops(Registry& r) {
  OpDef dwt_def{.name = "haar_dwt",
                .doc =
                    "one level of the orthonormal 2-D Haar transform: [B, C, H, W] -> "
                    "[B, 4C, H/2, W/2], band-major channels: band * C + c for the bands LL, "
                    "LH, HL, HH; the first letter is the filter along H (axis 2), the second "
                    "along W (axis 3), L = (p + q)/sqrt2, H = (p - q)/sqrt2 of the pair's first "
                    "and second pixel. PyTorch has none; pywt.dwt2(x, 'haar', axes=(2, 3)) "
                    "returns (cA, (cH, cV, cD)) = (LL, (HL, LH, HH)).",
                .inputs = {{"x", "[B, C, H, W], H and W even"}},
                .outputs = {{"y", "[B, 4C, H/2, W/2]"}}};
  dwt_def.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    const Tensor& x = in[0];
    expect_float("haar_dwt", "x", x);
    expect_ndim("haar_dwt", "x", x, 4);
    SD_CHECK(x.dim(2) % 2 == 0 && x.dim(3) % 2 == 0,
             "haar_dwt: 'x' expected [B, C, H, W] with even H and W, got ", x.desc());
    return std::vector<OutMeta>{{{x.dim(0), 4 * x.dim(1), x.dim(2) / 2, x.dim(3) / 2}, x.dtype()}};
  };
  dwt_def.cpu = haar_backend("haar_dwt", true, haar);
  // W = 6 and 10 take the CUDA scalar path, W = 8 the 16-byte path in f32 (w % 4 == 0), W = 32
  // in f32 and bf16 (w % 8 == 0).
  dwt_def.tests = {{"W=6", {{{2, 3, 4, 6}, false, -2, 2}}},
                   {"W=8", {{{1, 2, 6, 8}, false, -2, 2}}},
                   {"2x2", {{{2, 1, 2, 2}, false, -2, 2}}},
                   {"W=10", {{{1, 5, 2, 10}, false, -2, 2}}},
                   {"W=32", {{{1, 2, 4, 32}, false, -2, 2}}}};
  dwt_def.bench_cases = {{"32x3x512x512", {{{32, 3, 512, 512}}}}};
  dwt_def.saved = {};
  r.add(std::move(dwt_def));

  OpDef idwt_def{.name = "haar_idwt",
                 .doc =
                     "inverse of haar_dwt: [B, 4C, h, w] (bands LL, LH, HL, HH on channels, "
                     "band-major) -> [B, C, 2h, 2w]; exact, since the transform is orthonormal. "
                     "pywt: idwt2((LL, (HL, LH, HH)), 'haar', axes=(2, 3)).",
                 .inputs = {{"x", "[B, 4C, h, w]"}},
                 .outputs = {{"y", "[B, C, 2h, 2w]"}}};
  idwt_def.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    const Tensor& x = in[0];
    expect_float("haar_idwt", "x", x);
    expect_ndim("haar_idwt", "x", x, 4);
    SD_CHECK(x.dim(1) % 4 == 0,
             "haar_idwt: 'x' expected [B, 4C, h, w] with channels divisible by 4, got ", x.desc());
    return std::vector<OutMeta>{{{x.dim(0), x.dim(1) / 4, 2 * x.dim(2), 2 * x.dim(3)}, x.dtype()}};
  };
  idwt_def.cpu = haar_backend("haar_idwt", false, haar);
  // w = 3 and 1 take the CUDA scalar path, w = 4 the 16-byte path in f32, w = 8 in f32 and bf16.
  idwt_def.tests = {{"w=3", {{{2, 12, 2, 3}, false, -2, 2}}},
                    {"w=4", {{{1, 8, 3, 4}, false, -2, 2}}},
                    {"1x1", {{{1, 4, 1, 1}, false, -2, 2}}},
                    {"w=8", {{{1, 8, 2, 8}, false, -2, 2}}}};
  idwt_def.bench_cases = {{"32x12x256x256", {{{32, 12, 256, 256}}}}};
  idwt_def.saved = {};
  r.add(std::move(idwt_def));
}

}  // namespace sd
