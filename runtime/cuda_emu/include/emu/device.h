// The CUDA C++ language pieces simdiff's kernels use, for the host compiler: execution-space
// keywords, the built-in index variables, vector types, math intrinsics and atomics. Barriers,
// shuffles and votes are in emu/sync.h. Kernels compile unchanged against this (see README.md).
#pragma once
#include <math.h>

#include <cstddef>
#include <cstdint>

// Execution spaces mean nothing on the host: every function is a host function.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

// Static shared memory is one set of variables (blocks run one at a time). They live in their own
// ELF section so the race detector (race.cpp) knows which addresses are shared; the dotted name
// keeps AddressSanitizer's redzones around each of them (it skips C-identifier sections).
#define __shared__ static __attribute__((section(".sd_emu_shared")))

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

// Plain globals, set by the scheduler before it resumes a thread (so a debugger can print them
// and condition breakpoints on them). Kernels must not assign them: nvcc, which CI also runs,
// refuses that.
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
constexpr int warpSize = 32;

// Vector types with CUDA's alignment (UBSan's alignment check, on in kernel files, reports a
// misaligned float4 access). The copies are member-wise on purpose: a defaulted copy becomes a
// memcpy, which the race detector's load/store instrumentation does not see.
#define SD_EMU_VECTOR(name, T, align, ...)                                   \
  struct alignas(align) name {                                              \
    T __VA_ARGS__;                                                          \
    name() = default;                                                       \
    name(const name& o) { sd_emu_copy(o); }                                 \
    name& operator=(const name& o) {                                        \
      sd_emu_copy(o);                                                       \
      return *this;                                                         \
    }                                                                       \
    void sd_emu_copy(const name& o);                                        \
  };
SD_EMU_VECTOR(float2, float, 8, x, y)
SD_EMU_VECTOR(float4, float, 16, x, y, z, w)
SD_EMU_VECTOR(uint4, unsigned, 16, x, y, z, w)
#undef SD_EMU_VECTOR
inline void float2::sd_emu_copy(const float2& o) { x = o.x, y = o.y; }
inline void float4::sd_emu_copy(const float4& o) { x = o.x, y = o.y, z = o.z, w = o.w; }
inline void uint4::sd_emu_copy(const uint4& o) { x = o.x, y = o.y, z = o.z, w = o.w; }

inline float2 make_float2(float x, float y) {
  float2 v;
  v.x = x, v.y = y;
  return v;
}
inline float4 make_float4(float x, float y, float z, float w) {
  float4 v;
  v.x = x, v.y = y, v.z = z, v.w = w;
  return v;
}
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
  uint4 v;
  v.x = x, v.y = y, v.z = z, v.w = w;
  return v;
}

// Math: expf, exp2f, logf, log2f, erff, fmaf, fmaxf, fminf, sqrtf and the double functions come
// from the host's libm (correctly rounded or close; the GPU's are within a few ulp). These are the
// CUDA-only names the kernels call.
inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

// Read-only data cache load: on the host simply a load.
template <class T>
inline T __ldg(const T* p) {
  return *p;
}

// Atomics (float atomicAdd is the one the kernels use). One OS thread runs a block's threads, so
// no hardware atomic is needed; the update is done out of line, in the emulator, so that the race
// detector sees it as an atomic: atomics of different threads to one address do not race, a plain
// access to that address in the same barrier interval does.
namespace sd_emu {
float atomic_add(float* p, float v);
}
inline float atomicAdd(float* p, float v) { return sd_emu::atomic_add(p, v); }
