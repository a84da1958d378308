#include <cstdlib>
#include <new>

#include "runtime/allocator.h"
#include "runtime/error.h"

namespace sd {

void* host_alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  SD_CHECK(p != nullptr, "host_alloc: out of memory allocating ", bytes, " bytes");
  return p;
}

void host_free(void* p) { std::free(p); }

namespace {
bool g_poison = false;
}
void set_alloc_poison(bool on) { g_poison = on; }
bool alloc_poison() { return g_poison; }

}  // namespace sd
