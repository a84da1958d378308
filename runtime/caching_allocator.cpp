#include "runtime/caching_allocator.h"

#include <algorithm>
#include <bit>
#include <cstdio>

#include "runtime/error.h"

namespace sd {

size_t size_class(size_t bytes) {
  constexpr size_t kSmall = 4096, kGrain = 512;
  if (bytes <= kSmall) return std::max<size_t>(1, (bytes + kGrain - 1) / kGrain) * kGrain;
  // 2^k < bytes <= 2^(k+1): steps of 2^(k-3), eight per doubling.
  size_t step = std::bit_floor(bytes - 1) / 8;
  return (bytes + step - 1) / step * step;
}

std::string format_bytes(size_t bytes) {
  const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char b[32];
  std::snprintf(b, sizeof b, "%.*f %s", u == 0 || v >= 100 ? 0 : v >= 10 ? 1 : 2, v, unit[u]);
  return b;
}

std::string describe_device_memory(const DeviceAllocStats& s) {
  return "device memory: peak " + format_bytes(s.peak_held) + " held, " +
         format_bytes(s.peak_in_use) + " in use; now " + format_bytes(s.bytes_in_use) +
         " in use, " + format_bytes(s.bytes_cached) + " cached; " +
         std::to_string(s.cuda_malloc_calls) + " cudaMalloc and " +
         std::to_string(s.cuda_free_calls) + " cudaFree calls for " +
         std::to_string(s.allocations) + " allocations";
}

CachingAllocator::CachingAllocator(Device device, bool cache, uint64_t idle_floor)
    : device_(std::move(device)), cache_(cache), idle_floor_(idle_floor) {}

void* CachingAllocator::allocate(size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t size = cache_ ? size_class(bytes) : bytes;
  const uint64_t now = ++stats_.allocations;
  void* p = nullptr;
  if (auto it = by_class_.find(size); it != by_class_.end() && !it->second.empty()) {
    Age::iterator e = it->second.back();  // the most recently freed: the oldest age out
    it->second.pop_back();
    longest_reuse_ = std::max(longest_reuse_, now - e->freed_at);
    p = e->p;
    by_age_.erase(e);
    stats_.bytes_cached -= size;
  } else {
    p = device_.malloc(size);
    if (!p && !by_age_.empty()) {
      give_back_all();
      p = device_.malloc(size);
    }
    if (!p)
      fail("out of device memory: cudaMalloc of ", format_bytes(size), " (a request of ",
           format_bytes(bytes), ") failed with ", format_bytes(stats_.bytes_in_use),
           " held by live tensors (peak ", format_bytes(stats_.peak_in_use),
           "); the allocator's cache had been given back first");
    stats_.cuda_malloc_calls++;
  }
  live_[p] = {size, bytes};
  stats_.bytes_in_use += size;
  stats_.bytes_requested += bytes;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.bytes_in_use);
  stats_.peak_held = std::max(stats_.peak_held, stats_.bytes_in_use + stats_.bytes_cached);
  give_back_idle();
  return p;
}

void CachingAllocator::free(void* p) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return;
  Live l = it->second;
  live_.erase(it);
  stats_.bytes_in_use -= l.bytes;
  stats_.bytes_requested -= l.requested;
  if (!cache_) {
    give_back({p});
    return;
  }
  by_age_.push_back({p, l.bytes, stats_.allocations});
  by_class_[l.bytes].push_back(std::prev(by_age_.end()));
  stats_.bytes_cached += l.bytes;
}

DeviceAllocStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::give_back(std::vector<void*> blocks) {
  if (blocks.empty()) return;
  device_.free(blocks);
  stats_.cuda_free_calls += blocks.size();
}

// Blocks idle for longer than 2 R + floor allocations, oldest first: each is the oldest of its
// class too, since a class's blocks entered the cache in age order.
void CachingAllocator::give_back_idle() {
  const uint64_t limit = 2 * longest_reuse_ + idle_floor_;
  std::vector<void*> idle;
  while (!by_age_.empty() && stats_.allocations - by_age_.front().freed_at > limit) {
    Cached& e = by_age_.front();
    by_class_[e.bytes].pop_front();
    stats_.bytes_cached -= e.bytes;
    idle.push_back(e.p);
    by_age_.pop_front();
  }
  give_back(std::move(idle));
}

void CachingAllocator::give_back_all() {
  std::vector<void*> all;
  for (const Cached& e : by_age_) all.push_back(e.p);
  by_age_.clear();
  by_class_.clear();
  stats_.bytes_cached = 0;
  give_back(std::move(all));
}

}  // namespace sd
