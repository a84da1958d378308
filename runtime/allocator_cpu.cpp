// Host memory: 64-byte aligned blocks from glibc; the largest ones are kept mapped for reuse.
//
// Blocks of 32 MiB and more (above glibc's largest mmap threshold) are mapped on allocation and
// unmapped on free, so each new one is page-faulted in, 4 KiB at a time: for a 256 MiB
// layer_norm output that was most of the op's time (perf: kernel page clearing and fault
// handling). Such blocks are kept after free in a small cache and handed out again for a request
// of exactly the same size (an op run again on the same shapes: a training step, a benchmark
// loop). A request that finds no block of its size first releases every cached block, so the
// cache never holds dead memory while new memory is mapped: the peak footprint is what it would
// be without the cache. Smaller blocks are glibc's alone: its dynamic thresholds keep most of a
// step's activations in the heap, and forcing "never trim" on it as well raised the demo step's
// peak memory by 2-4 MiB for no gain measurable on this (shared) machine.
// Not under AddressSanitizer (its allocator must see every allocation and free to find misuse),
// nor with SIMDIFF_HOST_CACHE=0 in the environment.
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/allocator.h"
#include "runtime/error.h"

#if defined(__SANITIZE_ADDRESS__)
#define SD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SD_ASAN 1
#endif
#endif

namespace sd {
namespace {

constexpr size_t kLarge = size_t(32) << 20;
constexpr size_t kMaxCached = 4;  // large blocks kept at most

bool cache_enabled() {
#ifdef SD_ASAN
  return false;
#else
  static const bool on = [] {
    const char* v = std::getenv("SIMDIFF_HOST_CACHE");
    return !(v && std::string(v) == "0");
  }();
  return on;
#endif
}

struct LargeBlocks {
  std::mutex mu;
  std::unordered_map<void*, size_t> live;       // large blocks handed out, with their sizes
  std::vector<std::pair<void*, size_t>> freed;  // kept for reuse
};
LargeBlocks& large() {
  static auto* l = new LargeBlocks;  // never destroyed: tensors may be freed during exit
  return *l;
}

}  // namespace

void* host_alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  bool cached = rounded >= kLarge && cache_enabled();
  if (cached) {
    LargeBlocks& l = large();
    std::lock_guard<std::mutex> lk(l.mu);
    for (size_t i = 0; i < l.freed.size(); ++i)
      if (l.freed[i].second == rounded) {
        void* p = l.freed[i].first;
        l.freed.erase(l.freed.begin() + long(i));
        l.live[p] = rounded;
        return p;
      }
    for (auto& [p, n] : l.freed) std::free(p);
    l.freed.clear();
  }
  void* p = std::aligned_alloc(64, rounded);
  SD_CHECK(p != nullptr, "host_alloc: out of memory allocating ", bytes, " bytes");
  if (cached) {
    LargeBlocks& l = large();
    std::lock_guard<std::mutex> lk(l.mu);
    l.live[p] = rounded;
  }
  return p;
}

void host_free(void* p) {
  if (p && cache_enabled()) {
    LargeBlocks& l = large();
    std::lock_guard<std::mutex> lk(l.mu);
    auto it = l.live.find(p);
    if (it != l.live.end()) {
      size_t n = it->second;
      l.live.erase(it);
      if (l.freed.size() >= kMaxCached) {
        std::free(l.freed.front().first);
        l.freed.erase(l.freed.begin());
      }
      l.freed.push_back({p, n});
      return;
    }
  }
  std::free(p);
}

namespace {
bool g_poison = false;
}
void set_alloc_poison(bool on) { g_poison = on; }
bool alloc_poison() { return g_poison; }

}  // namespace sd
