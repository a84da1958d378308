// CUDA backend of the norm family (math in kernels/cpu/norm.cpp), f32 or native bf16 (the element
// types and 16-byte accesses in kernels/cuda/norm.cuh): activations of T = f32 or bf16, statistics
// and sums in f32, each bf16 result rounded once. The activations move in 16-byte chunks (4 f32,
// 8 bf16) wherever a row, channel or group is a whole number of chunks and the pointers are
// aligned, else one element at a time; bf16 halves every pass's DRAM traffic.
//   layer_norm fwd: one warp per row; the row is read from global memory once into a shared-memory
//     cache (C <= 3072, kept as T), the mean, centred variance and output passes then read the
//     cache; larger rows re-read global memory (L1/L2 hits). Traffic: read x, write y
//     (sizeof(T) each per element, + 8 bytes of statistics per row).
//   layer_norm bwd (kernels/cuda/norm.cuh, shared with layer_norm_mod): a block takes groups of 8
//     rows; one warp per row computes dx (reads g and x twice: the second read hits L1), then
//     each thread adds the group's rows, in order, into the dgamma/dbeta accumulators of the
//     columns it owns (a third read of the 8 rows, from L1/L2). Each block writes its 2C partial
//     sums and column_sum adds the blocks in a fixed order. Traffic: read x and g once from DRAM,
//     write dx once, plus 2C floats per block (about 4 blocks per SM) written and read back. No
//     atomics: bit-identical on every run.
//   group_norm: one block per (b, g) whose C/G * S values are contiguous; block reductions;
//     cached in shared memory when the group has <= 8192 values. The backward takes per-channel
//     sums (one warp per channel), which give dgamma/dbeta partials per batch (column_sum adds
//     the batches in order: no atomics) and the group sums of the dx formula, then a flat dx
//     pass.
//   scale_shift: elementwise forward (16-byte chunks when the contiguous axis allows it);
//     backward nchw is one warp per (b, c) row, nlc a (32 x W channels x 8 tokens) tile per
//     block over a range of tokens, split further when the tiles are too few to fill the GPU:
//     each split writes its sums (2 floats per (b, c)) and column_sum adds the splits in order.
//     Traffic: read g and x once, write dx once.
#include <climits>
#include <cstdint>

#include "kernels/cuda/norm.cuh"
#include "kernels/scale_shift_dims.h"

namespace sd {
namespace {

using namespace cuda;

// ---------------------------------------------------------------- layer_norm

// One warp per row of C elements, in chunks of W (kVec16<T> when C % W == 0 and the pointers
// are 16-byte aligned, else 1). With `cache` the row is kept as read (sizeof(T) per element) in
// this warp's slice of shared memory for the variance and output passes.
template <class T, int W>
__global__ void __launch_bounds__(kLnWarps * 32)
    layer_norm_fwd(const T* __restrict__ x, const float* __restrict__ gamma,
                   const float* __restrict__ beta, T* __restrict__ y, float* __restrict__ mean,
                   float* __restrict__ rstd, int64_t rows, int C, float eps, bool cache) {
  SD_DYNAMIC_SHARED(float4, smem4);
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  T* row_cache = reinterpret_cast<T*>(smem4) + size_t(warp) * C;
  for (int64_t r = int64_t(blockIdx.x) * kLnWarps + warp; r < rows;
       r += int64_t(gridDim.x) * kLnWarps) {
    const T* xr = x + r * C;
    const T* src = cache ? row_cache : xr;
    float v[W];
    auto [m, rs] = row_moments<W>(xr, row_cache, cache, C, eps);
    for (int i = lane * W; i < C; i += 32 * W) {
      float gm[W], bt[W];
      load<W>(src, i, v);
      load<W>(gamma, i, gm);
      load<W>(beta, i, bt);
#pragma unroll
      for (int e = 0; e < W; ++e) v[e] = (v[e] - m) * rs * gm[e] + bt[e];
      store<W>(y + r * C, i, v);
    }
    if (lane == 0) mean[r] = m, rstd[r] = rs;
  }
}

void layer_norm_forward(OpCall& c) {
  const Tensor& x = c.in[0];
  int64_t C64 = x.dim(-1), rows = x.numel() / C64;
  SD_CHECK(C64 <= INT_MAX, "layer_norm: rows longer than 2^31 are not supported, got ", x.desc());
  int C = int(C64);
  Tensor gamma = f32_param(c.in[1]), beta = f32_param(c.in[2]);
  dispatch_f32_bf16("layer_norm", x, [&](auto t) {
    using T = decltype(t);
    constexpr int V = kVec16<T>;
    bool vec = C % V == 0 && aligned16(x) && aligned16(gamma) && aligned16(beta) &&
               aligned16(c.out[0]);
    bool cache = C <= kLnCacheMax;
    size_t smem = cache ? size_t(kLnWarps) * C * sizeof(T) : 0;
    SD_LAUNCH((vec ? layer_norm_fwd<T, V> : layer_norm_fwd<T, 1>), cuda::grid_for(rows, kLnWarps),
              kLnWarps * 32, smem, cuda::stream(), ptr<T>(x), gamma.data<float>(),
              beta.data<float>(), ptr<T>(c.out[0]), c.out[1].data<float>(),
              c.out[2].data<float>(), rows, C, float(double(c.attrs["eps"])), cache);
  });
}

// The shared layer norm backward (kernels/cuda/norm.cuh) with no conditioning, over all rows as
// one batch: about four blocks per SM, each writing its 2C partials (dgamma then dbeta), which
// column_sum adds in block order.
void layer_norm_backward(GradCall& c) {
  const Tensor& x = c.in[0];
  int C = int(x.dim(-1));
  int64_t rows = x.numel() / C;
  const Tensor& g = c.grad_out[0];
  Tensor gamma = f32_param(c.in[1]);
  F32Grad dgamma(c.grad_in[1]), dbeta(c.grad_in[2]);
  bool want_affine = dgamma.ptr() || dbeta.ptr();
  int64_t blocks = capped_grid((rows + kLnBwdWarps - 1) / kLnBwdWarps, int64_t(sm_count()) * 4);
  Tensor part;
  if (want_affine) part = Tensor::empty({blocks, 2 * int64_t(C)}, DType::F32, Device::CUDA);
  dispatch_f32_bf16("layer_norm", x, [&](auto t) {
    using T = decltype(t);
    bool vec = C % kVec16<T> == 0 && aligned16(x) && aligned16(gamma) && aligned16(g) &&
               aligned16(c.grad_in[0]);
    launch_layer_norm_bwd<T, false>(ptr<T>(x), gamma.data<float>(), nullptr, nullptr, nullptr,
                                    c.out[1].data<float>(), c.out[2].data<float>(), ptr<T>(g),
                                    ptr<T>(c.grad_in[0]),
                                    want_affine ? part.data<float>() : nullptr, 1, blocks, rows,
                                    C, vec);
  });
  const int64_t width = 2 * int64_t(C);
  if (dgamma.ptr()) launch_column_sum(part.data<float>(), blocks, width, 0, C, dgamma.ptr());
  if (dbeta.ptr()) launch_column_sum(part.data<float>(), blocks, width, C, C, dbeta.ptr());
  dgamma.finish();
  dbeta.finish();
}

// ---------------------------------------------------------------- group_norm

// One block per (b, g): the group's n = Cg * S values start at x + (b*G + g) * n; value e belongs
// to channel g*Cg + e/S. Chunks of W (kVec16<T> when S % W == 0: a chunk never straddles two
// channels). With `cache` the group is kept as read (sizeof(T) per value) in shared memory for
// the variance and output passes. Traffic: read x, write y, sizeof(T) each per value.
template <class T, int W>
__global__ void __launch_bounds__(kGnThreads)
    group_norm_fwd(const T* __restrict__ x, const float* __restrict__ gamma,
                   const float* __restrict__ beta, T* __restrict__ y, float* __restrict__ mean,
                   float* __restrict__ rstd, int G, int Cg, int S, float eps, bool cache) {
  SD_DYNAMIC_SHARED(float4, smem4);
  __shared__ float red[32];
  T* cached = reinterpret_cast<T*>(smem4);
  int64_t bg = blockIdx.x;
  int n = Cg * S, ch0 = int(bg % G) * Cg;
  const T* xs = x + bg * n;
  const T* src = cache ? cached : xs;  // each thread re-reads only its own cache slots
  float v[W];
  auto [m, rs] = group_moments<W>(xs, cached, cache, n, eps, red);
  for (int i = threadIdx.x * W; i < n; i += blockDim.x * W) {
    int ch = ch0 + i / S;
    float a = rs * gamma[ch], b = beta[ch];
    load<W>(src, i, v);
#pragma unroll
    for (int e = 0; e < W; ++e) v[e] = (v[e] - m) * a + b;
    store<W>(y + bg * n, i, v);
  }
  if (threadIdx.x == 0) mean[bg] = m, rstd[bg] = rs;
}

// One block per (b, g). Pass 1, one warp per channel: A = sum_s g*xh and Bs = sum_s g, written to
// pa/pb [B, C] (the dgamma/dbeta partials of batch b). Pass 2: the group sums
// sum dxh = sum_c gamma_c Bs_c and sum dxh*xh = sum_c gamma_c A_c from those values (written by
// this block before the barrier), then dx over the group. Chunks of W as the forward. Traffic:
// read x and g (the second read mostly from L2), write dx.
template <class T, int W>
__global__ void __launch_bounds__(kGnThreads)
    group_norm_bwd(const T* __restrict__ x, const float* __restrict__ gamma,
                   const float* __restrict__ mean, const float* __restrict__ rstd,
                   const T* __restrict__ g, T* __restrict__ dx, float* pa, float* pb, int G,
                   int Cg, int S) {
  __shared__ float red[32];
  int64_t bg = blockIdx.x;
  int n = Cg * S, gi = int(bg % G), C = G * Cg, ch0 = gi * Cg;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
  const T *xs = x + bg * n, *gs = g + bg * n;
  float m = mean[bg], rs = rstd[bg];
  float* pab = pa + (bg / G) * C + ch0;
  float* pbb = pb + (bg / G) * C + ch0;
  for (int ci = warp; ci < Cg; ci += nwarps) {
    float a = 0.f, b = 0.f;
    for (int i = lane * W; i < S; i += 32 * W) {
      float xv[W], gv[W];
      load<W>(xs + ci * S, i, xv);
      load<W>(gs + ci * S, i, gv);
#pragma unroll
      for (int e = 0; e < W; ++e) a += gv[e] * (xv[e] - m), b += gv[e];
    }
    a = warp_sum(a) * rs;
    b = warp_sum(b);
    if (lane == 0) pab[ci] = a, pbb[ci] = b;
  }
  __syncthreads();  // pab/pbb written above are visible to the whole block
  if (!dx) return;
  float s1 = 0.f, s2 = 0.f;
  for (int ci = threadIdx.x; ci < Cg; ci += blockDim.x) {
    s1 += gamma[ch0 + ci] * pbb[ci];
    s2 += gamma[ch0 + ci] * pab[ci];
  }
  float inv_n = 1.f / float(n);
  s1 = block_sum(s1, red) * inv_n;
  s2 = block_sum(s2, red) * inv_n;
  for (int i = threadIdx.x * W; i < n; i += blockDim.x * W) {
    float gm = gamma[ch0 + i / S], xv[W], gv[W];
    load<W>(xs, i, xv);
    load<W>(gs, i, gv);
#pragma unroll
    for (int e = 0; e < W; ++e) xv[e] = rs * (gv[e] * gm - s1 - (xv[e] - m) * rs * s2);
    store<W>(dx + bg * n, i, xv);
  }
}

void group_norm_forward(OpCall& c) {
  const Tensor& x = c.in[0];
  GroupNormDims d = group_norm_dims("group_norm", x, c.attrs);
  Tensor gamma = f32_param(c.in[1]), beta = f32_param(c.in[2]);
  int n = d.Cg * d.S;
  bool cache = n <= kGnCacheMax;
  dispatch_f32_bf16("group_norm", x, [&](auto t) {
    using T = decltype(t);
    constexpr int V = kVec16<T>;
    bool vec = d.S % V == 0 && aligned16(x) && aligned16(c.out[0]);
    size_t smem = cache ? size_t(n) * sizeof(T) : 0;
    SD_LAUNCH((vec ? group_norm_fwd<T, V> : group_norm_fwd<T, 1>), unsigned(d.B * d.G), kGnThreads,
              smem, cuda::stream(), ptr<T>(x), gamma.data<float>(), beta.data<float>(),
              ptr<T>(c.out[0]), c.out[1].data<float>(), c.out[2].data<float>(), d.G, d.Cg, d.S,
              float(double(c.attrs["eps"])), cache);
  });
}

void group_norm_backward(GradCall& c) {
  const Tensor& x = c.in[0];
  const Tensor& g = c.grad_out[0];
  GroupNormDims d = group_norm_dims("group_norm", x, c.attrs);
  int64_t C = int64_t(d.G) * d.Cg;
  Tensor gamma = f32_param(c.in[1]);
  Tensor part = Tensor::empty({2, d.B, C}, DType::F32, Device::CUDA);
  float *pa = part.data<float>(), *pb = pa + d.B * C;
  dispatch_f32_bf16("group_norm", x, [&](auto t) {
    using T = decltype(t);
    constexpr int V = kVec16<T>;
    bool vec = d.S % V == 0 && aligned16(x) && aligned16(g) && aligned16(c.grad_in[0]);
    SD_LAUNCH((vec ? group_norm_bwd<T, V> : group_norm_bwd<T, 1>), unsigned(d.B * d.G), kGnThreads,
              0, cuda::stream(), ptr<T>(x), gamma.data<float>(), c.out[1].data<float>(),
              c.out[2].data<float>(), ptr<T>(g), ptr<T>(c.grad_in[0]), pa, pb, d.G, d.Cg,
              d.S);
  });
  for (int k = 1; k <= 2; ++k) {
    F32Grad dp(c.grad_in[k]);
    if (!dp.ptr()) continue;
    launch_column_sum(k == 1 ? pa : pb, d.B, C, 0, C, dp.ptr());
    dp.finish();
  }
}

// ---------------------------------------------------------------- scale_shift

// Channel index bc = b*C + c of element i: nchw x [B, C, inner], nlc x [B, inner, C].
template <bool kNlc>
__device__ __forceinline__ int64_t ss_channel(int64_t i, int64_t C, int64_t inner) {
  if constexpr (kNlc)
    return (i / (inner * C)) * C + i % C;
  else
    return i / inner;
}

// y = x * (1 + scale) + shift, chunks of W elements: W = kVec16<T> when the chunk's elements
// share one channel (nchw, inner % W == 0) or cover W consecutive channels (nlc, C % W == 0),
// else 1. Traffic: read x, write y (sizeof(T) each per element); scale/shift are L1/L2 hits.
template <class T, int W, bool kNlc>
__global__ void scale_shift_fwd(const T* __restrict__ x, const float* __restrict__ sc,
                                const float* __restrict__ sh, T* __restrict__ y, int64_t n,
                                int64_t C, int64_t inner) {
  CUDA_LOOP(k, n / W) {
    int64_t bc = ss_channel<kNlc>(W * k, C, inner);
    float v[W], a[W], b[W];
    load<W>(x, W * k, v);
    if constexpr (kNlc) {
      load<W>(sc, bc, a);
      load<W>(sh, bc, b);
    } else {
#pragma unroll
      for (int e = 0; e < W; ++e) a[e] = sc[bc], b[e] = sh[bc];
    }
#pragma unroll
    for (int e = 0; e < W; ++e) v[e] = v[e] * (1.f + a[e]) + b[e];
    store<W>(y, W * k, v);
  }
}

// nchw backward: one warp per (b, c) row of `inner` values; dx = g * (1 + scale) and the row
// sums of g*x and g. Chunks of W (inner % W == 0). Traffic: read g and x once, write dx once.
template <class T, int W>
__global__ void scale_shift_bwd_nchw(const T* __restrict__ x, const float* __restrict__ sc,
                                     const T* __restrict__ g, T* __restrict__ dx,
                                     float* __restrict__ dsc, float* __restrict__ dsh,
                                     int64_t rows, int64_t inner) {
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  for (int64_t r = int64_t(blockIdx.x) * nw + warp; r < rows; r += int64_t(gridDim.x) * nw) {
    float a = 1.f + sc[r], s_gx = 0.f, s_g = 0.f;
    for (int64_t i = lane * W; i < inner; i += 32 * W) {
      float xv[W], gv[W];
      load<W>(x + r * inner, i, xv);
      load<W>(g + r * inner, i, gv);
#pragma unroll
      for (int e = 0; e < W; ++e) s_gx += gv[e] * xv[e], s_g += gv[e], gv[e] *= a;
      if (dx) store<W>(dx + r * inner, i, gv);
    }
    s_gx = warp_sum(s_gx);
    s_g = warp_sum(s_g);
    if (lane == 0) {
      if (dsc) dsc[r] = s_gx;
      if (dsh) dsh[r] = s_g;
    }
  }
}

// nlc backward: block (32, 8) covers channels [32 W blockIdx.x, +32 W) of batch blockIdx.y, W
// consecutive channels per thread (W = kVec16<T> when C % W == 0, else 1), and tokens
// [blockIdx.z * per, +per); threadIdx.y strides tokens. Row partials meet in shared memory. With
// several token splits (gridDim.z > 1) each block writes its two sums to `part` [splits, 2, B*C]
// (dscale then dshift) for column_sum to add in split order, or, with `part` null
// (SIMDIFF_CUDA_ATOMICS=1), adds them atomically into zeroed dscale/dshift. Traffic: read g and
// x once, write dx once, in 16-byte accesses.
template <class T, int W>
__global__ void scale_shift_bwd_nlc(const T* __restrict__ x, const float* __restrict__ sc,
                                    const T* __restrict__ g, T* __restrict__ dx,
                                    float* __restrict__ dsc, float* __restrict__ dsh,
                                    float* __restrict__ part, int64_t N, int64_t C, int64_t per) {
  __shared__ float red[2][8][W * 32 + 1];  // [sum][token row][e * 32 + threadIdx.x]
  int64_t ch = (int64_t(blockIdx.x) * 32 + threadIdx.x) * W, b = blockIdx.y;
  int64_t n0 = int64_t(blockIdx.z) * per, n1 = n0 + per < N ? n0 + per : N;
  float s_gx[W] = {}, s_g[W] = {};
  if (ch < C) {
    float a[W];
    load<W>(sc + b * C, ch, a);
    for (int64_t nn = n0 + threadIdx.y; nn < n1; nn += 8) {
      int64_t row = (b * N + nn) * C;
      float gv[W], xv[W];
      load<W>(g + row, ch, gv);
      load<W>(x + row, ch, xv);
#pragma unroll
      for (int e = 0; e < W; ++e) s_gx[e] += gv[e] * xv[e], s_g[e] += gv[e], gv[e] *= 1.f + a[e];
      if (dx) store<W>(dx + row, ch, gv);
    }
  }
#pragma unroll
  for (int e = 0; e < W; ++e) {
    red[0][threadIdx.y][e * 32 + threadIdx.x] = s_gx[e];
    red[1][threadIdx.y][e * 32 + threadIdx.x] = s_g[e];
  }
  __syncthreads();
  if (threadIdx.y >= 2 || ch >= C) return;
  int64_t BC = int64_t(gridDim.y) * C;
  float* out = threadIdx.y == 0 ? dsc : dsh;
  for (int e = 0; e < W; ++e) {
    float t = 0.f;
    for (int k = 0; k < 8; ++k) t += red[threadIdx.y][k][e * 32 + threadIdx.x];
    int64_t bc = b * C + ch + e;
    if (part)
      part[(int64_t(blockIdx.z) * 2 + threadIdx.y) * BC + bc] = t;
    else if (out && gridDim.z > 1)
      atomicAdd(out + bc, t);
    else if (out)
      out[bc] = t;
  }
}

void scale_shift_forward(OpCall& c) {
  const Tensor& x = c.in[0];
  ScaleShiftDims d = scale_shift_dims(x, c.attrs);
  Tensor sc = f32_param(c.in[1]), sh = f32_param(c.in[2]);
  int64_t n = x.numel();
  dispatch_f32_bf16("scale_shift", x, [&](auto t) {
    using T = decltype(t);
    constexpr int V = kVec16<T>;
    bool vec = (d.nlc ? d.C : d.inner) % V == 0 && aligned16(x) && aligned16(sc) &&
               aligned16(sh) && aligned16(c.out[0]);
    auto kernel = d.nlc ? (vec ? scale_shift_fwd<T, V, true> : scale_shift_fwd<T, 1, true>)
                        : (vec ? scale_shift_fwd<T, V, false> : scale_shift_fwd<T, 1, false>);
    SD_LAUNCH(kernel, cuda::grid_for(vec ? n / V : n, 256), 256, 0, cuda::stream(), ptr<T>(x),
              sc.data<float>(), sh.data<float>(), ptr<T>(c.out[0]), n, d.C, d.inner);
  });
}

void scale_shift_backward(GradCall& c) {
  const Tensor& x = c.in[0];
  const Tensor& g = c.grad_out[0];
  ScaleShiftDims d = scale_shift_dims(x, c.attrs);
  Tensor sc = f32_param(c.in[1]);
  F32Grad dscale(c.grad_in[1]), dshift(c.grad_in[2]);
  float *dsc = dscale.ptr(), *dsh = dshift.ptr();
  dispatch_f32_bf16("scale_shift", x, [&](auto t) {
    using T = decltype(t);
    constexpr int V = kVec16<T>;
    T* dx = ptr<T>(c.grad_in[0]);
    if (!d.nlc) {
      bool vec = d.inner % V == 0 && aligned16(x) && aligned16(g) && aligned16(c.grad_in[0]);
      SD_LAUNCH((vec ? scale_shift_bwd_nchw<T, V> : scale_shift_bwd_nchw<T, 1>),
                cuda::grid_for(d.B * d.C, 8), 256, 0, cuda::stream(), ptr<T>(x),
                sc.data<float>(), ptr<T>(g), dx, dsc, dsh, d.B * d.C, d.inner);
      return;
    }
    const bool vec = d.C % V == 0 && aligned16(x) && aligned16(g) && aligned16(c.grad_in[0]) &&
                     aligned16(sc);
    const int64_t tile = 32 * (vec ? V : 1);  // channels per block
    // Split the tokens when the (channel tile, batch) grid is under two blocks per SM, keeping
    // at least 64 tokens per split.
    int64_t tiles = (d.C + tile - 1) / tile * d.B;
    int64_t splits = capped_grid(
        std::min<int64_t>((d.inner + 63) / 64, (2 * sm_count() + tiles - 1) / tiles), 65535);
    int64_t per = (d.inner + splits - 1) / splits;
    splits = (d.inner + per - 1) / per;
    SD_CHECK(d.B <= 65535,
             "scale_shift: the cuda nlc backward supports at most 65535 batches, got ", x.desc());
    const bool atomics = splits > 1 && float_atomics();
    if (atomics) {
      if (dsc) dscale.buf.zero_();
      if (dsh) dshift.buf.zero_();
    }
    const int64_t BC = d.B * d.C;
    Tensor part;
    if (splits > 1 && !atomics && (dsc || dsh))
      part = Tensor::empty({splits, 2, BC}, DType::F32, Device::CUDA);
    dim3 grid(unsigned((d.C + tile - 1) / tile), unsigned(d.B), unsigned(splits));
    SD_LAUNCH((vec ? scale_shift_bwd_nlc<T, V> : scale_shift_bwd_nlc<T, 1>), grid, dim3(32, 8), 0,
              cuda::stream(), ptr<T>(x), sc.data<float>(), ptr<T>(g), dx, dsc, dsh,
              part.defined() ? part.data<float>() : nullptr, d.inner, d.C, per);
    if (!part.defined()) return;
    if (dsc) launch_column_sum(part.data<float>(), splits, 2 * BC, 0, BC, dsc);
    if (dsh) launch_column_sum(part.data<float>(), splits, 2 * BC, BC, BC, dsh);
  });
  dscale.finish();
  dshift.finish();
}

}  // namespace

namespace cuda {

bool zero_if_no_grad(GradCall& c) {
  if (c.grad_out[0].defined()) return false;
  for (auto& t : c.grad_in)
    if (t.defined()) t.zero_();
  return true;
}

bool aligned16(const Tensor& t) {
  return !t.defined() || reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0;
}

Tensor f32_param(const Tensor& t) { return t.dtype() == DType::F32 ? t : t.to(DType::F32); }

F32Grad::F32Grad(const Tensor& g)
    : grad(g),
      buf(g.defined() && g.dtype() == DType::BF16 ? Tensor::empty(g.shape(), DType::F32, g.device())
                                                  : g) {}

void F32Grad::finish() const {
  if (grad.defined() && grad.dtype() == DType::BF16) grad.convert_from(buf);
}

GroupNormDims group_norm_dims(const std::string& op, const Tensor& x, const Attrs& a) {
  int64_t B = x.dim(0), C = x.dim(1), G = a["groups"], S = x.numel() / (B * C);
  SD_CHECK(C / G * S <= INT_MAX, op, ": groups of more than 2^31 values are not supported, got ",
           x.desc(), " with groups = ", G);
  return {B, int(G), int(C / G), int(S)};
}

}  // namespace cuda

void register_norm_cuda(Registry& r) {
  r.mutable_at("layer_norm").cuda = {layer_norm_forward, backward_or_zero<layer_norm_backward>};
  r.mutable_at("group_norm").cuda = {group_norm_forward, backward_or_zero<group_norm_backward>};
  r.mutable_at("scale_shift").cuda = {scale_shift_forward, backward_or_zero<scale_shift_backward>};
  // Native bf16 (kernels/registry.h): bf16 activations in and out, f32 statistics and sums.
  for (const char* op : {"layer_norm", "group_norm", "scale_shift"})
    r.mutable_at(op).cuda.bf16 = true;
}

}  // namespace sd
