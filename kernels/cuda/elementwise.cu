// CUDA backend of the elementwise family (math in kernels/cpu/elementwise.cpp).
// Memory traffic: each op reads its operands once and writes once; the same-shape path is a flat
// grid-stride loop, the broadcast path adds index arithmetic but no extra traffic. The gradient
// of a broadcast (reduced) operand accumulates with atomicAdd into a zeroed buffer.
#include <cmath>

#include "kernels/broadcast.h"
#include "kernels/cuda/launch.cuh"

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

// ga[self(i)] (+)= g[i] * (other ? other[oth(i)] : 1)
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

void binary_backward(GradCall& c, bool is_mul) {
  Broadcast bc = make_broadcast("binary", c.in[0].shape(), c.in[1].shape());
  for (int k = 0; k < 2; ++k) {
    Tensor& ga = c.grad_in[k];
    if (!ga.defined()) continue;
    bool full = ga.numel() == bc.numel;
    if (!full) ga.zero_();
    const float* other = is_mul ? c.in[1 - k].data<float>() : nullptr;
    SD_LAUNCH(binary_grad_kernel, cuda::grid_for(bc.numel, 256), 256, 0, cuda::stream(), bc, k == 0,
              full, c.grad_out[0].data<float>(), other, ga.data<float>());
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
                              [](GradCall& c) { binary_backward(c, false); }};
  r.mutable_at("mul").cuda = {[](OpCall& c) { binary_forward(c, "mul", MulF{}); },
                              [](GradCall& c) { binary_backward(c, true); }};
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
