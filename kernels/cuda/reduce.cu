// CUDA backend of the reduce family (math in kernels/cpu/reduce.cpp), native f32 and bf16 inputs
// (each f32 or bf16, kernels/cuda/pack8.cuh), double accumulation, f32 results (statistic_dtype).
//   sum / mean: two deterministic passes, no atomics. Pass 1: each of up to 1024 blocks streams a
//     grid-stride share of x (packs of 8 in 16-byte loads when x is 16-byte aligned: the
//     reduction is bandwidth-bound, one read of x, 2 B per element in bf16, 4 B in f32) into a
//     per-thread double, reduces the block with warp shuffles, and writes one double partial.
//     Pass 2: one block adds the partials and writes the f32 result. The scratch partials come
//     from the caching allocator.
//   mse: one block per sample (grid-stride over samples) reduces (a - b)^2 over its row in double
//     (16-byte loads when rows are whole packs and aligned).
//   Backwards are flat elementwise loops (packs of 8 for mse), gradients in their input's dtype,
//   rounded once; the scalar gradient is read on the device (no sync).
// Also the shared pieces of kernels/cuda/reduce.cuh: the fixed-order column sum that finishes the
// split reductions of the backward kernels, and the SM count.
#include "kernels/cuda/pack8.cuh"
#include "kernels/cuda/reduce.cuh"

namespace sd {
namespace {

constexpr int kThreads = 256, kMaxBlocks = 1024;

using cuda::bf16;

// Sum of v over the block, valid in thread 0. Safe to call repeatedly: the leading barrier keeps
// a previous call's readers of `warp` ahead of this call's writers.
__device__ double block_sum(double v) {
  __shared__ double warp[32];
  __syncthreads();
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) warp[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < blockDim.x / 32 ? warp[threadIdx.x] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  }
  return v;
}

// Sum of 8 floats in double, pairwise.
__device__ __forceinline__ double sum8(const float (&v)[8]) {
  return ((double(v[0]) + double(v[1])) + (double(v[2]) + double(v[3]))) +
         ((double(v[4]) + double(v[5])) + (double(v[6]) + double(v[7])));
}

template <class T>
__global__ void sum_partial_kernel(const T* x, int64_t n, double* partial) {
  int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  double acc = 0;
  int64_t head = 0;  // elements handled by the pack loop
  if (cuda::aligned16(x)) {
    for (int64_t p = tid; p < n / 8; p += stride) {
      float v[8];
      cuda::load8(x + p * 8, v);
      acc += sum8(v);
    }
    head = n / 8 * 8;
  }
  for (int64_t i = head + tid; i < n; i += stride) acc += double(cuda::ld(x + i));
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void sum_finish_kernel(const double* partial, int count, double divisor, float* y) {
  double acc = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) y[0] = float(acc / divisor);
}

// dx[i] = g / divisor, g the f32 scalar gradient; 16-byte stores of packs of 8 where aligned.
template <class T>
__global__ void fill_grad_kernel(const float* g, T* dx, int64_t n, float divisor) {
  const float v = g[0] / divisor;
  const bool vec = cuda::aligned16(dx);
  CUDA_LOOP(p, (n + 7) / 8) {
    if (vec && p * 8 + 8 <= n) {
      float w[8] = {v, v, v, v, v, v, v, v};
      cuda::store8(dx + p * 8, w);
    } else {
      for (int64_t i = p * 8; i < n && i < p * 8 + 8; ++i) cuda::st(dx + i, v);
    }
  }
}

// y[s] = mean over row s of (a - b)^2. vec: rows are whole 16-byte-aligned packs (n % 8 == 0,
// both pointers aligned).
template <class Ta, class Tb>
__global__ void mse_kernel(const Ta* a, const Tb* b, float* y, int64_t B, int64_t n, bool vec) {
  for (int64_t s = blockIdx.x; s < B; s += gridDim.x) {
    double acc = 0;
    if (vec) {
      for (int64_t p = threadIdx.x; p < n / 8; p += blockDim.x) {
        float va[8], vb[8];
        cuda::load8(a + s * n + p * 8, va);
        cuda::load8(b + s * n + p * 8, vb);
        for (int k = 0; k < 8; ++k) {
          double d = double(va[k]) - double(vb[k]);
          acc += d * d;
        }
      }
    } else {
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        double d = double(cuda::ld(a + s * n + j)) - double(cuda::ld(b + s * n + j));
        acc += d * d;
      }
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) y[s] = float(acc / double(n));
  }
}

// da = 2/n g[row] (a - b), db = -da, over packs of 8 (vec: every pointer 16-byte aligned); da or
// db may be null.
template <class Ta, class Tb>
__global__ void mse_grad_kernel(const Ta* a, const Tb* b, const float* g, Ta* da, Tb* db,
                                int64_t total, int64_t n, float two_over_n, bool vec) {
  CUDA_LOOP(p, (total + 7) / 8) {
    const int64_t j0 = p * 8;
    if (vec && j0 + 8 <= total) {
      float va[8], vb[8];
      cuda::load8(a + j0, va);
      cuda::load8(b + j0, vb);
      int64_t row = j0 / n, r = j0 % n;  // a cursor: one division per pack
      for (int k = 0; k < 8; ++k) {
        va[k] = two_over_n * g[row] * (va[k] - vb[k]);
        vb[k] = -va[k];
        if (++r == n) r = 0, ++row;
      }
      if (da) cuda::store8(da + j0, va);
      if (db) cuda::store8(db + j0, vb);
    } else {
      for (int64_t j = j0; j < total && j < j0 + 8; ++j) {
        float v = two_over_n * g[j / n] * (cuda::ld(a + j) - cuda::ld(b + j));
        if (da) cuda::st(da + j, v);
        if (db) cuda::st(db + j, -v);
      }
    }
  }
}

void total_forward(OpCall& c, bool mean, const char* op) {
  int64_t n = c.in[0].numel();
  int64_t want = (n + int64_t(kThreads) * 16 - 1) / (int64_t(kThreads) * 16);
  int blocks = int(cuda::capped_grid(want, kMaxBlocks));
  Tensor partial = Tensor::empty({blocks}, DType::F64, Device::CUDA);
  cuda::dispatch_f32_bf16(op, c.in[0], [&](auto t) {
    using T = decltype(t);
    SD_LAUNCH(sum_partial_kernel<T>, blocks, kThreads, 0, cuda::stream(), cuda::ptr<T>(c.in[0]),
              n, partial.data<double>());
  });
  SD_LAUNCH(sum_finish_kernel, 1, kThreads, 0, cuda::stream(), partial.data<double>(), blocks,
            mean ? double(n) : 1.0, c.out[0].data<float>());
}

void total_backward(GradCall& c, bool mean, const char* op) {
  if (!c.grad_in[0].defined()) return;
  int64_t n = c.in[0].numel();
  cuda::dispatch_f32_bf16(op, c.grad_in[0], [&](auto t) {
    using T = decltype(t);
    SD_LAUNCH(fill_grad_kernel<T>, cuda::grid_for((n + 7) / 8, 256), 256, 0, cuda::stream(),
              c.grad_out[0].data<float>(), cuda::ptr<T>(c.grad_in[0]), n,
              mean ? float(n) : 1.f);
  });
}

// f(a, b) for the (Ta, Tb) of mse's two inputs.
template <class F>
void dispatch_mse(const Tensor& a, const Tensor& b, F&& f) {
  cuda::dispatch_f32_bf16("mse", a, [&](auto ta) {
    cuda::dispatch_f32_bf16("mse", b, [&](auto tb) { f(ta, tb); });
  });
}

// out[j] = sum_r part[r * width + col0 + j], j < ncols, rows summed in a fixed order. Block
// (32, 8): threadIdx.x walks columns (coalesced), threadIdx.y strides rows, then shared memory
// adds the 8 row-partials. Traffic: one read of the nrows x ncols partials, one write of out.
template <class T>
__global__ void column_sum(const float* __restrict__ part, int64_t nrows, int64_t width,
                           int64_t col0, int64_t ncols, T* __restrict__ out) {
  __shared__ float red[8][33];
  int64_t j = int64_t(blockIdx.x) * 32 + threadIdx.x;
  float s = 0.f;
  if (j < ncols)
    for (int64_t r = threadIdx.y; r < nrows; r += 8) s += part[r * width + col0 + j];
  red[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < ncols) {
    float t = 0.f;
    for (int k = 0; k < 8; ++k) t += red[k][threadIdx.x];
    cuda::st(out + j, t);
  }
}

}  // namespace

namespace cuda {

int sm_count() {
  static int n = [] {
    int dev = 0, v = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    return v;
  }();
  return cuda_limits().sm_count > 0 ? cuda_limits().sm_count : n;
}

template <class T>
void launch_column_sum(const float* part, int64_t nrows, int64_t width, int64_t col0,
                       int64_t ncols, T* out) {
  SD_LAUNCH(column_sum<T>, unsigned((ncols + 31) / 32), dim3(32, 8), 0, cuda::stream(), part,
            nrows, width, col0, ncols, out);
}
template void launch_column_sum(const float*, int64_t, int64_t, int64_t, int64_t, float*);
template void launch_column_sum(const float*, int64_t, int64_t, int64_t, int64_t, bf16*);

}  // namespace cuda

void register_reduce_cuda(Registry& r) {
  r.mutable_at("sum").cuda = {[](OpCall& c) { total_forward(c, false, "sum"); },
                              [](GradCall& c) { total_backward(c, false, "sum"); }, true};
  r.mutable_at("mean").cuda = {[](OpCall& c) { total_forward(c, true, "mean"); },
                               [](GradCall& c) { total_backward(c, true, "mean"); }, true};
  r.mutable_at("mse").cuda = {
      [](OpCall& c) {
        int64_t B = c.in[0].shape()[0], n = c.in[0].numel() / B;
        unsigned grid = cuda::capped_grid(B, 65536);
        dispatch_mse(c.in[0], c.in[1], [&](auto ta, auto tb) {
          using Ta = decltype(ta);
          using Tb = decltype(tb);
          const Ta* a = cuda::ptr<Ta>(c.in[0]);
          const Tb* b = cuda::ptr<Tb>(c.in[1]);
          bool vec = n % 8 == 0 && cuda::aligned16(a) && cuda::aligned16(b);
          SD_LAUNCH((mse_kernel<Ta, Tb>), grid, kThreads, 0, cuda::stream(), a, b,
                    c.out[0].data<float>(), B, n, vec);
        });
      },
      [](GradCall& c) {
        int64_t B = c.in[0].shape()[0], total = c.in[0].numel(), n = total / B;
        if (!c.grad_in[0].defined() && !c.grad_in[1].defined()) return;
        dispatch_mse(c.in[0], c.in[1], [&](auto ta, auto tb) {
          using Ta = decltype(ta);
          using Tb = decltype(tb);
          const Ta* a = cuda::ptr<Ta>(c.in[0]);
          const Tb* b = cuda::ptr<Tb>(c.in[1]);
          Ta* da = cuda::ptr<Ta>(c.grad_in[0]);
          Tb* db = cuda::ptr<Tb>(c.grad_in[1]);
          bool vec = cuda::aligned16(a) && cuda::aligned16(b) && cuda::aligned16(da) &&
                     cuda::aligned16(db);
          SD_LAUNCH((mse_grad_kernel<Ta, Tb>), cuda::grid_for((total + 7) / 8, 256), 256, 0,
                    cuda::stream(), a, b, c.grad_out[0].data<float>(), da, db, total, n,
                    float(2.0 / double(n)), vec);
        });
      },
      true};
}

}  // namespace sd
