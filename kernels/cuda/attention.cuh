// Pieces the attention kernels share (kernels/cuda/attention.cu: the f32 kernels, the bf16
// forward and the launchers; kernels/cuda/attention_bf16_bwd.cu: the bf16 tensor-core backward).
#pragma once
#include <mma.h>

#include <cmath>

#include "kernels/cuda/launch.cuh"

namespace sd::attn {

namespace wmma = nvcuda::wmma;
using bf16 = __nv_bfloat16;

constexpr unsigned kFull = 0xffffffffu;
constexpr int kBlockRows = 64;  // every attention kernel: 64 query rows or 64 keys per block
constexpr float kLog2e = 1.44269504088896341f;

struct Dims {
  int64_t BH;
  int N, D, DP;  // DP: D padded to the kernel width 32, 64 or 128
  dim3 grid;     // (64-row or 64-key blocks, heads)
};

// The scale attribute: 0 selects the usual 1/sqrt(D).
inline float attention_scale(const Attrs& a, int64_t D) {
  double s = a["scale"];
  return float(s == 0 ? 1.0 / std::sqrt(double(D)) : s);
}

inline Dims dims_of(const Tensor& q) {
  int64_t BH = q.dim(0) * q.dim(1), N = q.dim(2), D = q.dim(3);
  SD_CHECK(D <= 128, "attention: the cuda kernels support head dim D <= 128, got head dim D = ", D,
           " ('q' ", q.desc(), ")");
  SD_CHECK(BH <= 65535 && N <= (int64_t(1) << 30), "attention: the cuda kernels take B*H <= 65535 "
           "and N <= 2^30, got 'q' ", q.desc());
  return {BH, int(N), int(D), D <= 32 ? 32 : D <= 64 ? 64 : 128,
          dim3(unsigned((N + kBlockRows - 1) / kBlockRows), unsigned(BH))};
}

// What the bf16 kernels need of every bf16 tensor they touch: rows of D % 8 == 0 elements that
// start 16-byte aligned, so each 8-element chunk moves as one 16-byte access.
inline void check_bf16(const Dims& d, const Tensor& q, std::initializer_list<const Tensor*> all) {
  SD_CHECK(d.D % 8 == 0, "attention: bf16 on cuda needs head dim D a multiple of 8 and <= 128, got "
           "head dim D = ", d.D, " ('q' ", q.desc(), ")");
  for (const Tensor* t : all)
    SD_CHECK(reinterpret_cast<uintptr_t>(t->raw()) % 16 == 0,
             "attention: bf16 tensors must start 16-byte aligned, got a view at ", t->raw(), " (",
             t->desc(), ")");
}

// Lets `kernel` use `bytes` (> 48 KiB) of dynamic shared memory; call once per kernel.
template <class... P>
void allow_dynamic_smem(void (*kernel)(P...), size_t bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }

// Kernels have internal linkage: each .cu file instantiates its own (no duplicate kernel
// registrations across translation units under nvcc).
namespace {

// Backward pass 1 (FlashAttention-2's preprocessing): dvec[r] = sum_d dO[r, d] O[r, d] in f32,
// one warp per row (T = float or bf16). Reads O and dO once.
template <class T>
__global__ void attn_bwd_rowdot(const T* __restrict__ o, const T* __restrict__ g,
                                float* __restrict__ dvec, int64_t rows, int D) {
  const int lane = threadIdx.x % 32;
  const int64_t nwarps = int64_t(gridDim.x) * blockDim.x / 32;
  for (int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; r < rows; r += nwarps) {
    float s = 0.f;
    for (int d = lane; d < D; d += 32) s = fmaf(to_float(o[r * D + d]), to_float(g[r * D + d]), s);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(kFull, s, off);
    if (lane == 0) dvec[r] = s;
  }
}

// D_i of every row of every head, [B*H*N] f32.
template <class T>
Tensor attention_rowdot(const Dims& d, const T* o, const T* g) {
  int64_t rows = d.BH * d.N;
  Tensor dvec = Tensor::empty({rows}, DType::F32, Device::CUDA);
  SD_LAUNCH(attn_bwd_rowdot<T>, cuda::grid_for(rows * 32, 256), 256, 0, cuda::stream(), o, g,
            dvec.data<float>(), rows, d.D);
  return dvec;
}

}  // namespace

// rows [r0, r0 + ROWS) of an [N, D] bf16 matrix into a zero-padded [ROWS][LD] shared tile, 16
// bytes per load (check_bf16 holds).
template <int DP, int ROWS, int LD>
__device__ __forceinline__ void load_tile_bf16(const bf16* src, bf16* dst, int r0, int N, int D) {
  constexpr int CH = DP / 8;
  for (int i = threadIdx.x; i < ROWS * CH; i += blockDim.x) {
    int r = i / CH, c = (i % CH) * 8;
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (r0 + r < N && c < D) val = *reinterpret_cast<const uint4*>(src + size_t(r0 + r) * D + c);
    *reinterpret_cast<uint4*>(dst + r * LD + c) = val;
  }
}

// The bf16 backward on tensor cores (attention_bf16_bwd.cu): gradients in bf16, null where not
// requested; check_bf16 holds for every tensor.
void backward_bf16(const Dims& d, const Tensor& q, const Tensor& k, const Tensor& v,
                   const Tensor& o, const Tensor& lse, const Tensor& g, Tensor* dq, Tensor* dk,
                   Tensor* dv, float scale);

}  // namespace sd::attn
