// Element access for the kernels that take f32 and bf16 tensors with one templated code path
// (the dtype rule in kernels/registry.h): every value is read into f32, computed in f32, and a
// bf16 result is rounded once, to nearest even. Memory-bound kernels move packs of 8 consecutive
// elements with 16-byte accesses (bf16: one uint4; f32: two float4) where the pointers are 16-byte
// aligned, and single elements for the tail.
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/launch.cuh"

namespace sd::cuda {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16 v) { return __bfloat162float(v); }
template <class T>
__device__ __forceinline__ T from_f32(float v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else return __float2bfloat16(v);  // round to nearest even
}
__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st(float* p, float v) { *p = v; }
__device__ __forceinline__ void st(bf16* p, float v) { *p = __float2bfloat16(v); }  // RNE

// One 16-byte access: kVec16<T> elements (4 f32, 8 bf16) at p, 16-byte aligned, into v[0..).
template <class T>
inline constexpr int kVec16 = int(16 / sizeof(T));
union Bf16x8 {
  uint4 u;
  bf16 h[8];
};
__device__ __forceinline__ void load16(const float* p, float* v) {
  float4 a = *reinterpret_cast<const float4*>(p);
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
}
__device__ __forceinline__ void load16(const bf16* p, float* v) {
  Bf16x8 t;
  t.u = *reinterpret_cast<const uint4*>(p);
#pragma unroll
  for (int k = 0; k < 8; ++k) v[k] = __bfloat162float(t.h[k]);
}
__device__ __forceinline__ void store16(float* p, const float* v) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void store16(bf16* p, const float* v) {  // rounded
  Bf16x8 t;
#pragma unroll
  for (int k = 0; k < 8; ++k) t.h[k] = __float2bfloat16(v[k]);
  *reinterpret_cast<uint4*>(p) = t.u;
}

// A pack of 8 elements (bf16: one 16-byte access; f32: two), p 16-byte aligned.
template <class T>
__device__ __forceinline__ void load8(const T* p, float (&v)[8]) {
#pragma unroll
  for (int k = 0; k < 8; k += kVec16<T>) load16(p + k, v + k);
}
template <class T>
__device__ __forceinline__ void store8(T* p, const float (&v)[8]) {
#pragma unroll
  for (int k = 0; k < 8; k += kVec16<T>) store16(p + k, v + k);
}

__host__ __device__ inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The device pointer of an f32 or bf16 tensor as T (float or bf16, checked); nullptr when
// undefined.
template <class T>
T* ptr(const Tensor& t) {
  if (!t.defined()) return nullptr;
  if constexpr (std::is_same_v<T, float>) return t.data<float>();
  else return reinterpret_cast<bf16*>(t.data<uint16_t>());
}

// An f32 buffer to accumulate `t`'s value into when t is bf16 (several GEMMs summed with beta = 1
// must round once, at the end), t itself when it is f32 (or undefined: nothing to sum); finish()
// rounds it into t.
struct Accumulator {
  Tensor t, acc;
  explicit Accumulator(const Tensor& out)
      : t(out),
        acc(!out.defined() || out.dtype() == DType::F32
                ? out
                : Tensor::empty(out.shape(), DType::F32, Device::CUDA)) {}
  void finish() const {
    if (t.defined() && acc.raw() != t.raw()) t.convert_from(acc);
  }
};

// f(T{}) with T the element type of t: float or bf16; an undefined tensor (an output gradient
// that does not flow) and other dtypes are refused naming op.
template <class F>
void dispatch_f32_bf16(const char* op, const Tensor& t, F&& f) {
  SD_CHECK(t.defined(), op, ": the cuda kernel was given an undefined tensor");
  if (t.dtype() == DType::F32) f(float{});
  else if (t.dtype() == DType::BF16) f(bf16{});
  else fail(op, ": the cuda backend takes f32 or bf16, got ", t.desc());
}

}  // namespace sd::cuda
