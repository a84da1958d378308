// CUDA backend of the norm family (math in kernels/cpu/norm.cpp), f32, statistics in fp32.
//   layer_norm fwd: one warp per row; the row is read from global memory once into a shared-memory
//     cache (C <= 3072), the mean, centred variance and output passes then read the cache; larger
//     rows re-read global memory (L1/L2 hits). float4 loads when C % 4 == 0. Traffic: read x,
//     write y (+ 8 bytes of statistics per row).
//   layer_norm bwd: a block takes groups of 8 rows; one warp per row computes dx (reads g and x
//     twice: the second read hits L1), then each thread adds the group's rows, in order, into
//     the dgamma/dbeta accumulators of the columns it owns (a third read of the 8 rows, from
//     L1/L2). Each block writes its 2C partial sums and column_sum adds the blocks in a fixed
//     order. Traffic: read x and g once from DRAM, write dx once, plus 2C floats per block
//     (about 4 blocks per SM) written and read back. No atomics: bit-identical on every run.
//   group_norm: one block per (b, g) whose C/G * S values are contiguous; block reductions;
//     cached in shared memory when the group has <= 8192 values. The backward takes per-channel
//     sums (one warp per channel), which give dgamma/dbeta partials per batch (column_sum adds
//     the batches in order: no atomics) and the group sums of the dx formula, then a flat dx
//     pass.
//   scale_shift: elementwise forward (float4 when the contiguous axis allows it); backward nchw
//     is one warp per (b, c) row, nlc a (32 channels x 8 token) tile per block over a range of
//     tokens, split further when B * C/32 blocks are too few to fill the GPU: each split writes
//     its sums (2 floats per (b, c)) and column_sum adds the splits in order. Traffic: read g
//     and x once, write dx once.
#include <climits>
#include <cstdint>

#include "kernels/cuda/norm.cuh"
#include "kernels/scale_shift_dims.h"

namespace sd {
namespace {

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw()) % 16 == 0; }

using namespace cuda;

// ---------------------------------------------------------------- layer_norm


template <bool kVec>
__global__ void __launch_bounds__(kLnWarps * 32)
    layer_norm_fwd(const float* __restrict__ x, const float* __restrict__ gamma,
                   const float* __restrict__ beta, float* __restrict__ y, float* __restrict__ mean,
                   float* __restrict__ rstd, int64_t rows, int C, float eps, bool cache) {
  SD_DYNAMIC_SHARED(float4, smem4);
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* row_cache = reinterpret_cast<float*>(smem4) + size_t(warp) * C;
  float inv_c = 1.f / float(C);
  for (int64_t r = int64_t(blockIdx.x) * kLnWarps + warp; r < rows;
       r += int64_t(gridDim.x) * kLnWarps) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    // Each lane reads back only the cache slots it wrote itself: no barrier needed.
    const float* src = cache ? row_cache : xr;
    float s = 0.f, q = 0.f;
    if constexpr (kVec) {
      const float4* src4 = reinterpret_cast<const float4*>(src);
      for (int i = lane; i < C / 4; i += 32) {
        float4 v = reinterpret_cast<const float4*>(xr)[i];
        if (cache) reinterpret_cast<float4*>(row_cache)[i] = v;
        s += (v.x + v.y) + (v.z + v.w);
      }
      float m = warp_sum(s) * inv_c;
      for (int i = lane; i < C / 4; i += 32) {
        float4 v = src4[i];
        q += (sq(v.x - m) + sq(v.y - m)) + (sq(v.z - m) + sq(v.w - m));
      }
      float rs = rsqrtf(warp_sum(q) * inv_c + eps);
      for (int i = lane; i < C / 4; i += 32) {
        float4 v = src4[i], gm = reinterpret_cast<const float4*>(gamma)[i],
               bt = reinterpret_cast<const float4*>(beta)[i];
        reinterpret_cast<float4*>(yr)[i] =
            make_float4((v.x - m) * rs * gm.x + bt.x, (v.y - m) * rs * gm.y + bt.y,
                        (v.z - m) * rs * gm.z + bt.z, (v.w - m) * rs * gm.w + bt.w);
      }
      if (lane == 0) mean[r] = m, rstd[r] = rs;
    } else {
      for (int i = lane; i < C; i += 32) {
        float v = xr[i];
        if (cache) row_cache[i] = v;
        s += v;
      }
      float m = warp_sum(s) * inv_c;
      for (int i = lane; i < C; i += 32) q += sq(src[i] - m);
      float rs = rsqrtf(warp_sum(q) * inv_c + eps);
      for (int i = lane; i < C; i += 32) yr[i] = (src[i] - m) * rs * gamma[i] + beta[i];
      if (lane == 0) mean[r] = m, rstd[r] = rs;
    }
  }
}

// dx = rs * (dxh - mean(dxh) - xh * mean(dxh * xh)), dxh = g * gamma; dgamma = sum_r g * xh,
// dbeta = sum_r g. The block takes groups of kLnBwdWarps rows (group k starts at row
// (blockIdx.x + k * gridDim.x) * kLnBwdWarps). Phase 1, one warp per row of the group: the row's
// two sums, then dx (`dx` null: not wanted, phase 1 is skipped). Phase 2 (`part` null: neither
// dgamma nor dbeta is wanted): thread t owns columns t, t + blockDim.x, ... and adds the group's
// rows to its dgamma/dbeta accumulators in row order, so the block's partials, and after
// column_sum over the blocks the gradients, are the same on every run. Phase 2 re-reads the rows
// phase 1 has just read (L1/L2 hits). `acc` (2C floats: dgamma then dbeta) is shared memory
// (kSharedAcc), else the block's slice of `part` [blocks, 2C], which receives the result.
// kAtomics (SIMDIFF_CUDA_ATOMICS=1) instead adds each row into `acc` in phase 1 with atomics,
// the block's warps in whatever order they run; phase 1 then runs even without dx.
template <bool kVec, bool kSharedAcc, bool kAtomics>
__global__ void __launch_bounds__(kLnBwdWarps * 32)
    layer_norm_bwd(const float* __restrict__ x, const float* __restrict__ gamma,
                   const float* __restrict__ mean, const float* __restrict__ rstd,
                   const float* __restrict__ g, float* __restrict__ dx, float* part, int64_t rows,
                   int C) {
  SD_DYNAMIC_SHARED(float4, smem4);
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const bool want_acc = part != nullptr;
  float* acc = kSharedAcc ? reinterpret_cast<float*>(smem4)
                          : (want_acc ? part + size_t(blockIdx.x) * 2 * C : nullptr);
  if (want_acc) {
    for (int i = threadIdx.x; i < 2 * C; i += blockDim.x) acc[i] = 0.f;
    __syncthreads();
  }
  const bool atomics = kAtomics && want_acc;
  float inv_c = 1.f / float(C);
  for (int64_t r0 = int64_t(blockIdx.x) * kLnBwdWarps; r0 < rows;
       r0 += int64_t(gridDim.x) * kLnBwdWarps) {
    const int64_t r = r0 + warp, r1 = r0 + kLnBwdWarps < rows ? r0 + kLnBwdWarps : rows;
    // ---- phase 1: this warp's row
    if (r < rows && (dx || atomics)) {
      const float *xr = x + r * C, *gr = g + r * C;
      float m = mean[r], rs = rstd[r], s1 = 0.f, s2 = 0.f;
      if constexpr (kVec) {
        for (int i = lane; i < C / 4; i += 32) {
          float4 xv = reinterpret_cast<const float4*>(xr)[i],
                 gv = reinterpret_cast<const float4*>(gr)[i],
                 gm = reinterpret_cast<const float4*>(gamma)[i];
          float xh[4] = {(xv.x - m) * rs, (xv.y - m) * rs, (xv.z - m) * rs, (xv.w - m) * rs};
          float gg[4] = {gv.x, gv.y, gv.z, gv.w}, ga[4] = {gm.x, gm.y, gm.z, gm.w};
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            s1 += gg[k] * ga[k];
            s2 += gg[k] * ga[k] * xh[k];
            if (atomics) {
              atomicAdd(acc + 4 * i + k, gg[k] * xh[k]);
              atomicAdd(acc + C + 4 * i + k, gg[k]);
            }
          }
        }
        s1 = warp_sum(s1) * inv_c;
        s2 = warp_sum(s2) * inv_c;
        if (dx)
          for (int i = lane; i < C / 4; i += 32) {
            float4 xv = reinterpret_cast<const float4*>(xr)[i],
                   gv = reinterpret_cast<const float4*>(gr)[i],
                   gm = reinterpret_cast<const float4*>(gamma)[i];
            reinterpret_cast<float4*>(dx + r * C)[i] =
                make_float4(rs * (gv.x * gm.x - s1 - (xv.x - m) * rs * s2),
                            rs * (gv.y * gm.y - s1 - (xv.y - m) * rs * s2),
                            rs * (gv.z * gm.z - s1 - (xv.z - m) * rs * s2),
                            rs * (gv.w * gm.w - s1 - (xv.w - m) * rs * s2));
          }
      } else {
        for (int i = lane; i < C; i += 32) {
          float xh = (xr[i] - m) * rs, gi = gr[i], dxh = gi * gamma[i];
          s1 += dxh;
          s2 += dxh * xh;
          if (atomics) {
            atomicAdd(acc + i, gi * xh);
            atomicAdd(acc + C + i, gi);
          }
        }
        s1 = warp_sum(s1) * inv_c;
        s2 = warp_sum(s2) * inv_c;
        if (dx)
          for (int i = lane; i < C; i += 32)
            dx[r * C + i] = rs * (gr[i] * gamma[i] - s1 - (xr[i] - m) * rs * s2);
      }
    }
    // ---- phase 2: the group's rows, in order, into this thread's columns
    if (kAtomics || !want_acc) continue;
    if constexpr (kVec) {
      for (int q = threadIdx.x; q < C / 4; q += blockDim.x) {
        float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
        for (int64_t rr = r0; rr < r1; ++rr) {
          float m = mean[rr], rs = rstd[rr];
          float4 xv = reinterpret_cast<const float4*>(x + rr * C)[q],
                 gv = reinterpret_cast<const float4*>(g + rr * C)[q];
          a.x += gv.x * ((xv.x - m) * rs), a.y += gv.y * ((xv.y - m) * rs);
          a.z += gv.z * ((xv.z - m) * rs), a.w += gv.w * ((xv.w - m) * rs);
          b.x += gv.x, b.y += gv.y, b.z += gv.z, b.w += gv.w;
        }
        float* ac = acc + 4 * q;
        ac[0] += a.x, ac[1] += a.y, ac[2] += a.z, ac[3] += a.w;
        ac[C] += b.x, ac[C + 1] += b.y, ac[C + 2] += b.z, ac[C + 3] += b.w;
      }
    } else {
      for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float a = 0.f, b = 0.f;
        for (int64_t rr = r0; rr < r1; ++rr) {
          float gi = g[rr * C + i];
          a += gi * ((x[rr * C + i] - mean[rr]) * rstd[rr]);
          b += gi;
        }
        acc[i] += a;
        acc[C + i] += b;
      }
    }
  }
  if (kSharedAcc && want_acc) {
    __syncthreads();
    for (int i = threadIdx.x; i < 2 * C; i += blockDim.x)
      part[size_t(blockIdx.x) * 2 * C + i] = acc[i];
  }
}

void layer_norm_forward(OpCall& c) {
  const Tensor& x = c.in[0];
  check_f32("layer_norm", x);
  int64_t C64 = x.dim(-1), rows = x.numel() / C64;
  SD_CHECK(C64 <= INT_MAX, "layer_norm: rows longer than 2^31 are not supported, got ", x.desc());
  int C = int(C64);
  bool vec =
      C % 4 == 0 && aligned16(x) && aligned16(c.in[1]) && aligned16(c.in[2]) && aligned16(c.out[0]);
  bool cache = C <= kLnCacheMax;
  size_t smem = cache ? size_t(kLnWarps) * C * sizeof(float) : 0;
  unsigned blocks = cuda::grid_for(rows, kLnWarps);
  auto kernel = vec ? layer_norm_fwd<true> : layer_norm_fwd<false>;
  SD_LAUNCH(kernel, blocks, kLnWarps * 32, smem, cuda::stream(), x.data<float>(),
            c.in[1].data<float>(), c.in[2].data<float>(), c.out[0].data<float>(),
            c.out[1].data<float>(), c.out[2].data<float>(), rows, C, float(double(c.attrs["eps"])),
            cache);
}

void layer_norm_backward(GradCall& c) {
  const Tensor& x = c.in[0];
  int C = int(x.dim(-1));
  int64_t rows = x.numel() / C;
  const Tensor& g = c.grad_out[0];
  bool want_affine = c.grad_in[1].defined() || c.grad_in[2].defined();
  Tensor& dx = c.grad_in[0];
  bool vec = C % 4 == 0 && aligned16(x) && aligned16(c.in[1]) && aligned16(g) &&
             (!dx.defined() || aligned16(dx));
  // About four blocks per SM: each writes 2C partials, which column_sum adds in block order.
  int64_t blocks = capped_grid((rows + kLnBwdWarps - 1) / kLnBwdWarps, int64_t(sm_count()) * 4);
  bool shared_acc = C <= kLnAccMax;
  Tensor part;
  if (want_affine) part = Tensor::empty({blocks, 2 * int64_t(C)}, DType::F32, Device::CUDA);
  size_t smem = want_affine && shared_acc ? size_t(2) * C * sizeof(float) : 0;
  using Kernel = decltype(&layer_norm_bwd<true, true, true>);
  static const Kernel kernels[2][2][2] = {
      {{layer_norm_bwd<false, false, false>, layer_norm_bwd<false, false, true>},
       {layer_norm_bwd<false, true, false>, layer_norm_bwd<false, true, true>}},
      {{layer_norm_bwd<true, false, false>, layer_norm_bwd<true, false, true>},
       {layer_norm_bwd<true, true, false>, layer_norm_bwd<true, true, true>}}};
  Kernel kernel = kernels[vec][shared_acc][float_atomics()];
  SD_LAUNCH(kernel, unsigned(blocks), kLnBwdWarps * 32, smem, cuda::stream(), x.data<float>(),
            c.in[1].data<float>(), c.out[1].data<float>(), c.out[2].data<float>(), g.data<float>(),
            dx.defined() ? dx.data<float>() : nullptr, want_affine ? part.data<float>() : nullptr,
            rows, C);
  for (int k = 1; k <= 2; ++k)
    if (c.grad_in[k].defined())
      launch_column_sum(part.data<float>(), blocks, 2 * int64_t(C), k == 1 ? 0 : C, C,
                        c.grad_in[k].data<float>());
}

// ---------------------------------------------------------------- group_norm


// One block per (b, g): the group's n = Cg * S values start at x + (b*G + g) * n; value e belongs
// to channel g*Cg + e/S. With kVec (S % 4 == 0) a float4 never straddles two channels.
template <bool kVec>
__global__ void __launch_bounds__(kGnThreads)
    group_norm_fwd(const float* __restrict__ x, const float* __restrict__ gamma,
                   const float* __restrict__ beta, float* __restrict__ y, float* __restrict__ mean,
                   float* __restrict__ rstd, int G, int Cg, int S, float eps, bool cache) {
  SD_DYNAMIC_SHARED(float4, smem4);
  __shared__ float red[32];
  float* cached = reinterpret_cast<float*>(smem4);
  int64_t bg = blockIdx.x;
  int n = Cg * S, ch0 = int(bg % G) * Cg;
  const float* xs = x + bg * n;
  float* ys = y + bg * n;
  const float* src = cache ? cached : xs;  // each thread re-reads only its own cache slots
  float inv_n = 1.f / float(n), s = 0.f, q = 0.f;
  if constexpr (kVec) {
    const float4* src4 = reinterpret_cast<const float4*>(src);
    for (int i = threadIdx.x; i < n / 4; i += blockDim.x) {
      float4 v = reinterpret_cast<const float4*>(xs)[i];
      if (cache) reinterpret_cast<float4*>(cached)[i] = v;
      s += (v.x + v.y) + (v.z + v.w);
    }
    float m = block_sum(s, red) * inv_n;
    for (int i = threadIdx.x; i < n / 4; i += blockDim.x) {
      float4 v = src4[i];
      q += (sq(v.x - m) + sq(v.y - m)) + (sq(v.z - m) + sq(v.w - m));
    }
    float rs = rsqrtf(block_sum(q, red) * inv_n + eps);
    for (int i = threadIdx.x; i < n / 4; i += blockDim.x) {
      int ch = ch0 + 4 * i / S;
      float a = rs * gamma[ch], b = beta[ch];
      float4 v = src4[i];
      reinterpret_cast<float4*>(ys)[i] =
          make_float4((v.x - m) * a + b, (v.y - m) * a + b, (v.z - m) * a + b, (v.w - m) * a + b);
    }
    if (threadIdx.x == 0) mean[bg] = m, rstd[bg] = rs;
  } else {
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      float v = xs[i];
      if (cache) cached[i] = v;
      s += v;
    }
    float m = block_sum(s, red) * inv_n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) q += sq(src[i] - m);
    float rs = rsqrtf(block_sum(q, red) * inv_n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      int ch = ch0 + i / S;
      ys[i] = (src[i] - m) * (rs * gamma[ch]) + beta[ch];
    }
    if (threadIdx.x == 0) mean[bg] = m, rstd[bg] = rs;
  }
}

// One block per (b, g). Pass 1, one warp per channel: A = sum_s g*xh and Bs = sum_s g, written to
// pa/pb [B, C] (the dgamma/dbeta partials of batch b). Pass 2: the group sums
// sum dxh = sum_c gamma_c Bs_c and sum dxh*xh = sum_c gamma_c A_c from those values (written by
// this block before the barrier), then dx over the group.
template <bool kVec>
__global__ void __launch_bounds__(kGnThreads)
    group_norm_bwd(const float* __restrict__ x, const float* __restrict__ gamma,
                   const float* __restrict__ mean, const float* __restrict__ rstd,
                   const float* __restrict__ g, float* __restrict__ dx, float* pa, float* pb, int G,
                   int Cg, int S) {
  __shared__ float red[32];
  int64_t bg = blockIdx.x;
  int n = Cg * S, gi = int(bg % G), C = G * Cg, ch0 = gi * Cg;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
  const float *xs = x + bg * n, *gs = g + bg * n;
  float m = mean[bg], rs = rstd[bg];
  float* pab = pa + (bg / G) * C + ch0;
  float* pbb = pb + (bg / G) * C + ch0;
  for (int ci = warp; ci < Cg; ci += nwarps) {
    float a = 0.f, b = 0.f;
    if constexpr (kVec) {
      const float4 *xc = reinterpret_cast<const float4*>(xs + ci * S),
                   *gc = reinterpret_cast<const float4*>(gs + ci * S);
      for (int i = lane; i < S / 4; i += 32) {
        float4 xv = xc[i], gv = gc[i];
        a += (gv.x * (xv.x - m) + gv.y * (xv.y - m)) + (gv.z * (xv.z - m) + gv.w * (xv.w - m));
        b += (gv.x + gv.y) + (gv.z + gv.w);
      }
    } else {
      for (int i = lane; i < S; i += 32) {
        float gv = gs[ci * S + i];
        a += gv * (xs[ci * S + i] - m);
        b += gv;
      }
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
  float* dxs = dx + bg * n;
  if constexpr (kVec) {
    for (int i = threadIdx.x; i < n / 4; i += blockDim.x) {
      float gm = gamma[ch0 + 4 * i / S];
      float4 xv = reinterpret_cast<const float4*>(xs)[i],
             gv = reinterpret_cast<const float4*>(gs)[i];
      reinterpret_cast<float4*>(dxs)[i] = make_float4(rs * (gv.x * gm - s1 - (xv.x - m) * rs * s2),
                                                      rs * (gv.y * gm - s1 - (xv.y - m) * rs * s2),
                                                      rs * (gv.z * gm - s1 - (xv.z - m) * rs * s2),
                                                      rs * (gv.w * gm - s1 - (xv.w - m) * rs * s2));
    }
  } else {
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      dxs[i] = rs * (gs[i] * gamma[ch0 + i / S] - s1 - (xs[i] - m) * rs * s2);
  }
}

void group_norm_forward(OpCall& c) {
  const Tensor& x = c.in[0];
  check_f32("group_norm", x);
  GroupNormDims d = group_norm_dims("group_norm", x, c.attrs);
  bool vec = d.S % 4 == 0 && aligned16(x) && aligned16(c.out[0]);
  int n = d.Cg * d.S;
  bool cache = n <= kGnCacheMax;
  size_t smem = cache ? size_t(n) * sizeof(float) : 0;
  auto kernel = vec ? group_norm_fwd<true> : group_norm_fwd<false>;
  SD_LAUNCH(kernel, unsigned(d.B * d.G), kGnThreads, smem, cuda::stream(), x.data<float>(),
            c.in[1].data<float>(), c.in[2].data<float>(), c.out[0].data<float>(),
            c.out[1].data<float>(), c.out[2].data<float>(), d.G, d.Cg, d.S,
            float(double(c.attrs["eps"])), cache);
}

void group_norm_backward(GradCall& c) {
  const Tensor& x = c.in[0];
  const Tensor& g = c.grad_out[0];
  GroupNormDims d = group_norm_dims("group_norm", x, c.attrs);
  int64_t C = int64_t(d.G) * d.Cg;
  Tensor& dx = c.grad_in[0];
  bool vec = d.S % 4 == 0 && aligned16(x) && aligned16(g) && (!dx.defined() || aligned16(dx));
  Tensor part = Tensor::empty({2, d.B, C}, DType::F32, Device::CUDA);
  float *pa = part.data<float>(), *pb = pa + d.B * C;
  auto kernel = vec ? group_norm_bwd<true> : group_norm_bwd<false>;
  SD_LAUNCH(kernel, unsigned(d.B * d.G), kGnThreads, 0, cuda::stream(), x.data<float>(),
            c.in[1].data<float>(), c.out[1].data<float>(), c.out[2].data<float>(), g.data<float>(),
            dx.defined() ? dx.data<float>() : nullptr, pa, pb, d.G, d.Cg, d.S);
  for (int k = 1; k <= 2; ++k)
    if (c.grad_in[k].defined())
      launch_column_sum(k == 1 ? pa : pb, d.B, C, 0, C, c.grad_in[k].data<float>());
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

// y = x * (1 + scale) + shift. kVec: 4 consecutive elements share one channel (nchw, inner % 4
// == 0) or cover 4 consecutive channels (nlc, C % 4 == 0).
template <bool kNlc, bool kVec>
__global__ void scale_shift_fwd(const float* __restrict__ x, const float* __restrict__ sc,
                                const float* __restrict__ sh, float* __restrict__ y, int64_t n,
                                int64_t C, int64_t inner) {
  if constexpr (kVec) {
    CUDA_LOOP(k, n / 4) {
      int64_t bc = ss_channel<kNlc>(4 * k, C, inner);
      float4 v = reinterpret_cast<const float4*>(x)[k], a, b;
      if constexpr (kNlc) {
        a = *reinterpret_cast<const float4*>(sc + bc);
        b = *reinterpret_cast<const float4*>(sh + bc);
      } else {
        a = make_float4(sc[bc], sc[bc], sc[bc], sc[bc]);
        b = make_float4(sh[bc], sh[bc], sh[bc], sh[bc]);
      }
      reinterpret_cast<float4*>(y)[k] =
          make_float4(v.x * (1.f + a.x) + b.x, v.y * (1.f + a.y) + b.y, v.z * (1.f + a.z) + b.z,
                      v.w * (1.f + a.w) + b.w);
    }
  } else {
    CUDA_LOOP(i, n) {
      int64_t bc = ss_channel<kNlc>(i, C, inner);
      y[i] = x[i] * (1.f + sc[bc]) + sh[bc];
    }
  }
}

// nchw backward: one warp per (b, c) row of `inner` values; dx = g * (1 + scale) and the row
// sums of g*x and g, one read of g and x.
template <bool kVec>
__global__ void scale_shift_bwd_nchw(const float* __restrict__ x, const float* __restrict__ sc,
                                     const float* __restrict__ g, float* __restrict__ dx,
                                     float* __restrict__ dsc, float* __restrict__ dsh, int64_t rows,
                                     int64_t inner) {
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
  for (int64_t r = int64_t(blockIdx.x) * nw + warp; r < rows; r += int64_t(gridDim.x) * nw) {
    const float *xr = x + r * inner, *gr = g + r * inner;
    float a = 1.f + sc[r], s_gx = 0.f, s_g = 0.f;
    if constexpr (kVec) {
      for (int64_t i = lane; i < inner / 4; i += 32) {
        float4 xv = reinterpret_cast<const float4*>(xr)[i],
               gv = reinterpret_cast<const float4*>(gr)[i];
        s_gx += (gv.x * xv.x + gv.y * xv.y) + (gv.z * xv.z + gv.w * xv.w);
        s_g += (gv.x + gv.y) + (gv.z + gv.w);
        if (dx)
          reinterpret_cast<float4*>(dx + r * inner)[i] =
              make_float4(gv.x * a, gv.y * a, gv.z * a, gv.w * a);
      }
    } else {
      for (int64_t i = lane; i < inner; i += 32) {
        float gv = gr[i];
        s_gx += gv * xr[i];
        s_g += gv;
        if (dx) dx[r * inner + i] = gv * a;
      }
    }
    s_gx = warp_sum(s_gx);
    s_g = warp_sum(s_g);
    if (lane == 0) {
      if (dsc) dsc[r] = s_gx;
      if (dsh) dsh[r] = s_g;
    }
  }
}

// nlc backward: block (32, 8) covers channels [32*blockIdx.x, +32) of batch blockIdx.y and tokens
// [blockIdx.z * per, +per); threadIdx.y strides tokens. Row partials meet in shared memory. With
// several token splits (gridDim.z > 1) each block writes its two sums to `part` [splits, 2, B*C]
// (dscale then dshift) for column_sum to add in split order, or, with `part` null
// (SIMDIFF_CUDA_ATOMICS=1), adds them atomically into zeroed dscale/dshift.
__global__ void scale_shift_bwd_nlc(const float* __restrict__ x, const float* __restrict__ sc,
                                    const float* __restrict__ g, float* __restrict__ dx,
                                    float* __restrict__ dsc, float* __restrict__ dsh,
                                    float* __restrict__ part, int64_t N, int64_t C, int64_t per) {
  __shared__ float red[2][8][33];
  int64_t ch = int64_t(blockIdx.x) * 32 + threadIdx.x, b = blockIdx.y;
  int64_t n0 = int64_t(blockIdx.z) * per, n1 = n0 + per < N ? n0 + per : N;
  float s_gx = 0.f, s_g = 0.f;
  if (ch < C) {
    float a = 1.f + sc[b * C + ch];
    for (int64_t nn = n0 + threadIdx.y; nn < n1; nn += 8) {
      int64_t i = (b * N + nn) * C + ch;
      float gv = g[i];
      s_gx += gv * x[i];
      s_g += gv;
      if (dx) dx[i] = gv * a;
    }
  }
  red[0][threadIdx.y][threadIdx.x] = s_gx;
  red[1][threadIdx.y][threadIdx.x] = s_g;
  __syncthreads();
  if (threadIdx.y >= 2 || ch >= C) return;
  float t = 0.f;
  for (int k = 0; k < 8; ++k) t += red[threadIdx.y][k][threadIdx.x];
  int64_t bc = b * C + ch, BC = int64_t(gridDim.y) * C;
  if (part) {
    part[(int64_t(blockIdx.z) * 2 + threadIdx.y) * BC + bc] = t;
    return;
  }
  float* out = threadIdx.y == 0 ? dsc : dsh;
  if (!out) return;
  if (gridDim.z > 1)
    atomicAdd(out + bc, t);
  else
    out[bc] = t;
}

void scale_shift_forward(OpCall& c) {
  const Tensor& x = c.in[0];
  check_f32("scale_shift", x);
  ScaleShiftDims d = scale_shift_dims(x, c.attrs);
  int64_t n = x.numel();
  bool vec = (d.nlc ? d.C : d.inner) % 4 == 0 && aligned16(x) && aligned16(c.in[1]) &&
             aligned16(c.in[2]) && aligned16(c.out[0]);
  auto kernel = d.nlc ? (vec ? scale_shift_fwd<true, true> : scale_shift_fwd<true, false>)
                      : (vec ? scale_shift_fwd<false, true> : scale_shift_fwd<false, false>);
  SD_LAUNCH(kernel, cuda::grid_for(vec ? n / 4 : n, 256), 256, 0, cuda::stream(), x.data<float>(),
            c.in[1].data<float>(), c.in[2].data<float>(), c.out[0].data<float>(), n, d.C, d.inner);
}

void scale_shift_backward(GradCall& c) {
  const Tensor& x = c.in[0];
  const Tensor& g = c.grad_out[0];
  ScaleShiftDims d = scale_shift_dims(x, c.attrs);
  auto ptr = [](Tensor& t) { return t.defined() ? t.data<float>() : nullptr; };
  float *dx = ptr(c.grad_in[0]), *dsc = ptr(c.grad_in[1]), *dsh = ptr(c.grad_in[2]);
  if (!d.nlc) {
    bool vec = d.inner % 4 == 0 && aligned16(x) && aligned16(g) && (!dx || aligned16(c.grad_in[0]));
    auto kernel = vec ? scale_shift_bwd_nchw<true> : scale_shift_bwd_nchw<false>;
    SD_LAUNCH(kernel, cuda::grid_for(d.B * d.C, 8), 256, 0, cuda::stream(), x.data<float>(),
              c.in[1].data<float>(), g.data<float>(), dx, dsc, dsh, d.B * d.C, d.inner);
    return;
  }
  // Split the tokens when the (channel tile, batch) grid is under two blocks per SM, keeping at
  // least 64 tokens per split.
  int64_t tiles = (d.C + 31) / 32 * d.B;
  int64_t splits = capped_grid(
      std::min<int64_t>((d.inner + 63) / 64, (2 * sm_count() + tiles - 1) / tiles), 65535);
  int64_t per = (d.inner + splits - 1) / splits;
  splits = (d.inner + per - 1) / per;
  SD_CHECK(d.B <= 65535, "scale_shift: the cuda nlc backward supports at most 65535 batches, got ",
           x.desc());
  const bool atomics = splits > 1 && float_atomics();
  if (atomics) {
    if (dsc) c.grad_in[1].zero_();
    if (dsh) c.grad_in[2].zero_();
  }
  const int64_t BC = d.B * d.C;
  Tensor part;
  if (splits > 1 && !atomics && (dsc || dsh))
    part = Tensor::empty({splits, 2, BC}, DType::F32, Device::CUDA);
  dim3 grid(unsigned((d.C + 31) / 32), unsigned(d.B), unsigned(splits));
  SD_LAUNCH(scale_shift_bwd_nlc, grid, dim3(32, 8), 0, cuda::stream(), x.data<float>(),
            c.in[1].data<float>(), g.data<float>(), dx, dsc, dsh,
            part.defined() ? part.data<float>() : nullptr, d.inner, d.C, per);
  if (!part.defined()) return;
  if (dsc) launch_column_sum(part.data<float>(), splits, 2 * BC, 0, BC, dsc);
  if (dsh) launch_column_sum(part.data<float>(), splits, 2 * BC, BC, BC, dsh);
}

}  // namespace

namespace cuda {

bool zero_if_no_grad(GradCall& c) {
  if (c.grad_out[0].defined()) return false;
  for (auto& t : c.grad_in)
    if (t.defined()) t.zero_();
  return true;
}

void check_f32(const std::string& op, const Tensor& t) {
  SD_CHECK(t.dtype() == DType::F32, op, ": the cuda backend computes this op in f32, got ",
           t.desc());
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
}

}  // namespace sd
