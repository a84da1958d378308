// The CUDA side of the runtime: error reporting, the stream, cuBLAS, and a caching allocator.
//
// Caching allocator: sizes are rounded up (512 B granularity below 1 MiB, 2 MiB above) and freed
// blocks go to a free list keyed by rounded size instead of back to cudaFree. After the first
// training step every request is served from the cache, so the steady state makes no
// cudaMalloc/cudaFree calls (device_alloc_stats() lets a benchmark verify that). All work runs on
// one stream, so a block freed by the host can be reused by the next kernel without an event.
// SIMDIFF_CUDA_NO_CACHE=1 turns the cache off: every tensor is its own exact-size cudaMalloc,
// freed at once, so a memory checker (compute-sanitizer memcheck, or AddressSanitizer in the
// emulation build, where this is always on) sees each buffer's true bounds and every use after
// free.
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "kernels/cuda/launch.cuh"
#include "runtime/allocator.h"
#include "runtime/device.h"

namespace sd {
namespace cuda {

void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  fail("CUDA error ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ") in ", what, " at ",
       file, ":", line);
}

void throw_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
  fail("cuBLAS error ", int(s), " (", cublasGetStatusString(s), ") in ", what, " at ", file, ":",
       line);
}

void throw_launch(const char* kernel, const char* file, int line, const std::string& what) {
  fail("CUDA launch of ", kernel, " at ", file, ":", line, " failed: ", what);
}

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t st;
    CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    return st;
  }();
  return s;
}

cublasHandle_t cublas() {
  static cublasHandle_t h = [] {
    cublasHandle_t handle;
    CUBLAS_CHECK(cublasCreate(&handle));
    CUBLAS_CHECK(cublasSetStream(handle, stream()));
    CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_TF32_TENSOR_OP_MATH));
    return handle;
  }();
  return h;
}

}  // namespace cuda

bool cuda_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

namespace {

struct Cache {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;  // rounded size -> block
  std::unordered_map<void*, size_t> live;     // block -> rounded size
  DeviceAllocStats stats;
};
Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: blocks may be freed during static teardown
  return *c;
}
size_t round_size(size_t b) {
  return b < (1u << 20) ? (b + 511) / 512 * 512 : (b + (2u << 20) - 1) / (2u << 20) * (2u << 20);
}

bool no_cache() {
#ifdef SIMDIFF_CUDA_EMULATE
  return true;
#else
  static const bool on = [] {
    const char* v = std::getenv("SIMDIFF_CUDA_NO_CACHE");
    return v && std::string(v) == "1";
  }();
  return on;
#endif
}

}  // namespace

void* device_alloc(size_t bytes) {
  Cache& c = cache();
  size_t r = no_cache() ? bytes : round_size(bytes);
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = no_cache() ? c.free_blocks.end() : c.free_blocks.find(r);
  void* p = nullptr;
  if (it != c.free_blocks.end()) {
    p = it->second;
    c.free_blocks.erase(it);
    c.stats.bytes_cached -= r;
  } else {
    cudaError_t e = cudaMalloc(&p, r);
    if (e == cudaErrorMemoryAllocation && !c.free_blocks.empty()) {
      // Out of memory with blocks cached: give the cache back and try once more.
      (void)cudaGetLastError();
      CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
      for (auto& [sz, blk] : c.free_blocks) CUDA_CHECK(cudaFree(blk));
      c.free_blocks.clear();
      c.stats.bytes_cached = 0;
      e = cudaMalloc(&p, r);
    }
    if (e != cudaSuccess)
      fail("device_alloc: cudaMalloc of ", r, " bytes failed: ", cudaGetErrorString(e));
    c.stats.cuda_malloc_calls++;
  }
  c.live[p] = r;
  c.stats.bytes_in_use += r;
  return p;
}

void device_free(void* p, size_t) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.live.find(p);
  if (it == c.live.end()) return;
  if (no_cache()) {
    CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));  // queued kernels may still use p
    CUDA_CHECK(cudaFree(p));
    c.stats.bytes_in_use -= it->second;
    c.live.erase(it);
    return;
  }
  c.free_blocks.emplace(it->second, p);
  c.stats.bytes_in_use -= it->second;
  c.stats.bytes_cached += it->second;
  c.live.erase(it);
}

DeviceAllocStats device_alloc_stats() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().stats;
}

void device_copy(void* dst, const void* src, size_t bytes, CopyKind kind) {
  cudaMemcpyKind k = kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
                     : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                                      : cudaMemcpyDeviceToDevice;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, cuda::stream()));
  if (kind == CopyKind::DeviceToHost) CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
  else if (kind == CopyKind::HostToDevice) CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
}

void device_memset(void* p, int byte, size_t bytes) {
  CUDA_CHECK(cudaMemsetAsync(p, byte, bytes, cuda::stream()));
}

namespace {
template <class T>
__global__ void fill_kernel(T* p, int64_t n, T v) {
  CUDA_LOOP(i, n) p[i] = v;
}
template <class S, class D>
__global__ void convert_kernel(const S* s, D* d, int64_t n) {
  CUDA_LOOP(i, n) d[i] = D(float(s[i]));
}
template <class S>
__global__ void convert_to_f64_kernel(const S* s, double* d, int64_t n) {
  CUDA_LOOP(i, n) d[i] = double(s[i]);
}
}  // namespace

void device_fill_f32(float* p, size_t n, float v) {
  SD_LAUNCH(fill_kernel<float>, cuda::grid_for(int64_t(n), 256), 256, 0, cuda::stream(), p,
            int64_t(n), v);
}

void device_fill_f64(double* p, size_t n, double v) {
  SD_LAUNCH(fill_kernel<double>, cuda::grid_for(int64_t(n), 256), 256, 0, cuda::stream(), p,
            int64_t(n), v);
}

void device_convert(const void* src, int src_dtype, void* dst, int dst_dtype, size_t n) {
  auto s = DType(src_dtype), d = DType(dst_dtype);
  unsigned g = cuda::grid_for(int64_t(n), 256);
  auto st = cuda::stream();
  int64_t N = int64_t(n);
  if (s == DType::F32 && d == DType::BF16)
    SD_LAUNCH((convert_kernel<float, __nv_bfloat16>), g, 256, 0, st, (const float*)src,
              (__nv_bfloat16*)dst, N);
  else if (s == DType::BF16 && d == DType::F32)
    SD_LAUNCH((convert_kernel<__nv_bfloat16, float>), g, 256, 0, st, (const __nv_bfloat16*)src,
              (float*)dst, N);
  else if (s == DType::F32 && d == DType::F64)
    SD_LAUNCH(convert_to_f64_kernel<float>, g, 256, 0, st, (const float*)src, (double*)dst, N);
  else if (s == DType::F64 && d == DType::F32)
    SD_LAUNCH((convert_kernel<double, float>), g, 256, 0, st, (const double*)src, (float*)dst, N);
  else
    fail("device_convert: ", dtype_name(s), " -> ", dtype_name(d), " is not supported on cuda");
}

void device_synchronize() { CUDA_CHECK(cudaStreamSynchronize(cuda::stream())); }

}  // namespace sd
