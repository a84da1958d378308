// CUDA backend of the embed family (math in kernels/cpu/embed.cpp), f32; dropout also bf16.
//   embedding: y[b, d] = table[idx[b], d], one thread per output element (row reads coalesced).
//     The indices were range-checked on the host by infer(); the kernels still skip an invalid
//     index rather than touch memory outside the table. Backward: one thread per dtable element
//     (v, d) adds g[b, d] over the b with idx[b] = v in increasing b, so a row that repeats
//     within the batch sums in the same order on every run, and every element is written once
//     (no zeroing pass). Traffic: g read once, dtable written once, idx (B ints) read by every
//     thread from L1 (the warp reads one index at a time: a broadcast); V * D * B comparisons,
//     a few microseconds for a class table (1000 x 1024, B = 256). SIMDIFF_CUDA_ATOMICS=1: zero
//     dtable, then one thread per g[b, d] adds it into its row with atomicAdd.
//   sinusoidal_embedding: one thread per (b, i) pair writes cos and sin; angles in double like
//     the CPU. Backward: one warp per sample sums its dim/2 terms in double (shuffle reduction).
//   dropout: one thread per Philox block of 4 words = 4 consecutive elements, so each block is
//     computed once; the backward regenerates the same mask from (seed, offset). Native bf16
//     (the model drops bf16 activations): x * s in f32, rounded once; element accesses (the
//     4-element Philox blocks start at `first`, not at a 16-byte boundary; the kernel is bound
//     by the Philox rounds more than by its 2 B + 2 B per element).
#include "kernels/cuda/pack8.cuh"
#include "kernels/cuda/reduce.cuh"
#include "runtime/philox.h"

namespace sd {
namespace {

void check_f32(const std::string& op, const Tensor& t) {
  SD_CHECK(t.dtype() == DType::F32, op, ": the cuda backend computes this op in f32, got ",
           t.desc());
}

__global__ void embedding_kernel(const float* table, const int32_t* idx, float* y, int64_t B,
                                 int64_t D, int64_t V) {
  CUDA_LOOP(i, B * D) {
    int64_t row = idx[i / D];
    y[i] = (row >= 0 && row < V) ? table[row * D + i % D] : NAN;
  }
}

__global__ void embedding_grad_kernel(const float* __restrict__ g, const int32_t* __restrict__ idx,
                                      float* __restrict__ dt, int64_t B, int64_t D, int64_t V) {
  CUDA_LOOP(e, V * D) {
    int64_t v = e / D, d = e % D;
    float acc = 0.f;
    for (int64_t b = 0; b < B; ++b)
      if (idx[b] == v) acc += g[b * D + d];
    dt[e] = acc;
  }
}

__global__ void embedding_grad_atomic_kernel(const float* g, const int32_t* idx, float* dt,
                                             int64_t B, int64_t D, int64_t V) {
  CUDA_LOOP(i, B * D) {
    int64_t row = idx[i / D];
    if (row >= 0 && row < V) atomicAdd(dt + row * D + i % D, g[i]);
  }
}

__global__ void sinusoidal_kernel(const float* x, float* y, int64_t B, int64_t h, double lp) {
  CUDA_LOOP(t, B * h) {
    int64_t b = t / h, i = t % h;
    double ang = double(x[b]) * exp(-lp * double(i) / double(h));
    y[b * 2 * h + i] = float(cos(ang));
    y[b * 2 * h + h + i] = float(sin(ang));
  }
}

// Warp w of the grid handles samples w, w + warps, ...; the warp loop bound is uniform, so every
// lane reaches the shuffles.
__global__ void sinusoidal_grad_kernel(const float* x, const float* g, float* dx, int64_t B,
                                       int64_t h, double lp) {
  int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  int64_t warps = int64_t(gridDim.x) * blockDim.x / 32;
  int lane = threadIdx.x % 32;
  for (int64_t b = warp; b < B; b += warps) {
    double acc = 0;
    for (int64_t i = lane; i < h; i += 32) {
      double f = exp(-lp * double(i) / double(h)), ang = double(x[b]) * f;
      acc += f * (cos(ang) * double(g[b * 2 * h + h + i]) - sin(ang) * double(g[b * 2 * h + i]));
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
    if (lane == 0) dx[b] = float(acc);
  }
}

// Element i's mask is stream word first + i: thread j computes block first / 4 + j and handles
// the lanes that fall inside x (partial first and last blocks when first % 4 != 0).
template <class T>
__global__ void dropout_kernel(const T* x, T* y, int64_t n, double p, float s,
                               uint64_t seed, uint64_t offset, uint64_t first) {
  const int64_t skew = int64_t(first % 4);
  CUDA_LOOP(j, (n + skew + 3) / 4) {
    PhiloxBlock blk = philox_block(seed, offset, first / 4 + uint64_t(j));
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      int64_t i = 4 * j + lane - skew;
      if (i >= 0 && i < n)
        cuda::st(y + i, double(philox_u01(blk.v[lane])) >= p ? cuda::ld(x + i) * s : 0.f);
    }
  }
}

void launch_dropout(const Tensor& src, const Tensor& dst, const Attrs& a) {
  double p = a["p"].get<double>();
  int64_t n = src.numel();
  uint64_t first = a["first"].get<uint64_t>();
  cuda::dispatch_f32_bf16("dropout", src, [&](auto t) {
    using T = decltype(t);
    SD_LAUNCH(dropout_kernel<T>, cuda::grid_for((n + 3 + int64_t(first % 4)) / 4, 256), 256, 0,
              cuda::stream(), cuda::ptr<T>(src), cuda::ptr<T>(dst), n, p,
              float(1.0 / (1.0 - p)), a["seed"].get<uint64_t>(), a["offset"].get<uint64_t>(),
              first);
  });
}

}  // namespace

void register_embed_cuda(Registry& r) {
  r.mutable_at("embedding").cuda = {
      [](OpCall& c) {
        check_f32("embedding", c.in[0]);
        int64_t B = c.in[1].numel(), V = c.in[0].shape()[0], D = c.in[0].shape()[1];
        SD_LAUNCH(embedding_kernel, cuda::grid_for(B * D, 256), 256, 0, cuda::stream(),
                  c.in[0].data<float>(), c.in[1].data<int32_t>(), c.out[0].data<float>(), B, D, V);
      },
      [](GradCall& c) {
        if (!c.grad_in[0].defined()) return;
        int64_t B = c.in[1].numel(), V = c.in[0].shape()[0], D = c.in[0].shape()[1];
        const float* g = c.grad_out[0].data<float>();
        const int32_t* idx = c.in[1].data<int32_t>();
        float* dt = c.grad_in[0].data<float>();
        if (cuda::float_atomics()) {
          c.grad_in[0].zero_();
          SD_LAUNCH(embedding_grad_atomic_kernel, cuda::grid_for(B * D, 256), 256, 0,
                    cuda::stream(), g, idx, dt, B, D, V);
        } else {
          SD_LAUNCH(embedding_grad_kernel, cuda::grid_for(V * D, 256), 256, 0, cuda::stream(), g,
                    idx, dt, B, D, V);
        }
      }};

  r.mutable_at("sinusoidal_embedding").cuda = {
      [](OpCall& c) {
        check_f32("sinusoidal_embedding", c.in[0]);
        int64_t B = c.in[0].numel(), h = c.attrs["dim"].get<int64_t>() / 2;
        double lp = std::log(c.attrs["max_period"].get<double>());
        SD_LAUNCH(sinusoidal_kernel, cuda::grid_for(B * h, 256), 256, 0, cuda::stream(),
                  c.in[0].data<float>(), c.out[0].data<float>(), B, h, lp);
      },
      [](GradCall& c) {
        if (!c.grad_in[0].defined()) return;
        int64_t B = c.in[0].numel(), h = c.attrs["dim"].get<int64_t>() / 2;
        double lp = std::log(c.attrs["max_period"].get<double>());
        SD_LAUNCH(sinusoidal_grad_kernel, cuda::grid_for(B * 32, 256), 256, 0, cuda::stream(),
                  c.in[0].data<float>(), c.grad_out[0].data<float>(), c.grad_in[0].data<float>(), B,
                  h, lp);
      }};

  r.mutable_at("dropout").cuda = {
      [](OpCall& c) { launch_dropout(c.in[0], c.out[0], c.attrs); },
      [](GradCall& c) {
        if (c.grad_in[0].defined()) launch_dropout(c.grad_out[0], c.grad_in[0], c.attrs);
      },
      true};
}

}  // namespace sd
