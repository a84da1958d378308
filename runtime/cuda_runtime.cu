// The CUDA side of the runtime: error reporting, the stream, cuBLAS, the float-atomics switch,
// and the device allocator: runtime/caching_allocator.h's size classes and cache over
// cudaMalloc/cudaFree. All work runs on one stream, so a block freed by the host can be reused by
// the next kernel without an event; blocks go back to the device (cudaFree) only after the stream
// has finished its work. SIMDIFF_CUDA_NO_CACHE=1 turns the cache off: every tensor is its own
// exact-size cudaMalloc, freed at once, so a memory checker (compute-sanitizer memcheck, or
// AddressSanitizer in the emulation build, where this is always on) sees each buffer's true
// bounds and every use after free.
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cuda/launch.cuh"
#include "runtime/caching_allocator.h"
#include "runtime/cuda_atomics.h"
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

}  // namespace cuda

bool cuda_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

namespace {

bool env_is_1(const char* name) {
  const char* v = std::getenv(name);
  return v && std::string(v) == "1";
}

bool no_cache() {
#ifdef SIMDIFF_CUDA_EMULATE
  return true;
#else
  static const bool on = env_is_1("SIMDIFF_CUDA_NO_CACHE");
  return on;
#endif
}

bool& float_atomics_flag() {
  static bool on = env_is_1("SIMDIFF_CUDA_ATOMICS");
  return on;
}

// A failed cudaMalloc leaves its error pending; it is cleared here so that the next launch's
// check does not report it as its own.
void* cuda_malloc_or_null(size_t bytes) {
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaSuccess) return p;
  (void)cudaGetLastError();
  if (e == cudaErrorMemoryAllocation) return nullptr;
  cuda::throw_cuda(e, "cudaMalloc", __FILE__, __LINE__);
}

void cuda_free_all(const std::vector<void*>& blocks) {
  CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));  // queued kernels may still use them
  for (void* p : blocks) CUDA_CHECK(cudaFree(p));
}

CachingAllocator& device_allocator() {
  // Never destroyed: tensors may be freed during static teardown.
  static CachingAllocator* a =
      new CachingAllocator({cuda_malloc_or_null, cuda_free_all}, !no_cache());
  return *a;
}

}  // namespace

bool cuda_float_atomics() { return float_atomics_flag(); }
void set_cuda_float_atomics(bool on) { float_atomics_flag() = on; }

void* device_alloc(size_t bytes) { return device_allocator().allocate(bytes); }
void device_free(void* p, size_t) { device_allocator().free(p); }
DeviceAllocStats device_alloc_stats() { return device_allocator().stats(); }

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
