// Linked into CPU-only builds in place of the CUDA runtime pieces: every entry point says
// clearly that this build has no CUDA backend.
#include "runtime/allocator.h"
#include "runtime/device.h"
#include "runtime/error.h"

namespace sd {

namespace {
[[noreturn]] void no_cuda(const char* what) {
  fail(what, ": this simdiff was built without CUDA (configure with -DSIMDIFF_CUDA=ON)");
}
}  // namespace

bool cuda_available() { return false; }
void* device_alloc(size_t) { no_cuda("device_alloc"); }
void device_free(void*, size_t) {}
void device_copy(void*, const void*, size_t, CopyKind) { no_cuda("device_copy"); }
void device_memset(void*, int, size_t) { no_cuda("device_memset"); }
void device_fill_f32(float*, size_t, float) { no_cuda("device_fill"); }
void device_fill_f64(double*, size_t, double) { no_cuda("device_fill"); }
void device_convert(const void*, int, void*, int, size_t) { no_cuda("device_convert"); }
void device_synchronize() {}
DeviceAllocStats device_alloc_stats() { return {}; }

}  // namespace sd
