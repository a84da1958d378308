// CUDA backend of the Haar wavelet family (math in kernels/cpu/wavelet.cpp), f32.
// One pass, each value read once and written once. haar_dwt: a thread takes a 2x4 tile of one
// input plane (two float4 loads, rows 2i and 2i+1) and writes two outputs to each band (float2
// stores); haar_idwt is the mirror (four float2 loads, two float4 stores). When W % 4 != 0 (or a
// pointer is not 16-byte aligned) a thread handles one 2x2 block with scalar accesses.
// The backward of each transform is the other's forward (the block matrix is orthogonal and
// symmetric).
#include <cstdint>

#include "kernels/haar_backend.h"
#include "kernels/cuda/launch.cuh"

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

// x [B, C, 2h, 2w] -> y [B, 4C, h, w]. kVec: j indexes pairs of output columns (w even).
template <bool kVec>
__global__ void dwt_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t B, int64_t C,
                           int64_t h, int64_t w) {
  int64_t cols = kVec ? w / 2 : w, W = 2 * w, plane = h * w;
  CUDA_LOOP(t, B * C * h * cols) {
    Item it = split(t, C, h, cols);
    const float* r0 = x + ((it.b * C + it.c) * 2 * h + 2 * it.i) * W;
    const float* r1 = r0 + W;
    float* band0 = y + (it.b * 4 * C + it.c) * plane + it.i * w;  // band k at + k * C * plane
    int64_t bstride = C * plane;
    if constexpr (kVec) {
      float4 u = reinterpret_cast<const float4*>(r0)[it.j],
             v = reinterpret_cast<const float4*>(r1)[it.j];
      float2 o[4];
      haar4(u.x, u.y, v.x, v.y, o[0].x, o[1].x, o[2].x, o[3].x);
      haar4(u.z, u.w, v.z, v.w, o[0].y, o[1].y, o[2].y, o[3].y);
      for (int k = 0; k < 4; ++k) reinterpret_cast<float2*>(band0 + k * bstride)[it.j] = o[k];
    } else {
      int64_t j = it.j;
      haar4(r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1], band0[j], band0[bstride + j],
            band0[2 * bstride + j], band0[3 * bstride + j]);
    }
  }
}

// y [B, 4C, h, w] -> x [B, C, 2h, 2w]. kVec: j indexes pairs of input columns (w even).
template <bool kVec>
__global__ void idwt_kernel(const float* __restrict__ y, float* __restrict__ x, int64_t B,
                            int64_t C, int64_t h, int64_t w) {
  int64_t cols = kVec ? w / 2 : w, W = 2 * w, plane = h * w;
  CUDA_LOOP(t, B * C * h * cols) {
    Item it = split(t, C, h, cols);
    float* r0 = x + ((it.b * C + it.c) * 2 * h + 2 * it.i) * W;
    float* r1 = r0 + W;
    const float* band0 = y + (it.b * 4 * C + it.c) * plane + it.i * w;
    int64_t bstride = C * plane;
    if constexpr (kVec) {
      float2 s[4];
      for (int k = 0; k < 4; ++k) s[k] = reinterpret_cast<const float2*>(band0 + k * bstride)[it.j];
      float4 u, v;
      haar4(s[0].x, s[1].x, s[2].x, s[3].x, u.x, u.y, v.x, v.y);
      haar4(s[0].y, s[1].y, s[2].y, s[3].y, u.z, u.w, v.z, v.w);
      reinterpret_cast<float4*>(r0)[it.j] = u;
      reinterpret_cast<float4*>(r1)[it.j] = v;
    } else {
      int64_t j = it.j;
      haar4(band0[j], band0[bstride + j], band0[2 * bstride + j], band0[3 * bstride + j], r0[2 * j],
            r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]);
    }
  }
}

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0; }

// forward: src [B, C, H, W] -> dst [B, 4C, H/2, W/2]; otherwise src [B, 4C, h, w] -> dst
// [B, C, 2h, 2w].
void haar(const char* op, bool forward, const Tensor& src, const Tensor& dst) {
  SD_CHECK(src.dtype() == DType::F32, op, ": the cuda backend computes this op in f32, got ",
           src.desc());
  const Tensor& full = forward ? src : dst;  // the [B, C, 2h, 2w] side
  int64_t B = full.dim(0), C = full.dim(1), h = full.dim(2) / 2, w = full.dim(3) / 2;
  bool vec = w % 2 == 0 && aligned16(src) && aligned16(dst);
  int64_t items = B * C * h * (vec ? w / 2 : w);
  auto kernel = forward ? (vec ? dwt_kernel<true> : dwt_kernel<false>)
                        : (vec ? idwt_kernel<true> : idwt_kernel<false>);
  SD_LAUNCH(kernel, cuda::grid_for(items, 256), 256, 0, cuda::stream(), src.data<float>(),
            dst.data<float>(), B, C, h, w);
}

}  // namespace

void register_wavelet_cuda(Registry& r) {
  r.mutable_at("haar_dwt").cuda = haar_backend("haar_dwt", true, haar);
  r.mutable_at("haar_idwt").cuda = haar_backend("haar_idwt", false, haar);
}

}  // namespace sd
