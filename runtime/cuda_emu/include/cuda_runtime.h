// The CUDA runtime API subset simdiff calls, emulated on the host (SIMDIFF_CUDA=EMULATE puts this
// directory first on the include path). Device memory is host memory from exact-size allocations
// that the emulator keeps a list of, so copies can check their direction and AddressSanitizer
// sees every out-of-bounds access and use after free. Work runs synchronously at the call.
#pragma once
#include <cstddef>

#include "emu/device.h"
#include "emu/launch.h"
#include "emu/sync.h"

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorLaunchFailure = 719,
};
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError();

// Streams: work runs at the call, so synchronising only checks the handle.
constexpr unsigned cudaStreamNonBlocking = 1;
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamDestroy(cudaStream_t s);

// Memory.
enum cudaMemcpyKind {
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
};
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s);

// The device: one, with an H100's SM count.
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int device);

// Per-kernel attributes: more than 48 KB of dynamic shared memory only after opting in.
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
cudaError_t cudaFuncSetAttribute(const void* fn, cudaFuncAttribute attr, int value);
template <class... P>
cudaError_t cudaFuncSetAttribute(void (*fn)(P...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(fn), attr, value);
}

// Emulator settings, read from the environment once (README.md); tests may change them.
namespace sd_emu {
struct Options {
  unsigned long long seed;  // SIMDIFF_EMU_SEED: wmma fragment layout, random order; default random
  bool random_order;        // SIMDIFF_EMU_RANDOM_ORDER=1: threads and blocks in a random order
  bool tf32;                // SIMDIFF_EMU_TF32=0: exact f32 products in the emulated cuBLAS
};
Options& options();
}  // namespace sd_emu
