// CUDA backend of the fused family (math in kernels/cpu/fused.cpp), f32 or native bf16 as the
// norm family (kernels/cuda/norm.cuh: activations of T = f32 or bf16 in 16-byte chunks where the
// shapes and pointers allow, statistics, sums and parameters in f32, one rounding per bf16
// result). u = ((x - mean) * rstd * gamma + beta) * (1 + scale) + shift, y = act(u), act = SiLU
// or the identity (a template flag); the backward recomputes u from x and the saved statistics.
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
//   layer_norm_mod bwd (kernels/cuda/norm.cuh, shared with layer_norm): block (chunk, b) takes
//     groups of 8 token rows of batch b; one warp per row computes dx, then each thread adds the
//     group's rows, in order, into the P = sum gu * xh and Q = sum gu accumulators of the columns
//     it owns (shared memory, or the block's slice of the partial buffer when 2C floats do not
//     fit). A finishing kernel per (b, c) adds the chunks
//     in order: dscale, dshift, and (1 + scale) P, Q, whose column sums over b are dgamma, dbeta.
//     Traffic: read x and g once from DRAM (the dx pass and the accumulation re-read the group's
//     rows from L1/L2), write dx once, 2C floats per block. No atomics.
//   bias_gelu fwd: flat elementwise in 16-byte chunks and a scalar tail, read x once, write y
//     once. bwd: block (32 x W channels x 8 rows) over a range of rows writes dx once and reduces
//     its db partial in shared memory; column_sum adds the row ranges in a fixed order.
#include <algorithm>
#include <climits>
#include <cstdint>

#include "kernels/cuda/norm.cuh"

namespace sd {
namespace {

using namespace cuda;

template <bool kSilu>
__device__ __forceinline__ float act(float u) {
  if constexpr (kSilu)
    return u / (1.f + expf(-u));
  else
    return u;
}

__device__ __forceinline__ float gelu_cdf(float v) {
  return 0.5f * (1.f + erff(v * 0.70710678118654752f));
}

// ---------------------------------------------------------------- group_norm_mod

// One block per (b, g): the group's n = Cg * S values start at x + (b*G + g) * n; value e belongs
// to channel g*Cg + e/S, whose scale/shift sit at bc0 + e/S in [B, C]. Chunks of W elements
// (kVec16<T> when S % W == 0: a chunk never straddles two channels, else 1); the cache keeps the
// group as read (sizeof(T) per value).
template <class T, int W, bool kSilu>
__global__ void __launch_bounds__(kGnThreads)
    group_norm_mod_fwd(const T* __restrict__ x, const float* __restrict__ gamma,
                       const float* __restrict__ beta, const float* __restrict__ sc,
                       const float* __restrict__ sh, T* __restrict__ y,
                       float* __restrict__ mean, float* __restrict__ rstd, int G, int Cg, int S,
                       float eps, bool cache) {
  SD_DYNAMIC_SHARED(float4, smem4);
  __shared__ float red[32];
  T* cached = reinterpret_cast<T*>(smem4);
  int64_t bg = blockIdx.x;
  int n = Cg * S, ch0 = int(bg % G) * Cg;
  int64_t bc0 = (bg / G) * G * Cg + ch0;
  const T* xs = x + bg * n;
  const T* src = cache ? cached : xs;  // each thread re-reads only its own cache slots
  float v[W];
  auto [m, rs] = group_moments<W>(xs, cached, cache, n, eps, red);
  for (int i = threadIdx.x * W; i < n; i += blockDim.x * W) {
    int ci = i / S;
    float a = rs * gamma[ch0 + ci], b = beta[ch0 + ci], k = 1.f + sc[bc0 + ci], t = sh[bc0 + ci];
    load<W>(src, i, v);
#pragma unroll
    for (int e = 0; e < W; ++e) v[e] = act<kSilu>(((v[e] - m) * a + b) * k + t);
    store<W>(y + bg * n, i, v);
  }
  if (threadIdx.x == 0) mean[bg] = m, rstd[bg] = rs;
}

// One block per (b, g), chunks of W as the forward. pa, pb [B, C] receive (1 + scale) P and
// (1 + scale) Q of this group's channels; dsc, dsh (null when not wanted) receive gamma P + beta Q
// and Q; dx null: not wanted.
template <class T, int W, bool kSilu>
__global__ void __launch_bounds__(kGnThreads)
    group_norm_mod_bwd(const T* __restrict__ x, const float* __restrict__ gamma,
                       const float* __restrict__ beta, const float* __restrict__ sc,
                       const float* __restrict__ sh, const float* __restrict__ mean,
                       const float* __restrict__ rstd, const T* __restrict__ g,
                       T* __restrict__ dx, float* __restrict__ dsc, float* __restrict__ dsh,
                       float* pa, float* pb, int G, int Cg, int S) {
  __shared__ float red[32];
  int64_t bg = blockIdx.x;
  int n = Cg * S, ch0 = int(bg % G) * Cg;
  int64_t bc0 = (bg / G) * G * Cg + ch0;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nwarps = blockDim.x >> 5;
  const T *xs = x + bg * n, *gs = g + bg * n;
  float m = mean[bg], rs = rstd[bg];
  for (int ci = warp; ci < Cg; ci += nwarps) {
    int ch = ch0 + ci;
    int64_t bc = bc0 + ci;
    float a = rs * gamma[ch], bt = beta[ch], k = 1.f + sc[bc], t = sh[bc];
    float p = 0.f, qs = 0.f;
    for (int i = lane * W; i < S; i += 32 * W) {
      float xc[W], gu[W];
      load<W>(xs + ci * S, i, xc);
      load<W>(gs + ci * S, i, gu);
#pragma unroll
      for (int e = 0; e < W; ++e) {
        xc[e] -= m;
        if constexpr (kSilu) gu[e] *= act_grad<true>((xc[e] * a + bt) * k + t);
        p += gu[e] * xc[e];
        qs += gu[e];
      }
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
  for (int i = threadIdx.x * W; i < n; i += blockDim.x * W) {
    int ci = i / S;
    float gm = gamma[ch0 + ci], k = 1.f + sc[bc0 + ci], bt = beta[ch0 + ci], t = sh[bc0 + ci];
    float xc[W], gu[W];
    load<W>(xs, i, xc);
    load<W>(gs, i, gu);
#pragma unroll
    for (int e = 0; e < W; ++e) {
      xc[e] -= m;
      if constexpr (kSilu) gu[e] *= act_grad<true>((xc[e] * (rs * gm) + bt) * k + t);
      xc[e] = rs * (gu[e] * k * gm - s1 - xc[e] * rs * s2);
    }
    store<W>(dx + bg * n, i, xc);
  }
}

// The four parameters of a conditioned norm (gamma, beta, scale, shift: c.in[1..4]) in f32.
struct ModParams {
  Tensor gamma, beta, sc, sh;
  explicit ModParams(const std::vector<Tensor>& in)
      : gamma(f32_param(in[1])), beta(f32_param(in[2])), sc(f32_param(in[3])),
        sh(f32_param(in[4])) {}
};

void group_norm_mod_forward(OpCall& c) {
  const Tensor& x = c.in[0];
  GroupNormDims d = group_norm_dims("group_norm_mod", x, c.attrs);
  ModParams p(c.in);
  int n = d.Cg * d.S;
  bool cache = n <= kGnCacheMax, silu = c.attrs["silu"];
  dispatch_f32_bf16("group_norm_mod", x, [&](auto t) {
    using T = decltype(t);
    constexpr int V = kVec16<T>;
    bool vec = d.S % V == 0 && aligned16(x) && aligned16(c.out[0]);
    auto kernel = vec ? (silu ? group_norm_mod_fwd<T, V, true> : group_norm_mod_fwd<T, V, false>)
                      : (silu ? group_norm_mod_fwd<T, 1, true> : group_norm_mod_fwd<T, 1, false>);
    size_t smem = cache ? size_t(n) * sizeof(T) : 0;
    SD_LAUNCH(kernel, unsigned(d.B * d.G), kGnThreads, smem, cuda::stream(), ptr<T>(x),
              p.gamma.data<float>(), p.beta.data<float>(), p.sc.data<float>(), p.sh.data<float>(),
              ptr<T>(c.out[0]), c.out[1].data<float>(), c.out[2].data<float>(), d.G, d.Cg, d.S,
              float(double(c.attrs["eps"])), cache);
  });
}

void group_norm_mod_backward(GradCall& c) {
  const Tensor& x = c.in[0];
  const Tensor& g = c.grad_out[0];
  GroupNormDims d = group_norm_dims("group_norm_mod", x, c.attrs);
  int64_t C = int64_t(d.G) * d.Cg;
  ModParams p(c.in);
  F32Grad dsc(c.grad_in[3]), dsh(c.grad_in[4]);
  Tensor part = Tensor::empty({2, d.B, C}, DType::F32, Device::CUDA);
  float *pa = part.data<float>(), *pb = pa + d.B * C;
  bool silu = c.attrs["silu"];
  dispatch_f32_bf16("group_norm_mod", x, [&](auto t) {
    using T = decltype(t);
    constexpr int V = kVec16<T>;
    bool vec = d.S % V == 0 && aligned16(x) && aligned16(g) && aligned16(c.grad_in[0]);
    auto kernel = vec ? (silu ? group_norm_mod_bwd<T, V, true> : group_norm_mod_bwd<T, V, false>)
                      : (silu ? group_norm_mod_bwd<T, 1, true> : group_norm_mod_bwd<T, 1, false>);
    SD_LAUNCH(kernel, unsigned(d.B * d.G), kGnThreads, 0, cuda::stream(), ptr<T>(x),
              p.gamma.data<float>(), p.beta.data<float>(), p.sc.data<float>(), p.sh.data<float>(),
              c.out[1].data<float>(), c.out[2].data<float>(), ptr<T>(g),
              ptr<T>(c.grad_in[0]), dsc.ptr(), dsh.ptr(), pa, pb, d.G, d.Cg, d.S);
  });
  dsc.finish();
  dsh.finish();
  for (int k = 1; k <= 2; ++k) {
    F32Grad dp(c.grad_in[k]);
    if (!dp.ptr()) continue;
    launch_column_sum(k == 1 ? pa : pb, d.B, C, 0, C, dp.ptr());
    dp.finish();
  }
}

// ---------------------------------------------------------------- layer_norm_mod

// x [B, N, C] as rows r = b*N + n; scale/shift of row r at (r / N) * C. One warp per row, chunks
// of W (kVec16<T> when C % W == 0, else 1); the cache keeps the row as read (sizeof(T) each).
template <class T, int W, bool kSilu>
__global__ void __launch_bounds__(kLnWarps * 32)
    layer_norm_mod_fwd(const T* __restrict__ x, const float* __restrict__ gamma,
                       const float* __restrict__ beta, const float* __restrict__ sc,
                       const float* __restrict__ sh, T* __restrict__ y,
                       float* __restrict__ mean, float* __restrict__ rstd, int64_t rows,
                       int64_t N, int C, float eps, bool cache) {
  SD_DYNAMIC_SHARED(float4, smem4);
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  T* row_cache = reinterpret_cast<T*>(smem4) + size_t(warp) * C;
  for (int64_t r = int64_t(blockIdx.x) * kLnWarps + warp; r < rows;
       r += int64_t(gridDim.x) * kLnWarps) {
    const T* xr = x + r * C;
    const float *scb = sc + (r / N) * C, *shb = sh + (r / N) * C;
    const T* src = cache ? row_cache : xr;
    float v[W];
    auto [m, rs] = row_moments<W>(xr, row_cache, cache, C, eps);
    for (int i = lane * W; i < C; i += 32 * W) {
      float gm[W], bt[W], k[W], t[W];
      load<W>(src, i, v);
      load<W>(gamma, i, gm);
      load<W>(beta, i, bt);
      load<W>(scb, i, k);
      load<W>(shb, i, t);
#pragma unroll
      for (int e = 0; e < W; ++e)
        v[e] = act<kSilu>(((v[e] - m) * rs * gm[e] + bt[e]) * (1.f + k[e]) + t[e]);
      store<W>(y + r * C, i, v);
    }
    if (lane == 0) mean[r] = m, rstd[r] = rs;
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
  SD_CHECK(x.dim(2) <= INT_MAX, "layer_norm_mod: rows longer than 2^31 are not supported, got ",
           x.desc());
  int C = int(x.dim(2));
  int64_t rows = x.dim(0) * x.dim(1);
  ModParams p(c.in);
  bool cache = C <= kLnCacheMax, silu = c.attrs["silu"];
  dispatch_f32_bf16("layer_norm_mod", x, [&](auto t) {
    using T = decltype(t);
    constexpr int V = kVec16<T>;
    bool vec = C % V == 0 && aligned16(x) && aligned16(c.out[0]) && aligned16(p.gamma) &&
               aligned16(p.beta) && aligned16(p.sc) && aligned16(p.sh);
    auto kernel = vec ? (silu ? layer_norm_mod_fwd<T, V, true> : layer_norm_mod_fwd<T, V, false>)
                      : (silu ? layer_norm_mod_fwd<T, 1, true> : layer_norm_mod_fwd<T, 1, false>);
    size_t smem = cache ? size_t(kLnWarps) * C * sizeof(T) : 0;
    SD_LAUNCH(kernel, cuda::grid_for(rows, kLnWarps), kLnWarps * 32, smem, cuda::stream(),
              ptr<T>(x), p.gamma.data<float>(), p.beta.data<float>(), p.sc.data<float>(),
              p.sh.data<float>(), ptr<T>(c.out[0]), c.out[1].data<float>(),
              c.out[2].data<float>(), rows, x.dim(1), C, float(double(c.attrs["eps"])), cache);
  });
}

// The shared layer norm backward (kernels/cuda/norm.cuh), block (chunk, b) over the tokens of
// batch b, then the finishing kernel.
void layer_norm_mod_backward(GradCall& c) {
  const Tensor& x = c.in[0];
  const Tensor& g = c.grad_out[0];
  int64_t B = x.dim(0), N = x.dim(1);
  int C = int(x.dim(2));
  SD_CHECK(B <= 65535, "layer_norm_mod: the cuda backward supports at most 65535 batches, got ",
           x.desc());
  ModParams p(c.in);
  bool want_acc = false;
  for (int k = 1; k <= 4; ++k) want_acc = want_acc || c.grad_in[k].defined();
  // Token chunks per batch: about two blocks per SM in all, at least one row per warp.
  int64_t chunks = capped_grid(std::min<int64_t>((2 * int64_t(sm_count()) + B - 1) / B,
                                                 (N + kLnBwdWarps - 1) / kLnBwdWarps),
                               65535);
  Tensor part;
  if (want_acc) part = Tensor::empty({B, chunks, 2 * int64_t(C)}, DType::F32, Device::CUDA);
  bool silu = c.attrs["silu"];
  dispatch_f32_bf16("layer_norm_mod", x, [&](auto t) {
    using T = decltype(t);
    bool vec = C % kVec16<T> == 0 && aligned16(x) && aligned16(g) && aligned16(c.grad_in[0]) &&
               aligned16(p.gamma) && aligned16(p.beta) && aligned16(p.sc) && aligned16(p.sh);
    auto launch = silu ? launch_layer_norm_bwd<T, true> : launch_layer_norm_bwd<T, false>;
    launch(ptr<T>(x), p.gamma.data<float>(), p.beta.data<float>(), p.sc.data<float>(),
           p.sh.data<float>(), c.out[1].data<float>(), c.out[2].data<float>(), ptr<T>(g),
           ptr<T>(c.grad_in[0]), want_acc ? part.data<float>() : nullptr, B, chunks, N, C, vec);
  });
  if (!want_acc) return;
  F32Grad dsc(c.grad_in[3]), dsh(c.grad_in[4]);
  Tensor pq = Tensor::empty({2, B, int64_t(C)}, DType::F32, Device::CUDA);
  float *pk = pq.data<float>(), *qk = pk + B * C;
  SD_LAUNCH(layer_norm_mod_finish, cuda::grid_for(B * C, 256), 256, 0, cuda::stream(),
            part.data<float>(), p.gamma.data<float>(), p.beta.data<float>(), p.sc.data<float>(),
            dsc.ptr(), dsh.ptr(), pk, qk, B, chunks, C);
  dsc.finish();
  dsh.finish();
  for (int k = 1; k <= 2; ++k) {
    F32Grad dp(c.grad_in[k]);
    if (!dp.ptr()) continue;
    launch_column_sum(k == 1 ? pk : qk, B, C, 0, C, dp.ptr());
    dp.finish();
  }
}

// ---------------------------------------------------------------- bias_gelu

// y = v * Phi(v), v = x + b[i % C], flat over n elements: chunks of W = kVec16<T> (16 bytes of x
// and y per access; the bias, C floats, is read per element from L1), then a scalar tail of the
// last n % W. Traffic: read x, write y, sizeof(T) each per element.
template <class T, int W>
__global__ void bias_gelu_fwd(const T* __restrict__ x, const float* __restrict__ b,
                              T* __restrict__ y, int64_t n, int64_t C) {
  CUDA_LOOP(k, n / W) {
    float v[W];
    load<W>(x, W * k, v);
    int64_t ch = (W * k) % C;
#pragma unroll
    for (int e = 0; e < W; ++e) {
      v[e] += b[ch];
      v[e] *= gelu_cdf(v[e]);
      ch = ch + 1 == C ? 0 : ch + 1;
    }
    store<W>(y, W * k, v);
  }
  CUDA_LOOP(j, n % W) {
    int64_t i = n / W * W + j;
    float v = to_f32(x[i]) + b[i % C];
    y[i] = from_f32<T>(v * gelu_cdf(v));
  }
}

// Block (32, 8) covers channels [32 W blockIdx.x, +32 W) and rows [blockIdx.y * per, +per), rows
// strided by threadIdx.y, W consecutive channels per thread (W = kVec16<T> when C % W == 0, else
// 1): dx = g * gelu'(x + b) (null: not wanted), and the 8 row-partials of each channel meet in
// shared memory and go to part[blockIdx.y, c] (null: db not wanted). Traffic: read x and g, write
// dx, sizeof(T) each per element, in 16-byte accesses.
template <class T, int W>
__global__ void bias_gelu_bwd(const T* __restrict__ x, const float* __restrict__ b,
                              const T* __restrict__ g, T* __restrict__ dx,
                              float* __restrict__ part, int64_t rows, int64_t C, int64_t per) {
  __shared__ float red[8][W * 32 + 1];  // [row][e * 32 + threadIdx.x]: no bank conflicts
  int64_t ch = (int64_t(blockIdx.x) * 32 + threadIdx.x) * W;
  int64_t r0 = int64_t(blockIdx.y) * per, r1 = r0 + per < rows ? r0 + per : rows;
  float s[W] = {};
  if (ch < C) {
    float bv[W];
    load<W>(b, ch, bv);
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
      float v[W], d[W];
      load<W>(x + r * C, ch, v);
      load<W>(g + r * C, ch, d);
#pragma unroll
      for (int e = 0; e < W; ++e) {
        v[e] += bv[e];
        d[e] *= gelu_cdf(v[e]) + v[e] * expf(-0.5f * v[e] * v[e]) * 0.3989422804014327f;
        s[e] += d[e];
      }
      if (dx) store<W>(dx + r * C, ch, d);
    }
  }
#pragma unroll
  for (int e = 0; e < W; ++e) red[threadIdx.y][e * 32 + threadIdx.x] = s[e];
  __syncthreads();
  if (threadIdx.y != 0 || ch >= C || !part) return;
#pragma unroll
  for (int e = 0; e < W; ++e) {
    float t = 0.f;
    for (int k = 0; k < 8; ++k) t += red[k][e * 32 + threadIdx.x];
    part[int64_t(blockIdx.y) * C + ch + e] = t;
  }
}

void bias_gelu_forward(OpCall& c) {
  const Tensor& x = c.in[0];
  Tensor b = f32_param(c.in[1]);
  int64_t n = x.numel();
  dispatch_f32_bf16("bias_gelu", x, [&](auto t) {
    using T = decltype(t);
    constexpr int V = kVec16<T>;
    bool vec = aligned16(x) && aligned16(c.out[0]);
    SD_LAUNCH((vec ? bias_gelu_fwd<T, V> : bias_gelu_fwd<T, 1>),
              cuda::grid_for(vec ? n / V + 1 : n, 256), 256, 0, cuda::stream(), ptr<T>(x),
              b.data<float>(), ptr<T>(c.out[0]), n, x.dim(-1));
  });
}

void bias_gelu_backward(GradCall& c) {
  const Tensor& x = c.in[0];
  const Tensor& g = c.grad_out[0];
  Tensor b = f32_param(c.in[1]);
  F32Grad db(c.grad_in[1]);
  int64_t C = x.dim(-1), rows = x.numel() / C;
  dispatch_f32_bf16("bias_gelu", x, [&](auto t) {
    using T = decltype(t);
    constexpr int V = kVec16<T>;
    bool vec = C % V == 0 && aligned16(x) && aligned16(g) && aligned16(c.grad_in[0]) &&
               aligned16(b);
    int64_t tiles = (C + 32 * (vec ? V : 1) - 1) / (32 * (vec ? V : 1));
    // Row ranges: about four blocks per SM in all, at least 8 rows (one per thread row) each.
    int64_t chunks = std::clamp<int64_t>((4 * int64_t(sm_count()) + tiles - 1) / tiles, 1,
                                         std::min<int64_t>((rows + 7) / 8, 65535));
    int64_t per = (rows + chunks - 1) / chunks;
    chunks = (rows + per - 1) / per;
    Tensor part;
    if (db.ptr()) part = Tensor::empty({chunks, C}, DType::F32, Device::CUDA);
    SD_LAUNCH((vec ? bias_gelu_bwd<T, V> : bias_gelu_bwd<T, 1>),
              dim3(unsigned(tiles), unsigned(chunks)), dim3(32, 8), 0, cuda::stream(),
              ptr<T>(x), b.data<float>(), ptr<T>(g), ptr<T>(c.grad_in[0]),
              part.defined() ? part.data<float>() : nullptr, rows, C, per);
    if (db.ptr()) launch_column_sum(part.data<float>(), chunks, C, 0, C, db.ptr());
  });
  db.finish();
}

}  // namespace

void register_fused_cuda(Registry& r) {
  r.mutable_at("group_norm_mod").cuda = {group_norm_mod_forward,
                                         backward_or_zero<group_norm_mod_backward>};
  r.mutable_at("layer_norm_mod").cuda = {layer_norm_mod_forward,
                                         backward_or_zero<layer_norm_mod_backward>};
  r.mutable_at("bias_gelu").cuda = {bias_gelu_forward, backward_or_zero<bias_gelu_backward>};
  // Native bf16 (kernels/registry.h): bf16 activations in and out, f32 statistics and sums.
  for (const char* op : {"group_norm_mod", "layer_norm_mod", "bias_gelu"})
    r.mutable_at(op).cuda.bf16 = true;
}

}  // namespace sd
