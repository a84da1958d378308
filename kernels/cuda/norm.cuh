// Pieces of the CUDA norm family (kernels/cuda/norm.cu) that the fused norm + conditioning ops
// (kernels/cuda/fused.cu) share: launch shapes, the element types and 16-byte accesses, the f32
// parameter views, group sizes, the zero-gradient shortcut, and the layer norm backward that
// layer_norm and layer_norm_mod both run; the sums and the fixed-order column sum come from
// kernels/cuda/reduce.cuh.
//
// Element types (native bf16, kernels/registry.h): the activations x, y, their gradients and dx
// are T = float or bf16 (one type per call: y and the gradients take x's dtype); the statistics
// (mean, rstd) and every sum are f32; the small parameters (gamma, beta, scale, shift, bias: C or
// B*C values) are read as f32: the model keeps them f32, and a bf16 one is widened first (exact,
// one pass over C values) and its gradient rounded once at the end. Each bf16 result is rounded
// once, to nearest even, from its f32 value.
#pragma once
#include <type_traits>

#include "kernels/cuda/pack8.cuh"
#include "kernels/cuda/reduce.cuh"

namespace sd::cuda {

constexpr int kGnThreads = 256;    // group norm: one block of this many threads per (b, group)
constexpr int kGnCacheMax = 8192;  // group values cached in shared memory (<= 32 KB)
constexpr int kLnWarps = 4;        // layer norm: rows per forward block
constexpr int kLnCacheMax = 3072;  // rows up to this length are cached: 4 x <= 12 KB of shared
constexpr int kLnBwdWarps = 8;     // rows in flight per backward block
constexpr int kLnAccMax = 6144;    // 2C accumulators up to 48 KB of shared memory

// ---- element types and 16-byte accesses


// A kernel's chunk width W is kVec16<T> (pack8.cuh: 4 f32, 8 bf16; the pointers are 16-byte
// aligned and no chunk straddles a row, channel or group) or 1 (scalar).

// W consecutive elements, copied as one access (two 16-byte ones for 8 floats): the aggregate
// keeps the element type, so the copy is a plain typed load/store for nvcc and for C++.
template <class T, int W>
struct alignas(W * sizeof(T) < 16 ? W * sizeof(T) : 16) Chunk {
  T v[W];
};

// The helpers below take a base pointer (aligned to W elements) and an element index i, a
// multiple of W, and index the base as an array of chunks: nvcc keeps the 16-byte alignment of
// base[i / W] through unrolled loops, where an access at the element pointer base + i is split
// into element accesses.

// The chunk at base + i, moved as it is (a shared-memory cache of the input).
template <int W, class T>
__device__ __forceinline__ Chunk<T, W>& chunk_at(T* base, int64_t i) {
  return reinterpret_cast<Chunk<T, W>*>(base)[i / W];
}
template <int W, class T>
__device__ __forceinline__ const Chunk<T, W>& chunk_at(const T* base, int64_t i) {
  return reinterpret_cast<const Chunk<T, W>*>(base)[i / W];
}
template <int W, class T>
__device__ __forceinline__ void widen(const Chunk<T, W>& c, float (&out)[W]) {
#pragma unroll
  for (int k = 0; k < W; ++k) out[k] = to_f32(c.v[k]);
}

// W elements at base + i as f32.
template <int W, class T>
__device__ __forceinline__ void load(const T* base, int64_t i, float (&out)[W]) {
  Chunk<T, W> c = chunk_at<W>(base, i);
  widen(c, out);
}

// Two f32 values rounded to bf16, packed as one 32-bit word (a first, little-endian).
__device__ __forceinline__ unsigned pack_bf16(float a, float b) {
  return unsigned(__bfloat16_as_ushort(__float2bfloat16(a))) |
         unsigned(__bfloat16_as_ushort(__float2bfloat16(b))) << 16;
}

// W f32 values into base + i, each rounded once to T. A 16-byte chunk is stored as an explicit
// float4 / uint4 (nvcc splits some copies of an aggregate of bf16 into element stores).
template <int W, class T>
__device__ __forceinline__ void store(T* base, int64_t i, const float (&in)[W]) {
  if constexpr (W > 1 && std::is_same_v<T, float>) {
    static_assert(W == 4, "16-byte chunks of f32");
    reinterpret_cast<float4*>(base)[i / W] = make_float4(in[0], in[1], in[2], in[3]);
  } else if constexpr (W > 1) {
    static_assert(W == 8, "16-byte chunks of bf16");
    reinterpret_cast<uint4*>(base)[i / W] =
        make_uint4(pack_bf16(in[0], in[1]), pack_bf16(in[2], in[3]), pack_bf16(in[4], in[5]),
                   pack_bf16(in[6], in[7]));
  } else {
    base[i] = from_f32<T>(in[0]);
  }
}

__device__ __forceinline__ float sq(float v) { return v * v; }

// The mean and 1/sqrt(variance + eps) of the n values at xs, by the threads that share them (a
// warp for a layer-norm row, a block for a group): this thread takes chunks first, first + step,
// ..., and `sum` adds a value over all of them. A pass that sums the values (copying them into
// the shared-memory cache when `cache`), then one over the squared deviations (from the cache:
// each thread re-reads only its own slots, so no barrier). Two passes, not one of sums and
// squares, so a large mean does not cancel the variance.
template <int W, class T, class Sum>
__device__ __forceinline__ float2 moments(const T* xs, T* cached, bool cache, int n, int first,
                                          int step, float eps, Sum sum) {
  const T* src = cache ? cached : xs;
  float inv_n = 1.f / float(n), s = 0.f, q = 0.f, v[W];
  for (int i = first; i < n; i += step) {
    Chunk<T, W> c = chunk_at<W>(xs, i);
    if (cache) chunk_at<W>(cached, i) = c;
    widen(c, v);
#pragma unroll
    for (int e = 0; e < W; ++e) s += v[e];
  }
  float m = sum(s) * inv_n;
  for (int i = first; i < n; i += step) {
    load<W>(src, i, v);
#pragma unroll
    for (int e = 0; e < W; ++e) q += sq(v[e] - m);
  }
  return make_float2(m, rsqrtf(sum(q) * inv_n + eps));
}
// A layer-norm row, by one warp.
template <int W, class T>
__device__ __forceinline__ float2 row_moments(const T* xr, T* cached, bool cache, int C,
                                              float eps) {
  return moments<W>(xr, cached, cache, C, int(threadIdx.x % 32) * W, 32 * W, eps,
                    [](float v) { return warp_sum(v); });
}
// A group-norm group, by the whole block (`red`: block_sum's 32 floats of shared memory).
template <int W, class T>
__device__ __forceinline__ float2 group_moments(const T* xs, T* cached, bool cache, int n,
                                                float eps, float* red) {
  return moments<W>(xs, cached, cache, n, int(threadIdx.x) * W, int(blockDim.x) * W, eps,
                    [red](float v) { return block_sum(v, red); });
}

// ---- host side


bool aligned16(const Tensor& t);  // t's data starts on a 16-byte boundary (true if undefined)

// A parameter as the kernels read it: itself in f32, a bf16 one widened (exact).
Tensor f32_param(const Tensor& t);

// Where a kernel writes a parameter's gradient in f32: the gradient itself, or (bf16 gradient)
// an f32 buffer that finish() rounds into it once. Undefined gradient: ptr() is null.
struct F32Grad {
  Tensor grad, buf;
  explicit F32Grad(const Tensor& g);
  float* ptr() const { return buf.defined() ? buf.data<float>() : nullptr; }
  void finish() const;
};

// Group norm sizes of x [B, C, *spatial]: G groups of Cg channels, S positions per channel.
struct GroupNormDims {
  int64_t B;
  int G, Cg, S;
};
GroupNormDims group_norm_dims(const std::string& op, const Tensor& x, const Attrs& a);


// With no gradient flowing into y every input gradient is zero.
bool zero_if_no_grad(GradCall& c);

template <void (*F)(GradCall&)>
void backward_or_zero(GradCall& c) {
  if (!zero_if_no_grad(c)) F(c);
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

// Kernels have internal linkage: each .cu file instantiates its own.
namespace {

// ---- the layer norm backward (layer_norm, and layer_norm_mod: u = LN(x) (1 + scale) + shift,
// y = act(u); layer_norm is the case scale = shift = 0, act = identity, with sc == nullptr)
//
// x [B, N, C] as rows r = b*N + n (layer_norm: B = 1, N = rows); scale/shift of row r at b*C.
// dx = rs * (dxh - mean(dxh) - xh * mean(dxh * xh)), dxh = gu * (1 + scale) * gamma,
// gu = g * act'(u). Block (blockIdx.x = chunk, blockIdx.y = b) takes groups of kLnBwdWarps rows
// of batch b (group k starts at row (chunk + k * gridDim.x) * kLnBwdWarps). Phase 1, one warp per
// row of the group: the row's two sums, then dx (`dx` null: not wanted, phase 1 is skipped).
// Phase 2 (`part` null: no parameter gradient is wanted): thread t owns column chunks t,
// t + blockDim.x, ... and adds the group's rows in order to its P = sum gu * xh and Q = sum gu
// accumulators, so the partials are the same on every run (layer_norm: P = dgamma, Q = dbeta
// after the column sum). Phase 2 re-reads the rows phase 1 has just read (L1/L2 hits). `acc`
// (2C floats: P then Q) is shared memory (kSharedAcc), else the block's slice of `part`
// [B, chunks, 2C], which receives the result. `atomics` (SIMDIFF_CUDA_ATOMICS=1) instead adds
// each row into `acc` in phase 1 with atomics, the block's warps in whatever order they run.
// Traffic: x and g read once from DRAM (2 sizeof(T) per element), dx written once (sizeof(T)),
// in chunks of W elements (16 bytes), plus 2C floats per block.
template <class T, int W, bool kSilu, bool kSharedAcc>
__global__ void __launch_bounds__(kLnBwdWarps * 32)
    layer_norm_bwd(const T* __restrict__ x, const float* __restrict__ gamma,
                   const float* __restrict__ beta, const float* __restrict__ sc,
                   const float* __restrict__ sh, const float* __restrict__ mean,
                   const float* __restrict__ rstd, const T* __restrict__ g, T* __restrict__ dx,
                   float* part, bool atomics, int64_t N, int C) {
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
  atomics = atomics && want_acc;
  const float *scb = sc ? sc + b * C : nullptr, *shb = sh ? sh + b * C : nullptr;
  // The parameters of the W columns at i: gamma, k = 1 + scale, and (SiLU) beta and shift.
  struct Cols {
    float gm[W], k[W], bt[W], t[W];
  };
  auto cols_at = [&](int i) {
    Cols c;
    load<W>(gamma, i, c.gm);
    if (scb) {
      load<W>(scb, i, c.k);
#pragma unroll
      for (int e = 0; e < W; ++e) c.k[e] += 1.f;
    } else {
#pragma unroll
      for (int e = 0; e < W; ++e) c.k[e] = 1.f;
    }
    if constexpr (kSilu) {
      load<W>(beta, i, c.bt);
      load<W>(shb, i, c.t);
    }
    return c;
  };
  // xh and gu = g * act'(u) of W elements of row r at column i.
  auto row_at = [&](int64_t r, int i, const Cols& c, float (&xh)[W], float (&gu)[W]) {
    float m = mean[r], rs = rstd[r];
    load<W>(x + r * C, i, xh);
    load<W>(g + r * C, i, gu);
#pragma unroll
    for (int e = 0; e < W; ++e) {
      xh[e] = (xh[e] - m) * rs;
      if constexpr (kSilu) gu[e] *= act_grad<true>((xh[e] * c.gm[e] + c.bt[e]) * c.k[e] + c.t[e]);
    }
  };
  float inv_c = 1.f / float(C);
  for (int64_t n0 = int64_t(blockIdx.x) * kLnBwdWarps; n0 < N;
       n0 += int64_t(gridDim.x) * kLnBwdWarps) {
    const int64_t nn = n0 + warp, n1 = n0 + kLnBwdWarps < N ? n0 + kLnBwdWarps : N;
    // ---- phase 1: this warp's row
    if (nn < N && (dx || atomics)) {
      int64_t r = b * N + nn;
      float rs = rstd[r], s1 = 0.f, s2 = 0.f;
      for (int i = lane * W; i < C; i += 32 * W) {
        Cols c = cols_at(i);
        float xh[W], gu[W];
        row_at(r, i, c, xh, gu);
#pragma unroll
        for (int e = 0; e < W; ++e) {
          float dxh = gu[e] * c.k[e] * c.gm[e];
          s1 += dxh;
          s2 += dxh * xh[e];
          if (atomics) {
            atomicAdd(acc + i + e, gu[e] * xh[e]);
            atomicAdd(acc + C + i + e, gu[e]);
          }
        }
      }
      s1 = warp_sum(s1) * inv_c;
      s2 = warp_sum(s2) * inv_c;
      if (dx)
        for (int i = lane * W; i < C; i += 32 * W) {
          Cols c = cols_at(i);
          float xh[W], gu[W], d[W];
          row_at(r, i, c, xh, gu);
#pragma unroll
          for (int e = 0; e < W; ++e) d[e] = rs * (gu[e] * c.k[e] * c.gm[e] - s1 - xh[e] * s2);
          store<W>(dx + r * C, i, d);
        }
    }
    // ---- phase 2: the group's rows, in order, into this thread's columns
    if (atomics || !want_acc) continue;  // the atomic variant added its rows in phase 1
    for (int i = threadIdx.x * W; i < C; i += blockDim.x * W) {
      Cols c;
      if constexpr (kSilu) c = cols_at(i);  // only SiLU's act'(u) needs the parameters
      float p[W] = {}, q[W] = {};
      for (int64_t rr = b * N + n0; rr < b * N + n1; ++rr) {
        float xh[W], gu[W];
        row_at(rr, i, c, xh, gu);
#pragma unroll
        for (int e = 0; e < W; ++e) p[e] += gu[e] * xh[e], q[e] += gu[e];
      }
#pragma unroll
      for (int e = 0; e < W; ++e) acc[i + e] += p[e], acc[C + i + e] += q[e];
    }
  }
  if (kSharedAcc && want_acc) {
    __syncthreads();
    for (int i = threadIdx.x; i < 2 * C; i += blockDim.x) slice[i] = acc[i];
  }
}

// Launches layer_norm_bwd over x [B, N, C] with `chunks` blocks per batch; sc, sh, beta null for
// layer_norm. part: [B, chunks, 2C] f32, or null when no parameter gradient is wanted.
template <class T, bool kSilu>
void launch_layer_norm_bwd(const T* x, const float* gamma, const float* beta, const float* sc,
                           const float* sh, const float* mean, const float* rstd, const T* g,
                           T* dx, float* part, int64_t B, int64_t chunks, int64_t N, int C,
                           bool vec) {
  bool shared_acc = C <= kLnAccMax;
  size_t smem = part && shared_acc ? size_t(2) * C * sizeof(float) : 0;
  constexpr int V = kVec16<T>;
  auto kernel = vec ? (shared_acc ? layer_norm_bwd<T, V, kSilu, true>
                                  : layer_norm_bwd<T, V, kSilu, false>)
                    : (shared_acc ? layer_norm_bwd<T, 1, kSilu, true>
                                  : layer_norm_bwd<T, 1, kSilu, false>);
  SD_LAUNCH(kernel, dim3(unsigned(chunks), unsigned(B)), kLnBwdWarps * 32, smem, cuda::stream(),
            x, gamma, beta, sc, sh, mean, rstd, g, dx, part, float_atomics(), N, C);
}

}  // namespace

}  // namespace sd::cuda
