// CUDA backend of the optimizer family (math and validation in kernels/cpu/optim.cpp).
// adamw and ema are flat grid-stride loops over the whole arena: one launch for all parameters,
// 28 (adamw) / 12 (ema) bytes per f32 parameter, the minimum. Outputs may alias inputs (in-place
// updates): each element reads all its inputs before writing, so no __restrict__.
// grad_norm is two launches: per-block partial sums of squares (f32 per thread, warp shuffles,
// one value per block), then one block adds the <= 1024 partials in double and takes the sqrt.
#include <cmath>

#include "kernels/cuda/launch.cuh"

namespace sd {
namespace {

constexpr int kBlock = 256;
constexpr int kMaxPartials = 1024;

void check_f32(const char* op, const char* arg, const Tensor& t) {
  SD_CHECK(t.dtype() == DType::F32, op, ": the cuda backend computes in f32, '", arg, "' is ",
           t.desc());
}

struct AdamScalars {
  float decay, gs, beta1, beta2, one_b1, one_b2, neg_step_size, bc2_sqrt, eps;
};

__global__ void adamw_kernel(const float* p, const float* g, const float* m, const float* v,
                             float* po, float* mo, float* vo, int64_t n, AdamScalars k) {
  CUDA_LOOP(i, n) {
    float gi = g[i] * k.gs;
    float pi = p[i] * k.decay;
    float mi = m[i] * k.beta1 + k.one_b1 * gi;
    float vi = v[i] * k.beta2 + k.one_b2 * gi * gi;
    float denom = sqrtf(vi) / k.bc2_sqrt + k.eps;
    mo[i] = mi;
    vo[i] = vi;
    po[i] = pi + k.neg_step_size * mi / denom;
  }
}

__global__ void ema_kernel(const float* e, const float* p, float* out, int64_t n, float keep,
                           float take) {
  CUDA_LOOP(i, n) out[i] = keep * e[i] + take * p[i];
}

// Block-wide sum; every thread passes its value, thread 0 gets the total. blockDim.x must be a
// multiple of 32 and at most 1024.
template <class T>
__device__ T block_sum(T x) {
  __shared__ T warp_sums[32];
  for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = x;
  __syncthreads();
  int nwarps = blockDim.x / 32;
  x = int(threadIdx.x) < nwarps ? warp_sums[threadIdx.x] : T(0);
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
  return x;
}

__global__ void sumsq_partial_kernel(const float* g, int64_t n, float* partial) {
  float s = 0.f;
  CUDA_LOOP(i, n) s += g[i] * g[i];
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sqrt_total_kernel(const float* partial, int np, float* out) {
  double s = 0;
  for (int i = threadIdx.x; i < np; i += blockDim.x) s += double(partial[i]);
  s = block_sum(s);
  if (threadIdx.x == 0) out[0] = float(sqrt(s));
}

void adamw_forward(OpCall& c) {
  const char* names[] = {"param", "grad", "m", "v"};
  for (int k = 0; k < 4; ++k) check_f32("adamw", names[k], c.in[k]);
  const Attrs& a = c.attrs;
  double lr = a["lr"], b1 = a["beta1"], b2 = a["beta2"], step = a["step"];
  AdamScalars k{float(1 - lr * double(a["weight_decay"])), float(double(a["grad_scale"])),
                float(b1), float(b2), float(1 - b1), float(1 - b2),
                -float(lr / (1 - std::pow(b1, step))), float(std::sqrt(1 - std::pow(b2, step))),
                float(double(a["eps"]))};
  int64_t n = c.in[0].numel();
  if (n == 0) return;
  SD_LAUNCH(adamw_kernel, cuda::grid_for(n, kBlock), kBlock, 0, cuda::stream(),
            c.in[0].data<float>(), c.in[1].data<float>(), c.in[2].data<float>(),
            c.in[3].data<float>(), c.out[0].data<float>(), c.out[1].data<float>(),
            c.out[2].data<float>(), n, k);
}

void ema_forward(OpCall& c) {
  check_f32("ema", "ema", c.in[0]);
  check_f32("ema", "param", c.in[1]);
  double d = c.attrs["decay"];
  int64_t n = c.in[0].numel();
  if (n == 0) return;
  SD_LAUNCH(ema_kernel, cuda::grid_for(n, kBlock), kBlock, 0, cuda::stream(), c.in[0].data<float>(),
            c.in[1].data<float>(), c.out[0].data<float>(), n, float(d), float(1 - d));
}

void grad_norm_forward(OpCall& c) {
  check_f32("grad_norm", "g", c.in[0]);
  int64_t n = c.in[0].numel();
  int64_t nb64 = (n + kBlock - 1) / kBlock;
  int nb = int(cuda::capped_grid(nb64, kMaxPartials));
  Tensor partial = Tensor::empty({nb}, DType::F32, Device::CUDA);
  SD_LAUNCH(sumsq_partial_kernel, nb, kBlock, 0, cuda::stream(), c.in[0].data<float>(), n,
            partial.data<float>());
  SD_LAUNCH(sqrt_total_kernel, 1, kMaxPartials, 0, cuda::stream(), partial.data<float>(), nb,
            c.out[0].data<float>());
}

}  // namespace

void register_optim_cuda(Registry& r) {
  r.mutable_at("adamw").cuda.forward = adamw_forward;
  r.mutable_at("ema").cuda.forward = ema_forward;
  r.mutable_at("grad_norm").cuda.forward = grad_norm_forward;
}

}  // namespace sd
