// CUDA backend of the reduce family (math in kernels/cpu/reduce.cpp), f32 in, double accumulation.
//   sum / mean: two deterministic passes, no atomics. Pass 1: each of up to 1024 blocks streams a
//     grid-stride share of x (float4 loads when x is 16-byte aligned: the reduction is
//     bandwidth-bound, one read of x) into a per-thread double, reduces the block with warp
//     shuffles, and writes one double partial. Pass 2: one block adds the partials and writes
//     the f32 result. The scratch partials come from the caching allocator.
//   mse: one block per sample (grid-stride over samples) reduces (a - b)^2 over its row in double.
//   Backwards are flat elementwise loops; the scalar gradient is read on the device (no sync).
// Also the shared pieces of kernels/cuda/reduce.cuh: the fixed-order column sum that finishes the
// split reductions of the backward kernels, and the SM count.
#include "kernels/cuda/reduce.cuh"

namespace sd {
namespace {

constexpr int kThreads = 256, kMaxBlocks = 1024;

void check_f32(const std::string& op, const Tensor& t) {
  SD_CHECK(t.dtype() == DType::F32, op, ": the cuda backend computes this op in f32, got ",
           t.desc());
}

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

__global__ void sum_partial_kernel(const float* x, int64_t n, double* partial) {
  int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  double acc = 0;
  int64_t head = 0;  // elements handled by the float4 loop
  if (reinterpret_cast<uintptr_t>(x) % 16 == 0) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    for (int64_t i = tid; i < n / 4; i += stride) {
      float4 v = x4[i];
      acc += (double(v.x) + double(v.y)) + (double(v.z) + double(v.w));
    }
    head = n / 4 * 4;
  }
  for (int64_t i = head + tid; i < n; i += stride) acc += double(x[i]);
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void sum_finish_kernel(const double* partial, int count, double divisor, float* y) {
  double acc = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) y[0] = float(acc / divisor);
}

__global__ void fill_grad_kernel(const float* g, float* dx, int64_t n, float divisor) {
  CUDA_LOOP(i, n) dx[i] = g[0] / divisor;
}

__global__ void mse_kernel(const float* a, const float* b, float* y, int64_t B, int64_t n) {
  for (int64_t s = blockIdx.x; s < B; s += gridDim.x) {
    double acc = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      double d = double(a[s * n + j]) - double(b[s * n + j]);
      acc += d * d;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) y[s] = float(acc / double(n));
  }
}

__global__ void mse_grad_kernel(const float* a, const float* b, const float* g, float* da,
                                float* db, int64_t total, int64_t n, float two_over_n) {
  CUDA_LOOP(j, total) {
    float v = two_over_n * g[j / n] * (a[j] - b[j]);
    if (da) da[j] = v;
    if (db) db[j] = -v;
  }
}

void total_forward(OpCall& c, bool mean, const char* op) {
  check_f32(op, c.in[0]);
  int64_t n = c.in[0].numel();
  int64_t want = (n + int64_t(kThreads) * 16 - 1) / (int64_t(kThreads) * 16);
  int blocks = int(cuda::capped_grid(want, kMaxBlocks));
  Tensor partial = Tensor::empty({blocks}, DType::F64, Device::CUDA);
  SD_LAUNCH(sum_partial_kernel, blocks, kThreads, 0, cuda::stream(), c.in[0].data<float>(), n,
            partial.data<double>());
  SD_LAUNCH(sum_finish_kernel, 1, kThreads, 0, cuda::stream(), partial.data<double>(), blocks,
            mean ? double(n) : 1.0, c.out[0].data<float>());
}

void total_backward(GradCall& c, bool mean) {
  if (!c.grad_in[0].defined()) return;
  int64_t n = c.in[0].numel();
  SD_LAUNCH(fill_grad_kernel, cuda::grid_for(n, 256), 256, 0, cuda::stream(),
            c.grad_out[0].data<float>(), c.grad_in[0].data<float>(), n, mean ? float(n) : 1.f);
}

// out[j] = sum_r part[r * width + col0 + j], j < ncols, rows summed in a fixed order. Block
// (32, 8): threadIdx.x walks columns (coalesced), threadIdx.y strides rows, then shared memory
// adds the 8 row-partials. Traffic: one read of the nrows x ncols partials, one write of out.
__global__ void column_sum(const float* __restrict__ part, int64_t nrows, int64_t width,
                           int64_t col0, int64_t ncols, float* __restrict__ out) {
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
    out[j] = t;
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

void launch_column_sum(const float* part, int64_t nrows, int64_t width, int64_t col0,
                       int64_t ncols, float* out) {
  SD_LAUNCH(column_sum, unsigned((ncols + 31) / 32), dim3(32, 8), 0, cuda::stream(), part, nrows,
            width, col0, ncols, out);
}

}  // namespace cuda

void register_reduce_cuda(Registry& r) {
  r.mutable_at("sum").cuda = {[](OpCall& c) { total_forward(c, false, "sum"); },
                              [](GradCall& c) { total_backward(c, false); }};
  r.mutable_at("mean").cuda = {[](OpCall& c) { total_forward(c, true, "mean"); },
                               [](GradCall& c) { total_backward(c, true); }};
  r.mutable_at("mse").cuda = {
      [](OpCall& c) {
        check_f32("mse", c.in[0]);
        int64_t B = c.in[0].shape()[0], n = c.in[0].numel() / B;
        unsigned grid = cuda::capped_grid(B, 65536);
        SD_LAUNCH(mse_kernel, grid, kThreads, 0, cuda::stream(), c.in[0].data<float>(),
                  c.in[1].data<float>(), c.out[0].data<float>(), B, n);
      },
      [](GradCall& c) {
        int64_t B = c.in[0].shape()[0], total = c.in[0].numel(), n = total / B;
        float* da = c.grad_in[0].defined() ? c.grad_in[0].data<float>() : nullptr;
        float* db = c.grad_in[1].defined() ? c.grad_in[1].data<float>() : nullptr;
        if (!da && !db) return;
        SD_LAUNCH(mse_grad_kernel, cuda::grid_for(total, 256), 256, 0, cuda::stream(),
                  c.in[0].data<float>(), c.in[1].data<float>(), c.grad_out[0].data<float>(), da, db,
                  total, n, float(2.0 / double(n)));
      }};
}

}  // namespace sd
