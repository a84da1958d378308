// CUDA backend of the elementwise family (math in kernels/cpu/elementwise.cpp), native f32 and
// bf16: each tensor f32 or bf16 as infer() allows (a bf16 activation plus an f32 operand, say),
// f32 arithmetic, one rounding per bf16 result (kernels/cuda/pack8.cuh).
// Memory traffic: each op reads its operands once and writes once, so bf16 halves the bytes. One
// kernel serves every op (add, mul, scale, silu, gelu, forward and backward): y[i] = f(a, b) over
// the output, a thread taking a pack of 8 consecutive outputs with 16-byte loads and stores (bf16:
// 2 B per element per tensor, one access; f32: 4 B, two) of every operand in the output's layout
// when the pointers are 16-byte aligned; a broadcast operand (a bias, a per-channel scale) is
// read element by element through a cursor (small and cache-resident), the last n % 8 elements
// one by one.
// The gradient of a broadcast (reduced) operand, ga[j] = sum of g (* the other operand) over the
// output elements that read element j, is a split reduction with no atomics: blocks of (32, 8)
// threads take a tile of operand elements and a chunk of the terms, the coalesced thread axis on
// whichever of the two is contiguous in memory, and write one partial per element and chunk;
// column_sum adds the chunks in order (one chunk: the block writes ga itself). Sums are f32, ga
// rounded once. Traffic: read g (and the other operand) once, write ga once, plus chunks x |ga|
// floats of partials, which the chunk count keeps small (about four blocks per SM in all).
// SIMDIFF_CUDA_ATOMICS=1 instead adds every term into a zeroed f32 ga with atomicAdd, in whatever
// order the threads run (a bf16 ga always takes the split reduction: no rounding per term).
#include <algorithm>
#include <cmath>

#include "kernels/broadcast.h"
#include "kernels/cuda/pack8.cuh"
#include "kernels/cuda/reduce.cuh"

namespace sd {
namespace {

using cuda::bf16;

struct AddF { __device__ float operator()(float a, float b) const { return a + b; } };
struct MulF { __device__ float operator()(float a, float b) const { return a * b; } };

// Where output element i finds its element of an operand. Most operands are a "repeat": their
// elements in order, each repeated `inner` times, the whole cycled: index (i / inner) % period
// (the output's shape: inner 1, period n; a bias [C] on [.., C]: 1, C; a per-channel [1, C, 1, 1]
// on [B, C, H, W]: H*W, C). Any other broadcast goes through the strides.
struct Operand {
  bool repeat = true;
  bool vec = false;  // the output's own layout (index i) and 16-byte aligned: packs load whole
  int64_t inner = 1, period = 1;
  int64_t stride[kMaxDims] = {};

  __device__ int64_t index(const Broadcast& bc, int64_t i) const {
    if (repeat) return i / inner % period;
    int64_t o = 0;
    for (int d = bc.ndim - 1; d >= 0; --d) {
      o += i % bc.out_shape[d] * stride[d];
      i /= bc.out_shape[d];
    }
    return o;
  }
};

// The operand with broadcast strides `stride` (Broadcast's a_stride / b_stride) at p: a repeat
// when the output dims it keeps (size > 1, stride != 0) are consecutive among the output's dims
// of size > 1.
Operand operand_of(const Broadcast& bc, const int64_t* stride, const void* p) {
  Operand o;
  std::copy(stride, stride + kMaxDims, o.stride);
  int state = 0;  // 0: before the kept dims, 1: in them, 2: after
  for (int d = 0; d < bc.ndim; ++d) {
    int64_t n = bc.out_shape[d];
    if (n <= 1) continue;
    if (stride[d] != 0) {
      if (state == 2) o.repeat = false;
      state = 1;
      o.period *= n;
    } else {
      if (state == 1) state = 2;
      if (state == 2) o.inner *= n;
    }
  }
  o.vec = o.repeat && o.inner == 1 && o.period == bc.numel && cuda::aligned16(p);
  return o;
}

// An operand in the output's layout (a same-shape input, an output gradient).
Operand full_operand(const Broadcast& bc, const void* p) {
  Operand o;
  o.period = bc.numel;
  o.vec = cuda::aligned16(p);
  return o;
}

// v[k] = x[operand index of i0 + k], k < 8; x null: 1 (add's gradient, a unary op's second slot).
template <class T>
__device__ __forceinline__ void gather8(const T* x, const Operand& o, const Broadcast& bc,
                                        int64_t i0, float (&v)[8]) {
  if (!x) {
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = 1.f;
  } else if (o.vec) {
    cuda::load8(x + i0, v);
  } else if (o.repeat) {  // a cursor: one division per pack
    int64_t q = i0 / o.inner % o.period, r = i0 % o.inner;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      v[k] = cuda::ld(x + q);
      if (++r == o.inner) {
        r = 0;
        if (++q == o.period) q = 0;
      }
    }
  } else {
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = cuda::ld(x + o.index(bc, i0 + k));
  }
}

template <class T>
__device__ __forceinline__ float gather1(const T* x, const Operand& o, const Broadcast& bc,
                                         int64_t i) {
  return x ? cuda::ld(x + o.index(bc, i)) : 1.f;
}

// y[i] = f(a[oa(i)], b[ob(i)]) for the bc.numel outputs (b null: 1), one pack of 8 per thread,
// the last numel % 8 element by element. y may alias a or b (in-place accumulation): each thread
// reads its elements before writing them.
template <class Ty, class Ta, class Tb, class F>
__global__ void binary_kernel(Broadcast bc, Operand oa, Operand ob, bool yvec, const Ta* a,
                              const Tb* b, Ty* y, F f) {
  const int64_t n = bc.numel;
  CUDA_LOOP(p, (n + 7) / 8) {
    const int64_t i0 = p * 8;
    if (i0 + 8 <= n) {
      float va[8], vb[8];
      gather8(a, oa, bc, i0, va);
      gather8(b, ob, bc, i0, vb);
#pragma unroll
      for (int k = 0; k < 8; ++k) va[k] = f(va[k], vb[k]);
      if (yvec) {
        cuda::store8(y + i0, va);
      } else {
#pragma unroll
        for (int k = 0; k < 8; ++k) cuda::st(y + i0 + k, va[k]);
      }
    } else {
      for (int64_t i = i0; i < n; ++i)
        cuda::st(y + i, f(gather1(a, oa, bc, i), gather1(b, ob, bc, i)));
    }
  }
}

// y = f(a, b) over bc's output; a, b, y f32 or bf16 tensors (b may be undefined: 1).
template <class Ty, class Ta, class Tb, class F>
void launch_binary(const Broadcast& bc, const Tensor& a, const Operand& oa, const Tensor& b,
                   const Operand& ob, const Tensor& y, F f) {
  Ty* py = cuda::ptr<Ty>(y);
  SD_LAUNCH((binary_kernel<Ty, Ta, Tb, F>), cuda::grid_for((bc.numel + 7) / 8, 256), 256, 0,
            cuda::stream(), bc, oa, ob, cuda::aligned16(py), cuda::ptr<Ta>(a), cuda::ptr<Tb>(b),
            py, f);
}

// A unary map y = f(x, aux) of same-shape tensors (aux undefined: 1), x, aux, y of type T, as
// flat vectors (any number of dimensions).
template <class T, class F>
void launch_unary(const Tensor& x, const Tensor& aux, const Tensor& y, F f) {
  Broadcast bc = make_broadcast("unary", {x.numel()}, {x.numel()});
  launch_binary<T, T, T>(bc, x, full_operand(bc, x.raw()), aux,
                         full_operand(bc, aux.defined() ? aux.raw() : nullptr), y, f);
}

// ga[i_self] += g[i] * (other ? other[i_other] : 1) with float atomics into a zeroed f32 ga, for a
// broadcast operand (SIMDIFF_CUDA_ATOMICS=1 only).
template <class Tg, class To>
__global__ void binary_grad_atomic_kernel(Broadcast bc, bool for_a, const Tg* g, const To* other,
                                          float* ga) {
  CUDA_LOOP(i, bc.numel) {
    int64_t ia = i, ib = i;
    bc.offsets(i, ia, ib);
    float v = other ? cuda::ld(g + i) * cuda::ld(other + (for_a ? ib : ia)) : cuda::ld(g + i);
    atomicAdd(ga + (for_a ? ia : ib), v);
  }
}

// The output as (operand element j, term r): the output dims the operand keeps (its own, in
// order, so j is its flat index) and those it is broadcast over, adjacent dims of one kind merged,
// each with its output stride. Output offset of (j, r) = kept offset of j + reduced offset of r.
struct BcastSplit {
  int nk = 0, nr = 0;
  int64_t ksize[kMaxDims] = {}, kstride[kMaxDims] = {};
  int64_t rsize[kMaxDims] = {}, rstride[kMaxDims] = {};
  int64_t M = 1, R = 1;  // operand elements, terms per element

  __device__ static int64_t offset(int64_t idx, int n, const int64_t* size, const int64_t* stride) {
    int64_t o = 0;
    for (int d = n - 1; d >= 0; --d) {
      o += idx % size[d] * stride[d];
      idx /= size[d];
    }
    return o;
  }
  __device__ int64_t kept(int64_t j) const { return offset(j, nk, ksize, kstride); }
  __device__ int64_t reduced(int64_t r) const { return offset(r, nr, rsize, rstride); }
  bool j_inner() const { return nk > 0 && kstride[nk - 1] == 1; }
};

BcastSplit split_of(const Broadcast& bc, bool for_a) {
  BcastSplit s;
  int64_t stride = 1, ostride[kMaxDims];
  for (int d = bc.ndim - 1; d >= 0; --d) ostride[d] = stride, stride *= bc.out_shape[d];
  bool prev_kept = false;
  int64_t prev_stride = 0;
  for (int d = 0; d < bc.ndim; ++d) {
    int64_t n = bc.out_shape[d];
    if (n == 1) continue;
    bool kept = (for_a ? bc.a_stride[d] : bc.b_stride[d]) != 0;
    int& cnt = kept ? s.nk : s.nr;
    int64_t* size = kept ? s.ksize : s.rsize;
    int64_t* str = kept ? s.kstride : s.rstride;
    if (cnt > 0 && kept == prev_kept && prev_stride == n * ostride[d]) {  // adjacent: merge
      size[cnt - 1] *= n;
      str[cnt - 1] = ostride[d];
    } else {
      size[cnt] = n;
      str[cnt] = ostride[d];
      ++cnt;
    }
    (kept ? s.M : s.R) *= n;
    prev_kept = kept;
    prev_stride = ostride[d];
  }
  return s;
}

// Block (32, 8), blockIdx.y = chunk of terms [chunk * per, +per). kJInner (the operand's
// innermost element is contiguous in the output): threadIdx.x walks 32 consecutive elements j,
// threadIdx.y strides the terms, and shared memory adds the 8 row sums. Otherwise threadIdx.y
// picks one of 8 elements and the warp's lanes walk its terms (contiguous), then a warp sum.
// out[chunk * M + j] receives the f32 sum: ga itself (Tout its type) when there is one chunk,
// else the f32 partials.
// `other` null: add; `other_full`: the other operand has the output's shape (offset i itself).
template <bool kJInner, class Tout, class Tg, class To>
__global__ void bcast_grad_kernel(BcastSplit s, Broadcast bc, bool for_a, const Tg* g,
                                  const To* other, bool other_full, Tout* out, int64_t per) {
  __shared__ float red[8][33];
  const int64_t j = kJInner ? int64_t(blockIdx.x) * 32 + threadIdx.x
                            : int64_t(blockIdx.x) * 8 + threadIdx.y;
  const int64_t r0 = int64_t(blockIdx.y) * per, r1 = r0 + per < s.R ? r0 + per : s.R;
  float acc = 0.f;
  if (j < s.M) {
    const int64_t base = s.kept(j);
    for (int64_t r = r0 + (kJInner ? threadIdx.y : threadIdx.x); r < r1; r += kJInner ? 8 : 32) {
      int64_t i = base + s.reduced(r);
      float v = cuda::ld(g + i);
      if (other) {
        int64_t ia = i, ib = i;
        if (!other_full) bc.offsets(i, ia, ib);
        v *= cuda::ld(other + (for_a ? ib : ia));
      }
      acc += v;
    }
  }
  if constexpr (kJInner) {
    red[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y != 0 || j >= s.M) return;
    float t = 0.f;
    for (int k = 0; k < 8; ++k) t += red[k][threadIdx.x];
    cuda::st(out + int64_t(blockIdx.y) * s.M + j, t);
  } else {
    acc = cuda::warp_sum(acc);  // the warp is one threadIdx.y row: uniform j
    if (threadIdx.x == 0 && j < s.M) cuda::st(out + int64_t(blockIdx.y) * s.M + j, acc);
  }
}

// The gradient of operand k (0: a, 1: b) when it is broadcast: the split reduction above. Tg: the
// output gradient's type, To: the other operand's (mul), Tga: the gradient's.
template <class Tga, class Tg, class To>
void bcast_grad(const char* op, const Broadcast& bc, int k, const Tensor& g, const Tensor* other,
                Tensor& ga) {
  BcastSplit s = split_of(bc, k == 0);
  if (s.R == 0 || s.M == 0) {  // an empty output: nothing flows back
    ga.zero_();
    return;
  }
  const bool j_inner = s.j_inner();
  const int64_t tile = j_inner ? 32 : 8, lanes = j_inner ? 8 : 32;
  const int64_t tiles = (s.M + tile - 1) / tile;
  // About four blocks per SM, each thread summing at least 4 terms.
  int64_t chunks = cuda::capped_grid(std::min((4 * int64_t(cuda::sm_count()) + tiles - 1) / tiles,
                                              (s.R + 4 * lanes - 1) / (4 * lanes)),
                                     65535);
  const int64_t per = (s.R + chunks - 1) / chunks;
  chunks = (s.R + per - 1) / per;
  SD_CHECK(tiles <= INT32_MAX, op, ": the cuda backward takes broadcast operands of at most 2^34 "
           "elements, got ", s.M);
  const To* po = other ? cuda::ptr<To>(*other) : nullptr;
  const bool other_full = other && other->numel() == bc.numel;
  const dim3 grid = dim3(unsigned(tiles), unsigned(chunks)), block = dim3(32, 8);
  auto run = [&](auto* out) {
    using Tout = std::remove_pointer_t<decltype(out)>;
    auto kernel = j_inner ? bcast_grad_kernel<true, Tout, Tg, To>
                          : bcast_grad_kernel<false, Tout, Tg, To>;
    SD_LAUNCH(kernel, grid, block, 0, cuda::stream(), s, bc, k == 0, cuda::ptr<Tg>(g), po,
              other_full, out, per);
  };
  if (chunks == 1) {
    run(cuda::ptr<Tga>(ga));
    return;
  }
  Tensor part = Tensor::empty({chunks, s.M}, DType::F32, Device::CUDA);
  run(part.data<float>());
  cuda::launch_column_sum(part.data<float>(), chunks, s.M, 0, s.M, cuda::ptr<Tga>(ga));
}

// Gradients of add (is_mul false: ga = g) and mul (ga = g * b, gb = g * a) with a of type Ta (and
// g, the output's gradient, too) and b of type Tb.
template <class Ta, class Tb>
void binary_backward(GradCall& c, const char* op, bool is_mul) {
  Broadcast bc = make_broadcast(op, c.in[0].shape(), c.in[1].shape());
  const Tensor& g = c.grad_out[0];
  SD_CHECK(g.defined(), op, ": the backward needs the output gradient");
  for (int k = 0; k < 2; ++k) {
    Tensor& ga = c.grad_in[k];
    if (!ga.defined()) continue;
    const Tensor* other = is_mul ? &c.in[1 - k] : nullptr;
    // k = 0: ga is Ta's, the other operand Tb's; k = 1 the reverse.
    auto grad = [&](auto tga, auto to) {
      using Tga = decltype(tga);
      using To = decltype(to);
      if (ga.numel() == bc.numel) {  // the output's layout: elementwise
        Operand oo = other ? operand_of(bc, k == 0 ? bc.b_stride : bc.a_stride, other->raw())
                           : Operand{};
        launch_binary<Tga, Ta, To>(bc, g, full_operand(bc, g.raw()), other ? *other : Tensor(), oo,
                                   ga, MulF{});
      } else if (cuda::float_atomics() && ga.dtype() == DType::F32) {
        ga.zero_();
        SD_LAUNCH((binary_grad_atomic_kernel<Ta, To>), cuda::grid_for(bc.numel, 256), 256, 0,
                  cuda::stream(), bc, k == 0, cuda::ptr<Ta>(g),
                  other ? cuda::ptr<To>(*other) : nullptr, ga.data<float>());
      } else {
        bcast_grad<Tga, Ta, To>(op, bc, k, g, other, ga);
      }
    };
    if (k == 0) grad(Ta{}, Tb{});
    else grad(Tb{}, Ta{});
  }
}

// f(a, b) for the (Ta, Tb) of the call's two operands.
template <class F>
void dispatch_binary(const char* op, const Tensor& a, const Tensor& b, F&& f) {
  cuda::dispatch_f32_bf16(op, a, [&](auto ta) {
    cuda::dispatch_f32_bf16(op, b, [&](auto tb) { f(ta, tb); });
  });
}

template <class F>
Backend binary_backend(const char* op, bool is_mul, F f) {
  return {[=](OpCall& c) {
            dispatch_binary(op, c.in[0], c.in[1], [&](auto ta, auto tb) {
              using Ta = decltype(ta);
              using Tb = decltype(tb);
              Broadcast bc = make_broadcast(op, c.in[0].shape(), c.in[1].shape());
              launch_binary<Ta, Ta, Tb>(bc, c.in[0], operand_of(bc, bc.a_stride, c.in[0].raw()),
                                        c.in[1], operand_of(bc, bc.b_stride, c.in[1].raw()),
                                        c.out[0], f);
            });
          },
          [=](GradCall& c) {
            dispatch_binary(op, c.in[0], c.in[1], [&](auto ta, auto tb) {
              binary_backward<decltype(ta), decltype(tb)>(c, op, is_mul);
            });
          },
          true};
}

// ---- unary: y = f(x), dx = g * f'(x) ----
struct Silu {
  __device__ static float f(float x) { return x / (1.f + expf(-x)); }
  __device__ static float df(float x) {
    float s = 1.f / (1.f + expf(-x));
    return s * (1.f + x * (1.f - s));
  }
};
struct Gelu {
  __device__ static float cdf(float x) { return 0.5f * (1.f + erff(x * 0.70710678118654752f)); }
  __device__ static float f(float x) { return x * cdf(x); }
  __device__ static float df(float x) {
    return cdf(x) + x * expf(-0.5f * x * x) * 0.3989422804014327f;
  }
};
template <class U>
struct UnaryF {  // y = f(x); the second slot is empty (1)
  __device__ float operator()(float x, float) const { return U::f(x); }
};
template <class U>
struct UnaryGradF {  // dx = g * f'(x)
  __device__ float operator()(float x, float g) const { return g * U::df(x); }
};
struct ScaleF {  // y = s x
  float s;
  __device__ float operator()(float x, float) const { return s * x; }
};

template <class U>
Backend unary_backend(const char* op) {
  return {[op](OpCall& c) {
            cuda::dispatch_f32_bf16(op, c.in[0], [&](auto t) {
              launch_unary<decltype(t)>(c.in[0], Tensor(), c.out[0], UnaryF<U>{});
            });
          },
          [op](GradCall& c) {
            if (!c.grad_in[0].defined()) return;
            SD_CHECK(c.grad_out[0].defined(), op, ": the backward needs the output gradient");
            cuda::dispatch_f32_bf16(op, c.in[0], [&](auto t) {
              launch_unary<decltype(t)>(c.in[0], c.grad_out[0], c.grad_in[0], UnaryGradF<U>{});
            });
          },
          true};
}

void launch_scale(const Tensor& x, const Tensor& y, float s) {
  cuda::dispatch_f32_bf16("scale", x, [&](auto t) {
    launch_unary<decltype(t)>(x, Tensor(), y, ScaleF{s});
  });
}

}  // namespace

void register_elementwise_cuda(Registry& r) {
  r.mutable_at("add").cuda = binary_backend("add", false, AddF{});
  r.mutable_at("mul").cuda = binary_backend("mul", true, MulF{});
  r.mutable_at("scale").cuda = {
      [](OpCall& c) { launch_scale(c.in[0], c.out[0], float(double(c.attrs["s"]))); },
      [](GradCall& c) {
        if (c.grad_in[0].defined())
          launch_scale(c.grad_out[0], c.grad_in[0], float(double(c.attrs["s"])));
      },
      true};
  r.mutable_at("silu").cuda = unary_backend<Silu>("silu");
  r.mutable_at("gelu").cuda = unary_backend<Gelu>("gelu");
}

}  // namespace sd
