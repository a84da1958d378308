// A kernel launch on the emulator: the project's launch helper (kernels/cuda/launch.cuh) calls
// sd_emu::launch where nvcc would compile kernel<<<grid, block, smem, stream>>>(args...). The
// arguments are converted to the kernel's parameter types once, like a launch copies them; every
// pointer argument must be null or point into a device allocation.
#pragma once
#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "emu/device.h"

typedef struct CUstream_st* cudaStream_t;

namespace sd_emu {

// The launch as the source spells it, for every report about it.
struct KernelSite {
  const char* name;  // the kernel expression at the launch site
  const char* file;  // the launch site
  int line;
  const void* fn;    // the kernel function (its symbolised name goes into reports)
};

// Runs body(ctx) as every thread of the grid (scheduler.cpp). Returns "" or the first error:
// an invalid configuration, or what a check found while the kernel ran.
std::string run_grid(const KernelSite& k, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                     void (*body)(void*), void* ctx);

// "" when p is null or inside a device allocation, else the error for argument `index`.
std::string check_pointer_arg(const KernelSite& k, int index, const void* p);

// The kernel's instantiation as the symboliser names it ("attn_fwd_f32<32>"), else k.name.
std::string kernel_name(const KernelSite& k);

// The launch's dynamic shared memory (SD_DYNAMIC_SHARED in kernels/cuda/launch.cuh).
unsigned char* dynamic_shared();

template <class... P, class... A>
std::string launch(const KernelSite& k, void (*fn)(P...), dim3 grid, dim3 block, size_t smem,
                   cudaStream_t stream, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  using Params = std::tuple<std::decay_t<P>...>;
  Params params(std::forward<A>(args)...);
  std::string err;
  auto check = [&]<size_t... I>(std::index_sequence<I...>) {
    auto one = [&](int index, const auto& v) {
      if constexpr (std::is_pointer_v<std::decay_t<decltype(v)>>)
        if (err.empty()) err = check_pointer_arg(k, index, v);
    };
    (one(int(I), std::get<I>(params)), ...);
  };
  check(std::index_sequence_for<P...>{});
  if (!err.empty()) return err;
  struct Call {
    void (*fn)(P...);
    Params* params;
  } call{fn, &params};
  // Each thread gets its own copy of the parameters, as in CUDA.
  auto body = [](void* c) { std::apply(static_cast<Call*>(c)->fn, *static_cast<Call*>(c)->params); };
  return run_grid(k, grid, block, smem, stream, body, &call);
}

}  // namespace sd_emu
