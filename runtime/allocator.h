// Raw memory for Storage. Host memory is 64-byte aligned (AVX-512 lines, and what BLAS likes).
// Device memory comes from a caching allocator (runtime/caching_allocator.h, on the device in
// runtime/cuda_runtime.cu), so that a training step in steady state never calls cudaMalloc or
// cudaFree. A CPU-only build links cuda_stub.cpp instead, whose functions throw a clear "built
// without CUDA" error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sd {

void* host_alloc(size_t bytes);
void host_free(void* p);

void* device_alloc(size_t bytes);
void device_free(void* p, size_t bytes);

enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };
void device_copy(void* dst, const void* src, size_t bytes, CopyKind kind);
void device_memset(void* p, int byte, size_t bytes);
void device_fill_f32(float* p, size_t n, float v);
void device_fill_f64(double* p, size_t n, double v);
// Element-type conversion on the device (f32 <-> bf16, f32 <-> f64).
void device_convert(const void* src, int src_dtype, void* dst, int dst_dtype, size_t n);
void device_synchronize();

// Tests turn this on so every new buffer starts as NaN (0xFF bytes): an element a kernel forgets
// to write then shows up in the comparison instead of passing by luck.
void set_alloc_poison(bool on);
bool alloc_poison();

// The device allocator's statistics (runtime/caching_allocator.h has its policy): for
// `simdiff info --device cuda`, the training log's last lines and the no-malloc-in-steady-state
// check. Sizes are bytes; "in use" counts the blocks' size classes, "requested" what their
// tensors asked for.
struct DeviceAllocStats {
  size_t allocations = 0;        // requests served, from the cache or not
  size_t cuda_malloc_calls = 0;  // blocks obtained from the device
  size_t cuda_free_calls = 0;    // blocks given back to it (trimmed, out of memory, no cache)
  size_t bytes_in_use = 0;
  size_t bytes_requested = 0;
  size_t bytes_cached = 0;       // freed blocks kept for reuse
  size_t peak_in_use = 0;
  size_t peak_held = 0;          // the most held from the device at once: in use + cached
};
DeviceAllocStats device_alloc_stats();
// One line for people: peak held and in use, now in use and cached, calls and allocations.
std::string describe_device_memory(const DeviceAllocStats& s);
std::string format_bytes(size_t bytes);  // "512 B", "3.25 MiB", "41.2 GiB"

}  // namespace sd
