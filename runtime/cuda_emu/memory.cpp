// Device memory: exact-size host allocations (no rounding, no caching), so AddressSanitizer sees
// every out-of-bounds access and use after free of a device buffer. The emulator lists them, so
// copies can check their direction (a host pointer where a device pointer is expected, or the
// reverse, is an error), and kernel arguments and cuBLAS operands can be checked too.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "cuda_runtime.h"
#include "memory.h"

namespace sd_emu {

cudaError_t fail_api(cudaError_t e, const std::string& detail);  // runtime_api.cpp
bool stream_ok(cudaStream_t s);

namespace {

std::mutex g_mutex;
std::map<uintptr_t, size_t> g_allocations;  // start -> bytes
size_t g_held = 0;                          // their sum

// The emulated device's memory, an H100's 80 GiB: a larger total fails as cudaMalloc does on a
// GPU (cudaErrorMemoryAllocation, left pending for cudaGetLastError), not in the host allocator
// (AddressSanitizer would stop the program on a request over its own limit).
constexpr size_t kDeviceMemory = size_t(80) << 30;

std::string ptr_str(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

}  // namespace

bool in_device_memory(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocations.upper_bound(a);
  if (it == g_allocations.begin()) return false;
  --it;
  return a >= it->first && a - it->first <= it->second && bytes <= it->second - (a - it->first);
}

std::string check_pointer_arg(const KernelSite& k, int index, const void* p) {
  if (!p || in_device_memory(p, 0)) return "";
  return "argument " + std::to_string(index) + " of kernel " + k.name + " is " + ptr_str(p) +
         ", which is not device memory (a host pointer?)";
}

}  // namespace sd_emu

using sd_emu::fail_api;
using sd_emu::in_device_memory;

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (!p) return fail_api(cudaErrorInvalidValue, "cudaMalloc: null result pointer");
  auto out_of_memory = [&] {
    return fail_api(cudaErrorMemoryAllocation, "cudaMalloc of " + std::to_string(bytes) +
                                                   " bytes: out of the emulated device's memory");
  };
  {
    std::lock_guard<std::mutex> lock(sd_emu::g_mutex);
    if (bytes > sd_emu::kDeviceMemory - sd_emu::g_held) return out_of_memory();
  }
  void* q = nullptr;
  if (posix_memalign(&q, 256, bytes)) return out_of_memory();  // cudaMalloc's alignment
  std::memset(q, 0xff, bytes);  // the GPU's memory is not zeroed either: NaN until written
  std::lock_guard<std::mutex> lock(sd_emu::g_mutex);
  sd_emu::g_allocations[reinterpret_cast<uintptr_t>(q)] = bytes;
  sd_emu::g_held += bytes;
  *p = q;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(sd_emu::g_mutex);
    auto it = sd_emu::g_allocations.find(reinterpret_cast<uintptr_t>(p));
    if (it == sd_emu::g_allocations.end())
      return fail_api(cudaErrorInvalidDevicePointer,
                      "cudaFree(" + sd_emu::ptr_str(p) +
                          "): not the start of a live device allocation (freed twice?)");
    sd_emu::g_held -= it->second;
    sd_emu::g_allocations.erase(it);
  }
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s) {
  if (!sd_emu::stream_ok(s)) return fail_api(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: dead stream");
  bool to_device = kind != cudaMemcpyDeviceToHost, from_device = kind != cudaMemcpyHostToDevice;
  auto side = [](bool device) { return device ? "device memory" : "host memory"; };
  const char* names[] = {"", "HostToDevice", "DeviceToHost", "DeviceToDevice"};
  if (kind < cudaMemcpyHostToDevice || kind > cudaMemcpyDeviceToDevice)
    return fail_api(cudaErrorInvalidMemcpyDirection, "cudaMemcpyAsync: unknown direction");
  std::string what = std::string("cudaMemcpyAsync ") + names[kind] + " of " +
                     std::to_string(bytes) + " bytes: ";
  if (in_device_memory(dst, bytes) != to_device)
    return fail_api(cudaErrorInvalidValue, what + "the destination " + sd_emu::ptr_str(dst) +
                                               " is not " + side(to_device) +
                                               (to_device ? " (or the copy overruns it)" : ""));
  if (in_device_memory(src, bytes) != from_device)
    return fail_api(cudaErrorInvalidValue, what + "the source " + sd_emu::ptr_str(src) +
                                               " is not " + side(from_device) +
                                               (from_device ? " (or the copy overruns it)" : ""));
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  if (!sd_emu::stream_ok(s)) return fail_api(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: dead stream");
  if (!in_device_memory(p, bytes))
    return fail_api(cudaErrorInvalidValue, "cudaMemsetAsync of " + std::to_string(bytes) +
                                               " bytes at " + sd_emu::ptr_str(p) +
                                               ": not inside one device allocation");
  std::memset(p, value, bytes);
  return cudaSuccess;
}
