// CUDA backend of the elementwise family (math in kernels/cpu/elementwise.cpp).
// Memory traffic: each op reads its operands once and writes once; the same-shape path is a flat
// grid-stride loop, the broadcast path adds index arithmetic but no extra traffic.
// The gradient of a broadcast (reduced) operand, ga[j] = sum of g (* the other operand) over the
// output elements that read element j, is a split reduction with no atomics: blocks of (32, 8)
// threads take a tile of operand elements and a chunk of the terms, the coalesced thread axis on
// whichever of the two is contiguous in memory, and write one partial per element and chunk;
// column_sum adds the chunks in order (one chunk: the block writes ga itself). Traffic: read g
// (and the other operand) once, write ga once, plus chunks x |ga| floats of partials, which the
// chunk count keeps small (about four blocks per SM in all). SIMDIFF_CUDA_ATOMICS=1 instead adds
// every term into a zeroed ga with atomicAdd, in whatever order the threads run.
#include <algorithm>
#include <cmath>

#include "kernels/broadcast.h"
#include "kernels/cuda/reduce.cuh"

namespace sd {
namespace {

struct AddF { __device__ float operator()(float a, float b) const { return a + b; } };
struct MulF { __device__ float operator()(float a, float b) const { return a * b; } };

template <class F>
__global__ void binary_kernel(Broadcast bc, const float* a, const float* b, float* y, F f) {
  CUDA_LOOP(i, bc.numel) {
    int64_t ia = i, ib = i;
    if (!bc.same) bc.offsets(i, ia, ib);
    y[i] = f(a[ia], b[ib]);
  }
}

// ga[self(i)] = g[i] * (other ? other[oth(i)] : 1) for an operand of the output's size (`full`);
// for a broadcast one, atomicAdd of each term (SIMDIFF_CUDA_ATOMICS=1 only).
__global__ void binary_grad_kernel(Broadcast bc, bool for_a, bool full, const float* g,
                                   const float* other, float* ga) {
  CUDA_LOOP(i, bc.numel) {
    int64_t ia = i, ib = i;
    if (!bc.same) bc.offsets(i, ia, ib);
    int64_t self = for_a ? ia : ib, oth = for_a ? ib : ia;
    float v = other ? g[i] * other[oth] : g[i];
    if (full) ga[self] = v;
    else atomicAdd(ga + self, v);
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
// out[chunk * M + j] receives the sum: ga itself when there is one chunk, else the partials.
// `other` null: add; `other_full`: the other operand has the output's shape (offset i itself).
template <bool kJInner>
__global__ void bcast_grad_kernel(BcastSplit s, Broadcast bc, bool for_a, const float* g,
                                  const float* other, bool other_full, float* out, int64_t per) {
  __shared__ float red[8][33];
  const int64_t j = kJInner ? int64_t(blockIdx.x) * 32 + threadIdx.x
                            : int64_t(blockIdx.x) * 8 + threadIdx.y;
  const int64_t r0 = int64_t(blockIdx.y) * per, r1 = r0 + per < s.R ? r0 + per : s.R;
  float acc = 0.f;
  if (j < s.M) {
    const int64_t base = s.kept(j);
    for (int64_t r = r0 + (kJInner ? threadIdx.y : threadIdx.x); r < r1; r += kJInner ? 8 : 32) {
      int64_t i = base + s.reduced(r);
      float v = g[i];
      if (other) {
        int64_t ia = i, ib = i;
        if (!other_full) bc.offsets(i, ia, ib);
        v *= other[for_a ? ib : ia];
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
    out[int64_t(blockIdx.y) * s.M + j] = t;
  } else {
    acc = cuda::warp_sum(acc);  // the warp is one threadIdx.y row: uniform j
    if (threadIdx.x == 0 && j < s.M) out[int64_t(blockIdx.y) * s.M + j] = acc;
  }
}

void check_f32(const std::string& op, const Tensor& t) {
  SD_CHECK(t.dtype() == DType::F32, op, ": the cuda backend computes this op in f32, got ",
           t.desc());
}

template <class F>
void binary_forward(OpCall& c, const char* op, F f) {
  check_f32(op, c.in[0]);
  Broadcast bc = make_broadcast(op, c.in[0].shape(), c.in[1].shape());
  SD_LAUNCH(binary_kernel<F>, cuda::grid_for(bc.numel, 256), 256, 0, cuda::stream(), bc,
            c.in[0].data<float>(), c.in[1].data<float>(), c.out[0].data<float>(), f);
}

// The gradient of operand k (0: a, 1: b) when it is broadcast: the split reduction above.
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
  Tensor part;
  if (chunks > 1) part = Tensor::empty({chunks, s.M}, DType::F32, Device::CUDA);
  float* out = chunks > 1 ? part.data<float>() : ga.data<float>();
  const float* po = other ? other->data<float>() : nullptr;
  const bool other_full = other && other->numel() == bc.numel;
  auto kernel = j_inner ? bcast_grad_kernel<true> : bcast_grad_kernel<false>;
  SD_LAUNCH(kernel, dim3(unsigned(tiles), unsigned(chunks)), dim3(32, 8), 0, cuda::stream(), s, bc,
            k == 0, g.data<float>(), po, other_full, out, per);
  if (chunks > 1) cuda::launch_column_sum(out, chunks, s.M, 0, s.M, ga.data<float>());
}

void binary_backward(GradCall& c, const char* op, bool is_mul) {
  Broadcast bc = make_broadcast("binary", c.in[0].shape(), c.in[1].shape());
  for (int k = 0; k < 2; ++k) {
    Tensor& ga = c.grad_in[k];
    if (!ga.defined()) continue;
    const Tensor* other = is_mul ? &c.in[1 - k] : nullptr;
    bool full = ga.numel() == bc.numel;
    if (!full && !cuda::float_atomics()) {
      bcast_grad(op, bc, k, c.grad_out[0], other, ga);
      continue;
    }
    if (!full) ga.zero_();
    SD_LAUNCH(binary_grad_kernel, cuda::grid_for(bc.numel, 256), 256, 0, cuda::stream(), bc, k == 0,
              full, c.grad_out[0].data<float>(), other ? other->data<float>() : nullptr,
              ga.data<float>());
  }
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
__global__ void unary_kernel(const float* x, float* y, int64_t n) {
  CUDA_LOOP(i, n) y[i] = U::f(x[i]);
}
template <class U>
__global__ void unary_grad_kernel(const float* x, const float* g, float* dx, int64_t n) {
  CUDA_LOOP(i, n) dx[i] = g[i] * U::df(x[i]);
}
__global__ void scale_kernel(const float* x, float* y, float s, int64_t n) {
  CUDA_LOOP(i, n) y[i] = s * x[i];
}

template <class U>
Backend unary_backend(const char* op) {
  return {[op](OpCall& c) {
            check_f32(op, c.in[0]);
            int64_t n = c.in[0].numel();
            SD_LAUNCH(unary_kernel<U>, cuda::grid_for(n, 256), 256, 0, cuda::stream(),
                      c.in[0].data<float>(), c.out[0].data<float>(), n);
          },
          [](GradCall& c) {
            if (!c.grad_in[0].defined()) return;
            int64_t n = c.in[0].numel();
            SD_LAUNCH(unary_grad_kernel<U>, cuda::grid_for(n, 256), 256, 0, cuda::stream(),
                      c.in[0].data<float>(), c.grad_out[0].data<float>(),
                      c.grad_in[0].data<float>(), n);
          }};
}

void launch_scale(const Tensor& x, const Tensor& y, float s) {
  check_f32("scale", x);
  SD_LAUNCH(scale_kernel, cuda::grid_for(x.numel(), 256), 256, 0, cuda::stream(), x.data<float>(),
            y.data<float>(), s, x.numel());
}

}  // namespace

void register_elementwise_cuda(Registry& r) {
  r.mutable_at("add").cuda = {[](OpCall& c) { binary_forward(c, "add", AddF{}); },
                              [](GradCall& c) { binary_backward(c, "add", false); }};
  r.mutable_at("mul").cuda = {[](OpCall& c) { binary_forward(c, "mul", MulF{}); },
                              [](GradCall& c) { binary_backward(c, "mul", true); }};
  r.mutable_at("scale").cuda = {
      [](OpCall& c) { launch_scale(c.in[0], c.out[0], float(double(c.attrs["s"]))); },
      [](GradCall& c) {
        if (c.grad_in[0].defined())
          launch_scale(c.grad_out[0], c.grad_in[0], float(double(c.attrs["s"])));
      }};
  r.mutable_at("silu").cuda = unary_backend<Silu>("silu");
  r.mutable_at("gelu").cuda = unary_backend<Gelu>("gelu");
}

}  // namespace sd
