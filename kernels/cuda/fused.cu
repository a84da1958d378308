// CUDA backend of the fused family (math in kernels/cpu/fused.cpp), f32, statistics and sums in
// fp32. u = ((x - mean) * rstd * gamma + beta) * (1 + scale) + shift, y = act(u), act = SiLU or
// the identity (a template flag); the backward recomputes u from x and the saved statistics.
//   group_norm_mod fwd: one block per (b, group) as group_norm: the group's values are read from
//     global memory once into a shared-memory cache (<= 8192 values), the mean, centred variance
//     and output passes read the cache, and the output pass applies the affine, the conditioning
//     and the activation before the single write of y. Traffic: read x, write y.
//   group_norm_mod bwd: one block per (b, group). Pass 1, one warp per channel: gu = g * act'(u)
//     and the position sums P = sum gu * xh, Q = sum gu, which give dscale, dshift of that (b, c)
//     directly and the per-batch dgamma/dbeta partials (1 + scale) P, (1 + scale) Q; column_sum
//     adds the batches in a fixed order. Pass 2: dx over the group (the second read of x and g
//     mostly hits L2). No atomics.
//   layer_norm_mod fwd: one warp per token row, the row cached in shared memory (C <= 3072).
//   layer_norm_mod bwd: block (chunk, b) takes groups of 8 token rows of batch b; one warp per
//     row computes dx, then each thread adds the group's rows, in order, into the P = sum gu * xh
//     and Q = sum gu accumulators of the columns it owns (shared memory, or the block's slice of
//     the partial buffer when 2C floats do not fit). A finishing kernel per (b, c) adds the chunks
//     in order: dscale, dshift, and (1 + scale) P, Q, whose column sums over b are dgamma, dbeta.
//     Traffic: read x and g once from DRAM (the dx pass and the accumulation re-read the group's
//     rows from L1/L2), write dx once, 2C floats per block. No atomics.
//   bias_gelu fwd: flat elementwise, read x once, write y once. bwd: block (32 channels x 8 rows)
//     over a range of rows writes dx once and reduces its db partial in shared memory; column_sum
//     adds the row ranges in a fixed order.
#include <algorithm>
#include <climits>
#include <cstdint>

#include "kernels/cuda/norm.cuh"

namespace sd {
namespace {

using namespace cuda;

float* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

template <bool kSilu>
__device__ __forceinline__ float act(float u) {
  if constexpr (kSilu)
    return u / (1.f + expf(-u));
  else
    return u;
}

template <bool kSilu>
__device__ __forceinline__ float act_grad(float u) {
  if constexpr (kSilu) {
    float s = 1.f / (1.f + expf(-u));
    return s * (1.f + u * (1.f - s));
  } else {
    return 1.f;
  }
}

__device__ __forceinline__ float gelu_cdf(float v) {
  return 0.5f * (1.f + erff(v * 0.70710678118654752f));
}

// ---------------------------------------------------------------- group_norm_mod

// One block per (b, g): the group's n = Cg * S values start at x + (b*G + g) * n; value e belongs
// to channel g*Cg + e/S, whose scale/shift sit at bc0 + e/S in [B, C].
template <bool kSilu>
__global__ void __launch_bounds__(kGnThreads)
    group_norm_mod_fwd(const float* __restrict__ x, const float* __restrict__ gamma,
                       const float* __restrict__ beta, const float* __restrict__ sc,
                       const float* __restrict__ sh, float* __restrict__ y,
                       float* __restrict__ mean, float* __restrict__ rstd, int G, int Cg, int S,
                       float eps, bool cache) {
  SD_DYNAMIC_SHARED(float, smem);
  __shared__ float red[32];
  int64_t bg = blockIdx.x;
  int n = Cg * S, ch0 = int(bg % G) * Cg;
  int64_t bc0 = (bg / G) * G * Cg + ch0;
  const float* xs = x + bg * n;
  float* ys = y + bg * n;
  const float* src = cache ? smem : xs;  // each thread re-reads only its own cache slots
  float inv_n = 1.f / float(n), s = 0.f, q = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float v = xs[i];
    if (cache) smem[i] = v;
    s += v;
  }
  float m = block_sum(s, red) * inv_n;
  for (int i = threadIdx.x; i < n; i += blockDim.x) q += sq(src[i] - m);
  float rs = rsqrtf(block_sum(q, red) * inv_n + eps);
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    int ci = i / S;
    float u = ((src[i] - m) * (rs * gamma[ch0 + ci]) + beta[ch0 + ci]) * (1.f + sc[bc0 + ci]) +
              sh[bc0 + ci];
    ys[i] = act<kSilu>(u);
  }
  if (threadIdx.x == 0) mean[bg] = m, rstd[bg] = rs;
}

// One block per (b, g). pa, pb [B, C] receive (1 + scale) P and (1 + scale) Q of this group's
// channels; dsc, dsh (null when not wanted) receive gamma P + beta Q and Q; dx null: not wanted.
template <bool kSilu>
__global__ void __launch_bounds__(kGnThreads)
    group_norm_mod_bwd(const float* __restrict__ x, const float* __restrict__ gamma,
                       const float* __restrict__ beta, const float* __restrict__ sc,
                       const float* __restrict__ sh, const float* __restrict__ mean,
                       const float* __restrict__ rstd, const float* __restrict__ g,
                       float* __restrict__ dx, float* __restrict__ dsc, float* __restrict__ dsh,
                       float* pa, float* pb, int G, int Cg, int S) {
  __shared__ float red[32];
  int64_t bg = blockIdx.x;
  int n = Cg * S, ch0 = int(bg % G) * Cg;
  int64_t bc0 = (bg / G) * G * Cg + ch0;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
  const float *xs = x + bg * n, *gs = g + bg * n;
  float m = mean[bg], rs = rstd[bg];
  for (int ci = warp; ci < Cg; ci += nwarps) {
    int ch = ch0 + ci;
    int64_t bc = bc0 + ci;
    float a = rs * gamma[ch], bt = beta[ch], k = 1.f + sc[bc], t = sh[bc];
    float p = 0.f, qs = 0.f;
    for (int i = lane; i < S; i += 32) {
      int e = ci * S + i;
      float xc = xs[e] - m, gu = gs[e];
      if constexpr (kSilu) gu *= act_grad<true>((xc * a + bt) * k + t);
      p += gu * xc;
      qs += gu;
    }
    p = warp_sum(p) * rs;
    qs = warp_sum(qs);
    if (lane == 0) {
      pa[bc] = k * p;
      pb[bc] = k * qs;
      if (dsc) dsc[bc] = gamma[ch] * p + bt * qs;
      if (dsh) dsh[bc] = qs;
    }
  }
  __syncthreads();  // pa/pb written above are visible to the whole block
  if (!dx) return;
  // sum dxh = sum_c gamma_c (1 + scale_c) Q_c, sum dxh * xh likewise with P.
  float s1 = 0.f, s2 = 0.f;
  for (int ci = threadIdx.x; ci < Cg; ci += blockDim.x) {
    s1 += gamma[ch0 + ci] * pb[bc0 + ci];
    s2 += gamma[ch0 + ci] * pa[bc0 + ci];
  }
  float inv_n = 1.f / float(n);
  s1 = block_sum(s1, red) * inv_n;
  s2 = block_sum(s2, red) * inv_n;
  float* dxs = dx + bg * n;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    int ci = i / S;
    float gm = gamma[ch0 + ci], k = 1.f + sc[bc0 + ci], xc = xs[i] - m, gu = gs[i];
    if constexpr (kSilu) gu *= act_grad<true>((xc * (rs * gm) + beta[ch0 + ci]) * k + sh[bc0 + ci]);
    dxs[i] = rs * (gu * k * gm - s1 - xc * rs * s2);
  }
}

void group_norm_mod_forward(OpCall& c) {
  const Tensor& x = c.in[0];
  check_f32("group_norm_mod", x);
  GroupNormDims d = group_norm_dims("group_norm_mod", x, c.attrs);
  int n = d.Cg * d.S;
  bool cache = n <= kGnCacheMax;
  size_t smem = cache ? size_t(n) * sizeof(float) : 0;
  auto kernel = bool(c.attrs["silu"]) ? group_norm_mod_fwd<true> : group_norm_mod_fwd<false>;
  SD_LAUNCH(kernel, unsigned(d.B * d.G), kGnThreads, smem, cuda::stream(), x.data<float>(),
            c.in[1].data<float>(), c.in[2].data<float>(), c.in[3].data<float>(),
            c.in[4].data<float>(), c.out[0].data<float>(), c.out[1].data<float>(),
            c.out[2].data<float>(), d.G, d.Cg, d.S, float(double(c.attrs["eps"])), cache);
}

void group_norm_mod_backward(GradCall& c) {
  const Tensor& x = c.in[0];
  GroupNormDims d = group_norm_dims("group_norm_mod", x, c.attrs);
  int64_t C = int64_t(d.G) * d.Cg;
  Tensor part = Tensor::empty({2, d.B, C}, DType::F32, Device::CUDA);
  float *pa = part.data<float>(), *pb = pa + d.B * C;
  auto kernel = bool(c.attrs["silu"]) ? group_norm_mod_bwd<true> : group_norm_mod_bwd<false>;
  SD_LAUNCH(kernel, unsigned(d.B * d.G), kGnThreads, 0, cuda::stream(), x.data<float>(),
            c.in[1].data<float>(), c.in[2].data<float>(), c.in[3].data<float>(),
            c.in[4].data<float>(), c.out[1].data<float>(), c.out[2].data<float>(),
            c.grad_out[0].data<float>(), ptr_or_null(c.grad_in[0]), ptr_or_null(c.grad_in[3]),
            ptr_or_null(c.grad_in[4]), pa, pb, d.G, d.Cg, d.S);
  for (int k = 1; k <= 2; ++k)
    if (c.grad_in[k].defined())
      launch_column_sum(k == 1 ? pa : pb, d.B, C, 0, C, c.grad_in[k].data<float>());
}

// ---------------------------------------------------------------- layer_norm_mod

// x [B, N, C] as rows r = b*N + n; scale/shift of row r at (r / N) * C.
template <bool kSilu>
__global__ void __launch_bounds__(kLnWarps * 32)
    layer_norm_mod_fwd(const float* __restrict__ x, const float* __restrict__ gamma,
                       const float* __restrict__ beta, const float* __restrict__ sc,
                       const float* __restrict__ sh, float* __restrict__ y,
                       float* __restrict__ mean, float* __restrict__ rstd, int64_t rows,
                       int64_t N, int C, float eps, bool cache) {
  SD_DYNAMIC_SHARED(float, smem);
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* row_cache = smem + size_t(warp) * C;
  float inv_c = 1.f / float(C);
  for (int64_t r = int64_t(blockIdx.x) * kLnWarps + warp; r < rows;
       r += int64_t(gridDim.x) * kLnWarps) {
    const float *xr = x + r * C, *scb = sc + (r / N) * C, *shb = sh + (r / N) * C;
    float* yr = y + r * C;
    // Each lane reads back only the cache slots it wrote itself: no barrier needed.
    const float* src = cache ? row_cache : xr;
    float s = 0.f, q = 0.f;
    for (int i = lane; i < C; i += 32) {
      float v = xr[i];
      if (cache) row_cache[i] = v;
      s += v;
    }
    float m = warp_sum(s) * inv_c;
    for (int i = lane; i < C; i += 32) q += sq(src[i] - m);
    float rs = rsqrtf(warp_sum(q) * inv_c + eps);
    for (int i = lane; i < C; i += 32)
      yr[i] = act<kSilu>(((src[i] - m) * rs * gamma[i] + beta[i]) * (1.f + scb[i]) + shb[i]);
    if (lane == 0) mean[r] = m, rstd[r] = rs;
  }
}

// Block (blockIdx.x = chunk, blockIdx.y = b) takes groups of kLnBwdWarps token rows of batch b
// (group k starts at row (chunk + k * gridDim.x) * kLnBwdWarps). dx = rs * (dxh - mean(dxh) -
// xh * mean(dxh * xh)), dxh = gu * (1 + scale) * gamma. Phase 1, one warp per row of the group:
// the row's two sums, then dx (`dx` null: not wanted, phase 1 is skipped). Phase 2 (`part` null:
// no affine or conditioning gradient is wanted): thread t owns columns t, t + blockDim.x, ... and
// adds the group's rows in order to its P = sum gu * xh and Q = sum gu accumulators, so the
// partials are the same on every run. `acc` (2C floats: P then Q) is shared memory (kSharedAcc),
// else the block's slice of `part` [B, chunks, 2C], which receives the result. kAtomics
// (SIMDIFF_CUDA_ATOMICS=1) instead adds each row into `acc` in phase 1 with atomics, the block's
// warps in whatever order they run.
template <bool kSilu, bool kSharedAcc, bool kAtomics>
__global__ void __launch_bounds__(kLnBwdWarps * 32)
    layer_norm_mod_bwd(const float* __restrict__ x, const float* __restrict__ gamma,
                       const float* __restrict__ beta, const float* __restrict__ sc,
                       const float* __restrict__ sh, const float* __restrict__ mean,
                       const float* __restrict__ rstd, const float* __restrict__ g,
                       float* __restrict__ dx, float* part, int64_t N, int C) {
  SD_DYNAMIC_SHARED(float, smem);
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int64_t b = blockIdx.y;
  const bool want_acc = part != nullptr;
  float* slice =
      want_acc ? part + (size_t(b) * gridDim.x + blockIdx.x) * 2 * size_t(C) : nullptr;
  float* acc = kSharedAcc ? smem : slice;
  if (want_acc) {
    for (int i = threadIdx.x; i < 2 * C; i += blockDim.x) acc[i] = 0.f;
    __syncthreads();
  }
  const bool atomics = kAtomics && want_acc;
  const float *scb = sc + b * C, *shb = sh + b * C;
  float inv_c = 1.f / float(C);
  for (int64_t n0 = int64_t(blockIdx.x) * kLnBwdWarps; n0 < N;
       n0 += int64_t(gridDim.x) * kLnBwdWarps) {
    const int64_t nn = n0 + warp, n1 = n0 + kLnBwdWarps < N ? n0 + kLnBwdWarps : N;
    // ---- phase 1: this warp's row
    if (nn < N && (dx || atomics)) {
      int64_t r = b * N + nn;
      const float *xr = x + r * C, *gr = g + r * C;
      float m = mean[r], rs = rstd[r], s1 = 0.f, s2 = 0.f;
      for (int i = lane; i < C; i += 32) {
        float xh = (xr[i] - m) * rs, k = 1.f + scb[i], gu = gr[i];
        if constexpr (kSilu) gu *= act_grad<true>((xh * gamma[i] + beta[i]) * k + shb[i]);
        float dxh = gu * k * gamma[i];
        s1 += dxh;
        s2 += dxh * xh;
        if (atomics) {
          atomicAdd(acc + i, gu * xh);
          atomicAdd(acc + C + i, gu);
        }
      }
      s1 = warp_sum(s1) * inv_c;
      s2 = warp_sum(s2) * inv_c;
      if (dx)
        for (int i = lane; i < C; i += 32) {
          float xh = (xr[i] - m) * rs, k = 1.f + scb[i], gu = gr[i];
          if constexpr (kSilu) gu *= act_grad<true>((xh * gamma[i] + beta[i]) * k + shb[i]);
          dx[r * C + i] = rs * (gu * k * gamma[i] - s1 - xh * s2);
        }
    }
    // ---- phase 2: the group's rows, in order, into this thread's columns
    if constexpr (!kAtomics) {  // the atomic variant added its rows in phase 1
      if (!want_acc) continue;
      for (int i = threadIdx.x; i < C; i += blockDim.x) {
        float gm = gamma[i], bt = beta[i], k = 1.f + scb[i], t = shb[i], p = 0.f, q = 0.f;
        for (int64_t rr = b * N + n0; rr < b * N + n1; ++rr) {
          float xh = (x[rr * C + i] - mean[rr]) * rstd[rr], gu = g[rr * C + i];
          if constexpr (kSilu) gu *= act_grad<true>((xh * gm + bt) * k + t);
          p += gu * xh;
          q += gu;
        }
        acc[i] += p;
        acc[C + i] += q;
      }
    }
  }
  if (kSharedAcc && want_acc) {
    __syncthreads();
    for (int i = threadIdx.x; i < 2 * C; i += blockDim.x) slice[i] = acc[i];
  }
}

// Per (b, c): P, Q = the chunks' partials added in order; dscale = gamma P + beta Q, dshift = Q
// (null when not wanted); pk, qk [B, C] = (1 + scale) P, (1 + scale) Q for dgamma, dbeta.
__global__ void layer_norm_mod_finish(const float* __restrict__ part,
                                      const float* __restrict__ gamma,
                                      const float* __restrict__ beta, const float* __restrict__ sc,
                                      float* __restrict__ dsc, float* __restrict__ dsh,
                                      float* __restrict__ pk, float* __restrict__ qk, int64_t B,
                                      int64_t chunks, int64_t C) {
  CUDA_LOOP(i, B * C) {
    int64_t b = i / C, ch = i % C;
    const float* pr = part + b * chunks * 2 * C + ch;
    float p = 0.f, q = 0.f;
    for (int64_t k = 0; k < chunks; ++k) {
      p += pr[k * 2 * C];
      q += pr[k * 2 * C + C];
    }
    float kk = 1.f + sc[i];
    pk[i] = kk * p;
    qk[i] = kk * q;
    if (dsc) dsc[i] = gamma[ch] * p + beta[ch] * q;
    if (dsh) dsh[i] = q;
  }
}

void layer_norm_mod_forward(OpCall& c) {
  const Tensor& x = c.in[0];
  check_f32("layer_norm_mod", x);
  SD_CHECK(x.dim(2) <= INT_MAX, "layer_norm_mod: rows longer than 2^31 are not supported, got ",
           x.desc());
  int C = int(x.dim(2));
  int64_t rows = x.dim(0) * x.dim(1);
  bool cache = C <= kLnCacheMax;
  size_t smem = cache ? size_t(kLnWarps) * C * sizeof(float) : 0;
  auto kernel = bool(c.attrs["silu"]) ? layer_norm_mod_fwd<true> : layer_norm_mod_fwd<false>;
  SD_LAUNCH(kernel, cuda::grid_for(rows, kLnWarps), kLnWarps * 32, smem, cuda::stream(),
            x.data<float>(), c.in[1].data<float>(), c.in[2].data<float>(), c.in[3].data<float>(),
            c.in[4].data<float>(), c.out[0].data<float>(), c.out[1].data<float>(),
            c.out[2].data<float>(), rows, x.dim(1), C, float(double(c.attrs["eps"])), cache);
}

void layer_norm_mod_backward(GradCall& c) {
  const Tensor& x = c.in[0];
  int64_t B = x.dim(0), N = x.dim(1);
  int C = int(x.dim(2));
  SD_CHECK(B <= 65535, "layer_norm_mod: the cuda backward supports at most 65535 batches, got ",
           x.desc());
  bool want_acc = false;
  for (int k = 1; k <= 4; ++k) want_acc = want_acc || c.grad_in[k].defined();
  // Token chunks per batch: about two blocks per SM in all, at least one row per warp.
  int64_t chunks = capped_grid(std::min<int64_t>((2 * int64_t(sm_count()) + B - 1) / B,
                                                 (N + kLnBwdWarps - 1) / kLnBwdWarps),
                               65535);
  bool shared_acc = C <= kLnAccMax;
  Tensor part;
  if (want_acc) part = Tensor::empty({B, chunks, 2 * int64_t(C)}, DType::F32, Device::CUDA);
  size_t smem = want_acc && shared_acc ? size_t(2) * C * sizeof(float) : 0;
  using Kernel = decltype(&layer_norm_mod_bwd<true, true, true>);
  static const Kernel kernels[2][2][2] = {
      {{layer_norm_mod_bwd<false, false, false>, layer_norm_mod_bwd<false, false, true>},
       {layer_norm_mod_bwd<false, true, false>, layer_norm_mod_bwd<false, true, true>}},
      {{layer_norm_mod_bwd<true, false, false>, layer_norm_mod_bwd<true, false, true>},
       {layer_norm_mod_bwd<true, true, false>, layer_norm_mod_bwd<true, true, true>}}};
  Kernel kernel = kernels[bool(c.attrs["silu"])][shared_acc][float_atomics()];
  SD_LAUNCH(kernel, dim3(unsigned(chunks), unsigned(B)), kLnBwdWarps * 32, smem, cuda::stream(),
            x.data<float>(), c.in[1].data<float>(), c.in[2].data<float>(), c.in[3].data<float>(),
            c.in[4].data<float>(), c.out[1].data<float>(), c.out[2].data<float>(),
            c.grad_out[0].data<float>(), ptr_or_null(c.grad_in[0]),
            want_acc ? part.data<float>() : nullptr, N, C);
  if (!want_acc) return;
  Tensor pq = Tensor::empty({2, B, int64_t(C)}, DType::F32, Device::CUDA);
  float *pk = pq.data<float>(), *qk = pk + B * C;
  SD_LAUNCH(layer_norm_mod_finish, cuda::grid_for(B * C, 256), 256, 0, cuda::stream(),
            part.data<float>(), c.in[1].data<float>(), c.in[2].data<float>(), c.in[3].data<float>(),
            ptr_or_null(c.grad_in[3]), ptr_or_null(c.grad_in[4]), pk, qk, B, chunks, C);
  for (int k = 1; k <= 2; ++k)
    if (c.grad_in[k].defined())
      launch_column_sum(k == 1 ? pk : qk, B, C, 0, C, c.grad_in[k].data<float>());
}

// ---------------------------------------------------------------- bias_gelu

__global__ void bias_gelu_fwd(const float* __restrict__ x, const float* __restrict__ b,
                              float* __restrict__ y, int64_t n, int64_t C) {
  CUDA_LOOP(i, n) {
    float v = x[i] + b[i % C];
    y[i] = v * gelu_cdf(v);
  }
}

// Block (32, 8) covers channels [32 * blockIdx.x, +32) and rows [blockIdx.y * per, +per), rows
// strided by threadIdx.y: dx = g * gelu'(x + b) (null: not wanted), and the 8 row-partials of
// each channel meet in shared memory and go to part[blockIdx.y, c] (null: db not wanted).
__global__ void bias_gelu_bwd(const float* __restrict__ x, const float* __restrict__ b,
                              const float* __restrict__ g, float* __restrict__ dx,
                              float* __restrict__ part, int64_t rows, int64_t C, int64_t per) {
  __shared__ float red[8][33];
  int64_t ch = int64_t(blockIdx.x) * 32 + threadIdx.x;
  int64_t r0 = int64_t(blockIdx.y) * per, r1 = r0 + per < rows ? r0 + per : rows;
  float s = 0.f;
  if (ch < C) {
    float bv = b[ch];
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
      int64_t i = r * C + ch;
      float v = x[i] + bv;
      float d = g[i] * (gelu_cdf(v) + v * expf(-0.5f * v * v) * 0.3989422804014327f);
      if (dx) dx[i] = d;
      s += d;
    }
  }
  red[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || ch >= C || !part) return;
  float t = 0.f;
  for (int k = 0; k < 8; ++k) t += red[k][threadIdx.x];
  part[int64_t(blockIdx.y) * C + ch] = t;
}

void bias_gelu_forward(OpCall& c) {
  const Tensor& x = c.in[0];
  check_f32("bias_gelu", x);
  int64_t n = x.numel();
  SD_LAUNCH(bias_gelu_fwd, cuda::grid_for(n, 256), 256, 0, cuda::stream(), x.data<float>(),
            c.in[1].data<float>(), c.out[0].data<float>(), n, x.dim(-1));
}

void bias_gelu_backward(GradCall& c) {
  const Tensor& x = c.in[0];
  int64_t C = x.dim(-1), rows = x.numel() / C, tiles = (C + 31) / 32;
  // Row ranges: about four blocks per SM in all, at least 8 rows (one per thread row) each.
  int64_t chunks = std::clamp<int64_t>((4 * int64_t(sm_count()) + tiles - 1) / tiles, 1,
                                       std::min<int64_t>((rows + 7) / 8, 65535));
  int64_t per = (rows + chunks - 1) / chunks;
  chunks = (rows + per - 1) / per;
  Tensor& db = c.grad_in[1];
  Tensor part;
  if (db.defined()) part = Tensor::empty({chunks, C}, DType::F32, Device::CUDA);
  SD_LAUNCH(bias_gelu_bwd, dim3(unsigned(tiles), unsigned(chunks)), dim3(32, 8), 0, cuda::stream(),
            x.data<float>(), c.in[1].data<float>(), c.grad_out[0].data<float>(),
            ptr_or_null(c.grad_in[0]), ptr_or_null(part), rows, C, per);
  if (db.defined()) launch_column_sum(part.data<float>(), chunks, C, 0, C, db.data<float>());
}

}  // namespace

void register_fused_cuda(Registry& r) {
  r.mutable_at("group_norm_mod").cuda = {group_norm_mod_forward,
                                         backward_or_zero<group_norm_mod_backward>};
  r.mutable_at("layer_norm_mod").cuda = {layer_norm_mod_forward,
                                         backward_or_zero<layer_norm_mod_backward>};
  r.mutable_at("bias_gelu").cuda = {bias_gelu_forward, backward_or_zero<bias_gelu_backward>};
}

}  // namespace sd
