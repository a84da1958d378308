// The device allocator's policy, apart from CUDA: size classes, the cache of freed blocks, when
// cached blocks go back to the device, and the statistics. runtime/cuda_runtime.cu gives it
// cudaMalloc and cudaFree; tests/test_size_classes.cpp drives it with a pretend device in the
// CPU build (the emulation build runs without the cache, so that is where it is tested).
//
// Size classes: multiples of 512 bytes up to 4 KiB, then 8 classes per power of two (2^k,
// 2^k * 9/8, ..., 2^k * 15/8), so a block is larger than its request by less than 1/8 of the
// request (12.5%), or by less than 512 bytes below 4 KiB. A freed block is kept and serves the
// next request of its class (the most recently freed first); a training step in steady state
// then makes no cudaMalloc or cudaFree calls.
//
// Trimming: a cached block that has not been reused for more than 2 R + idle_floor allocations
// goes back to the device, where R is the longest reuse distance seen so far (allocations between
// a block's free and its reuse). Training reuses its blocks one step later, so R reaches the
// allocations of a step and nothing is given back in steady state; when the shapes change
// (sampling after training, training again after sampling) the blocks of the shapes no longer
// requested go after about two steps' worth of allocations, so the cache follows the working set
// instead of keeping every shape it ever saw. Blocks are given back together, oldest first, after
// the device has finished its queued work. Out of memory: the whole cache is given back and the
// allocation tried once more; if it still fails the error says how much was requested and held.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "runtime/allocator.h"

namespace sd {

// The size of the block that serves a request of `bytes` (see above).
size_t size_class(size_t bytes);

class CachingAllocator {
 public:
  struct Device {
    std::function<void*(size_t)> malloc;                   // nullptr: out of memory
    std::function<void(const std::vector<void*>&)> free;  // after the queued work is done
  };
  static constexpr uint64_t kIdleFloor = 4096;

  // `cache` false: every request is its own block of exactly its size, given back when freed
  // (SIMDIFF_CUDA_NO_CACHE=1, and the emulation build: memory checkers see every bound).
  CachingAllocator(Device device, bool cache, uint64_t idle_floor = kIdleFloor);

  void* allocate(size_t bytes);  // throws sd::Error when the device is out of memory
  void free(void* p);            // a pointer this allocator did not hand out is ignored
  DeviceAllocStats stats() const;

 private:
  struct Cached {
    void* p;
    size_t bytes;
    uint64_t freed_at;  // allocation count when it entered the cache
  };
  using Age = std::list<Cached>;  // oldest first

  void give_back(std::vector<void*> blocks);
  void give_back_idle();
  void give_back_all();

  Device device_;
  const bool cache_;
  const uint64_t idle_floor_;
  mutable std::mutex mu_;
  Age by_age_;
  std::unordered_map<size_t, std::deque<Age::iterator>> by_class_;  // oldest first
  struct Live {
    size_t bytes, requested;
  };
  std::unordered_map<void*, Live> live_;
  uint64_t longest_reuse_ = 0;
  DeviceAllocStats stats_;
};

}  // namespace sd
