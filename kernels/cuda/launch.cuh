// Every kernel launch goes through SD_LAUNCH, so one source serves both builds of the backend:
// under nvcc it is kernel<<<grid, block, smem, stream>>>(args...) followed by the launch check;
// in the emulation build (SIMDIFF_CUDA=EMULATE) the host runs the kernel at once, checking CUDA's
// rules as it goes (runtime/cuda_emu/). Either way a failure throws an error naming the kernel
// and the launch site. Dynamic shared memory is declared with SD_DYNAMIC_SHARED for the same
// reason (`extern __shared__` has no host equivalent). A test's KernelLog (kernels/cuda/kernel_log.h)
// hears of every launch.
#pragma once
#include <string>
#include <utility>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernel_log.h"

namespace sd::cuda {

[[noreturn]] void throw_launch(const char* kernel, const char* file, int line,
                               const std::string& what);

template <class... P, class... A>
void launch(const char* kernel, const char* file, int line, void (*fn)(P...), dim3 grid,
            dim3 block, size_t smem, cudaStream_t stream, A&&... args) {
#ifdef SIMDIFF_CUDA_EMULATE
  const sd_emu::KernelSite site{kernel, file, line, reinterpret_cast<const void*>(fn)};
  if (KernelLog::listening()) KernelLog::record(sd_emu::kernel_name(site));
  std::string err = sd_emu::launch(site, fn, grid, block, smem, stream, std::forward<A>(args)...);
  if (!err.empty()) throw_launch(kernel, file, line, err);
#else
  if (KernelLog::listening()) KernelLog::record(kernel);
  fn<<<grid, block, smem, stream>>>(std::forward<A>(args)...);
  // Catches a bad configuration at once; execution errors surface at the next synchronising
  // call, which is checked too.
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw_launch(kernel, file, line, std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")");
#endif
}

}  // namespace sd::cuda

// SD_LAUNCH(kernel, grid, block, dynamic_smem_bytes, stream, args...); a kernel name with a comma
// (kernel<A, B>) goes in parentheses.
#define SD_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::sd::cuda::launch(#kernel, __FILE__, __LINE__, kernel, grid, block, smem, stream, __VA_ARGS__)

// The launch's dynamic shared memory as `T* name` (CUDA: an unsized extern __shared__ array,
// 128-byte aligned here and in the emulator).
#ifdef SIMDIFF_CUDA_EMULATE
#define SD_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::sd_emu::dynamic_shared())
#else
#define SD_DYNAMIC_SHARED(T, name) extern __shared__ __align__(128) T name[]
#endif
