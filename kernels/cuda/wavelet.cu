// CUDA backend of the Haar wavelet family (math in kernels/cpu/wavelet.cpp), native f32 and bf16
// (x and y of one dtype; f32 arithmetic, each bf16 result rounded once: kernels/cuda/pack8.cuh).
// One pass, each value read once and written once (2 B per value in bf16, 4 B in f32). Every
// access is 16 bytes wide, V = 16 / sizeof(T) values (4 f32, 8 bf16): haar_dwt's thread takes a
// 2 x 2V tile of one input plane (two 16-byte loads from each of rows 2i and 2i+1) and writes V
// outputs to each band (one 16-byte store each); haar_idwt is the mirror (four loads, four
// stores). When w % V != 0 (or a pointer is not 16-byte aligned) a thread handles one 2x2 block
// with scalar accesses.
// The backward of each transform is the other's forward (the block matrix is orthogonal and
// symmetric).
#include <cstdint>

#include "kernels/haar_backend.h"
#include "kernels/cuda/pack8.cuh"

namespace sd {
namespace {

__device__ __forceinline__ void haar4(float p, float q, float r, float s, float& o0, float& o1,
                                      float& o2, float& o3) {
  o0 = ((p + q) + (r + s)) * 0.5f;
  o1 = ((p - q) + (r - s)) * 0.5f;
  o2 = ((p + q) - (r + s)) * 0.5f;
  o3 = ((p - q) - (r - s)) * 0.5f;
}

// Work item t over [B*C, h, cols): plane bc = b*C + c, output row i, column group j.
struct Item {
  int64_t b, c, i, j;
};
__device__ __forceinline__ Item split(int64_t t, int64_t C, int64_t h, int64_t cols) {
  int64_t j = t % cols, r = t / cols, i = r % h, bc = r / h;
  return {bc / C, bc % C, i, j};
}

// x [B, C, 2h, 2w] -> y [B, 4C, h, w]. kVec: j indexes groups of V output columns (w % V == 0).
template <class T, bool kVec>
__global__ void dwt_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t B, int64_t C,
                           int64_t h, int64_t w) {
  constexpr int V = cuda::kVec16<T>;
  int64_t cols = kVec ? w / V : w, W = 2 * w, plane = h * w;
  CUDA_LOOP(t, B * C * h * cols) {
    Item it = split(t, C, h, cols);
    const T* r0 = x + ((it.b * C + it.c) * 2 * h + 2 * it.i) * W;
    const T* r1 = r0 + W;
    T* band0 = y + (it.b * 4 * C + it.c) * plane + it.i * w;  // band k at + k * C * plane
    int64_t bstride = C * plane;
    if constexpr (kVec) {
      float u[2 * V], v[2 * V], o[4][V];
      cuda::load16(r0 + 2 * V * it.j, u);
      cuda::load16(r0 + 2 * V * it.j + V, u + V);
      cuda::load16(r1 + 2 * V * it.j, v);
      cuda::load16(r1 + 2 * V * it.j + V, v + V);
#pragma unroll
      for (int m = 0; m < V; ++m)
        haar4(u[2 * m], u[2 * m + 1], v[2 * m], v[2 * m + 1], o[0][m], o[1][m], o[2][m], o[3][m]);
      for (int k = 0; k < 4; ++k) cuda::store16(band0 + k * bstride + V * it.j, o[k]);
    } else {
      int64_t j = it.j;
      float o[4];
      haar4(cuda::ld(r0 + 2 * j), cuda::ld(r0 + 2 * j + 1), cuda::ld(r1 + 2 * j),
            cuda::ld(r1 + 2 * j + 1), o[0], o[1], o[2], o[3]);
      for (int k = 0; k < 4; ++k) cuda::st(band0 + k * bstride + j, o[k]);
    }
  }
}

// y [B, 4C, h, w] -> x [B, C, 2h, 2w]. kVec: j indexes groups of V input columns (w % V == 0).
template <class T, bool kVec>
__global__ void idwt_kernel(const T* __restrict__ y, T* __restrict__ x, int64_t B, int64_t C,
                            int64_t h, int64_t w) {
  constexpr int V = cuda::kVec16<T>;
  int64_t cols = kVec ? w / V : w, W = 2 * w, plane = h * w;
  CUDA_LOOP(t, B * C * h * cols) {
    Item it = split(t, C, h, cols);
    T* r0 = x + ((it.b * C + it.c) * 2 * h + 2 * it.i) * W;
    T* r1 = r0 + W;
    const T* band0 = y + (it.b * 4 * C + it.c) * plane + it.i * w;
    int64_t bstride = C * plane;
    if constexpr (kVec) {
      float s[4][V], u[2 * V], v[2 * V];
      for (int k = 0; k < 4; ++k) cuda::load16(band0 + k * bstride + V * it.j, s[k]);
#pragma unroll
      for (int m = 0; m < V; ++m)
        haar4(s[0][m], s[1][m], s[2][m], s[3][m], u[2 * m], u[2 * m + 1], v[2 * m], v[2 * m + 1]);
      cuda::store16(r0 + 2 * V * it.j, u);
      cuda::store16(r0 + 2 * V * it.j + V, u + V);
      cuda::store16(r1 + 2 * V * it.j, v);
      cuda::store16(r1 + 2 * V * it.j + V, v + V);
    } else {
      int64_t j = it.j;
      float o[4];
      haar4(cuda::ld(band0 + j), cuda::ld(band0 + bstride + j), cuda::ld(band0 + 2 * bstride + j),
            cuda::ld(band0 + 3 * bstride + j), o[0], o[1], o[2], o[3]);
      cuda::st(r0 + 2 * j, o[0]);
      cuda::st(r0 + 2 * j + 1, o[1]);
      cuda::st(r1 + 2 * j, o[2]);
      cuda::st(r1 + 2 * j + 1, o[3]);
    }
  }
}

// forward: src [B, C, H, W] -> dst [B, 4C, H/2, W/2]; otherwise src [B, 4C, h, w] -> dst
// [B, C, 2h, 2w].
void haar(const char* op, bool forward, const Tensor& src, const Tensor& dst) {
  const Tensor& full = forward ? src : dst;  // the [B, C, 2h, 2w] side
  int64_t B = full.dim(0), C = full.dim(1), h = full.dim(2) / 2, w = full.dim(3) / 2;
  cuda::dispatch_f32_bf16(op, src, [&](auto t) {
    using T = decltype(t);
    constexpr int V = cuda::kVec16<T>;
    bool vec = w % V == 0 && cuda::aligned16(src.raw()) && cuda::aligned16(dst.raw());
    int64_t items = B * C * h * (vec ? w / V : w);
    auto kernel = forward ? (vec ? dwt_kernel<T, true> : dwt_kernel<T, false>)
                          : (vec ? idwt_kernel<T, true> : idwt_kernel<T, false>);
    SD_LAUNCH(kernel, cuda::grid_for(items, 256), 256, 0, cuda::stream(), cuda::ptr<T>(src),
              cuda::ptr<T>(dst), B, C, h, w);
  });
}

}  // namespace

void register_wavelet_cuda(Registry& r) {
  r.mutable_at("haar_dwt").cuda = haar_backend("haar_dwt", true, haar);
  r.mutable_at("haar_idwt").cuda = haar_backend("haar_idwt", false, haar);
  for (const char* op : {"haar_dwt", "haar_idwt"}) r.mutable_at(op).cuda.bf16 = true;
}

}  // namespace sd
