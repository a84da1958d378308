// The device allocator's policy (runtime/caching_allocator.h) on a pretend device, in the CPU
// build: size classes and their waste bound, reuse, the trimming of blocks no longer requested,
// the out-of-memory path and the statistics. The emulation build runs the allocator without its
// cache (AddressSanitizer needs exact sizes), and a GPU is not always there: this is where the
// policy is tested.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "runtime/caching_allocator.h"
#include "runtime/error.h"

namespace sd {
namespace {

TEST(SizeClasses, WasteIsBoundedAndClassesAreFew) {
  std::set<size_t> classes;
  size_t prev = 0;
  for (size_t b = 1; b <= (size_t(1) << 22); b += 1 + b / 97) {  // every scale, dense enough
    size_t c = size_class(b);
    EXPECT_GE(c, b);
    EXPECT_EQ(c % 512, 0u) << b;
    EXPECT_GE(c, prev) << b << ": classes must grow with the request";
    if (b <= 4096)
      EXPECT_LT(c - b, 512u) << b;
    else
      EXPECT_LT(double(c - b), double(b) / 8) << b << " -> " << c;
    classes.insert(c);
    prev = c;
  }
  // 4 KiB..4 MiB is 10 doublings: 8 classes each, plus the 8 small ones and 4 MiB itself.
  EXPECT_LE(classes.size(), 8u + 10 * 8 + 1);
  // The case: just over 1 MiB no longer takes 2 MiB.
  EXPECT_EQ(size_class((size_t(1) << 20) + 1), (size_t(1) << 20) + (size_t(1) << 17));
  for (int k = 12; k < 40; ++k) {
    size_t p = size_t(1) << k;
    EXPECT_EQ(size_class(p), p) << "a power of two is its own class";
    EXPECT_EQ(size_class(p + 1), p + p / 8);
    EXPECT_EQ(size_class(p + p / 8 + 1), p + p / 4);
  }
  EXPECT_EQ(size_class(0), 512u);
}

// A pretend device: addresses are counters, `capacity` bytes at most, calls recorded.
struct FakeDevice {
  size_t capacity = SIZE_MAX, held = 0;
  uintptr_t next = 4096;
  std::map<void*, size_t> blocks;
  size_t mallocs = 0, frees = 0, free_batches = 0;

  CachingAllocator::Device device() {
    return {[this](size_t n) -> void* {
              if (held + n > capacity) return nullptr;
              void* p = reinterpret_cast<void*>(next);
              next += n + 256;
              blocks[p] = n;
              held += n;
              ++mallocs;
              return p;
            },
            [this](const std::vector<void*>& v) {
              ++free_batches;
              for (void* p : v) {
                ASSERT_TRUE(blocks.count(p)) << "freeing a block twice or one never allocated";
                held -= blocks[p];
                blocks.erase(p);
                ++frees;
              }
            }};
  }
};

// One "step" of a workload: allocate the sizes in order, free them in reverse (activations
// freed by the backward), as a training or sampling step does.
void step(CachingAllocator& a, const std::vector<size_t>& sizes) {
  std::vector<void*> live;
  for (size_t s : sizes) live.push_back(a.allocate(s));
  for (auto it = live.rbegin(); it != live.rend(); ++it) a.free(*it);
}

// n requests spread over the 8 classes of [base, 2 base).
std::vector<size_t> shapes(size_t n, size_t base) {
  std::vector<size_t> v;
  for (size_t i = 0; i < n; ++i) v.push_back(base + base / 64 * (i % 61) + 17 * (i % 13));
  return v;
}

std::set<size_t> classes_of(const std::vector<size_t>& sizes) {
  std::set<size_t> c;
  for (size_t s : sizes) c.insert(size_class(s));
  return c;
}

size_t bytes_of(const std::vector<size_t>& sizes) {
  size_t n = 0;
  for (size_t s : sizes) n += size_class(s);
  return n;
}

TEST(CachingAllocator, SteadyStateMakesNoDeviceCalls) {
  FakeDevice dev;
  CachingAllocator a(dev.device(), true);
  std::vector<size_t> train = shapes(300, 1 << 20);
  step(a, train);
  size_t after_first = dev.mallocs;
  EXPECT_GT(after_first, 0u);
  for (int i = 0; i < 50; ++i) step(a, train);
  EXPECT_EQ(dev.mallocs, after_first) << "every later request is served from the cache";
  EXPECT_EQ(dev.frees, 0u);
  DeviceAllocStats s = a.stats();
  EXPECT_EQ(s.allocations, 51 * train.size());
  EXPECT_EQ(s.cuda_malloc_calls, after_first);
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_EQ(s.bytes_requested, 0u);
  EXPECT_EQ(s.bytes_cached, dev.held);
  EXPECT_EQ(s.peak_held, dev.held);
}

TEST(CachingAllocator, RequestsOfOneClassShareBlocks) {
  FakeDevice dev;
  CachingAllocator a(dev.device(), true);
  const size_t mib = 1 << 20;
  void* p = a.allocate(mib + 1);
  EXPECT_EQ(dev.blocks.at(p), mib + mib / 8) << "1 MiB + 1 takes 1.125 MiB, not 2 MiB";
  DeviceAllocStats s = a.stats();
  EXPECT_EQ(s.bytes_in_use, mib + mib / 8);
  EXPECT_EQ(s.bytes_requested, mib + 1);
  a.free(p);
  void* q = a.allocate(mib + mib / 8 - 3);  // the same class
  EXPECT_EQ(q, p);
  EXPECT_EQ(dev.mallocs, 1u);
  void* r = a.allocate(mib + mib / 8 + 1);  // the next class: a new block
  EXPECT_NE(r, p);
  EXPECT_EQ(dev.mallocs, 2u);
  a.free(q);
  a.free(r);
  a.free(q);  // a second free of the same pointer is ignored
  a.free(reinterpret_cast<void*>(uintptr_t(12345)));
  EXPECT_EQ(a.stats().bytes_cached, dev.held);
}

// Training, then sampling with other shapes, then training again: each phase's blocks go back
// to the device within a few steps of the other phase, and a phase's own steady state gives
// nothing back. Steps of 3000 allocations (more than the idle floor) check that the limit adapts
// to the step length instead of trimming blocks a step will reuse.
TEST(CachingAllocator, TrimsBlocksOfShapesNoLongerRequested) {
  FakeDevice dev;
  CachingAllocator a(dev.device(), true);
  std::vector<size_t> train = shapes(3000, 1 << 20), sample = shapes(400, 4 << 20);
  for (int i = 0; i < 3; ++i) step(a, train);
  size_t mallocs = dev.mallocs, frees = dev.frees;
  for (int i = 0; i < 20; ++i) step(a, train);
  EXPECT_EQ(dev.mallocs, mallocs) << "steady-state training allocates nothing";
  EXPECT_EQ(dev.frees, frees) << "steady-state training gives nothing back";
  EXPECT_EQ(dev.held, bytes_of(train));

  for (int i = 0; i < 40; ++i) step(a, sample);  // 16000 allocations: over two steps' worth
  std::set<size_t> train_classes = classes_of(train), sample_classes = classes_of(sample);
  for (auto& [p, n] : dev.blocks)
    EXPECT_TRUE(sample_classes.count(n)) << "a training block of " << n << " is still held";
  EXPECT_EQ(dev.held, bytes_of(sample));
  DeviceAllocStats s = a.stats();
  EXPECT_EQ(s.bytes_cached, dev.held);
  EXPECT_EQ(s.cuda_free_calls, train.size());
  EXPECT_EQ(s.peak_held, bytes_of(train) + bytes_of(sample));

  for (int i = 0; i < 5; ++i) step(a, train);
  for (auto& [p, n] : dev.blocks)
    EXPECT_TRUE(train_classes.count(n)) << "a sampling block of " << n << " is still held";
  mallocs = dev.mallocs, frees = dev.frees;
  for (int i = 0; i < 10; ++i) step(a, train);
  EXPECT_EQ(dev.mallocs, mallocs);
  EXPECT_EQ(dev.frees, frees);
}

TEST(CachingAllocator, OutOfMemoryGivesTheCacheBackThenFailsClearly) {
  FakeDevice dev;
  dev.capacity = 10 << 20;
  CachingAllocator a(dev.device(), true);
  void* p = a.allocate(3 << 20);
  void* q = a.allocate(3 << 20);
  a.free(p);
  a.free(q);
  EXPECT_EQ(a.stats().bytes_cached, size_t(6) << 20);
  void* big = a.allocate(8 << 20);  // fits only once the cache is given back
  EXPECT_NE(big, nullptr);
  EXPECT_EQ(dev.frees, 2u);
  EXPECT_EQ(a.stats().bytes_cached, 0u);
  try {
    a.allocate(5 << 20);
    FAIL() << "allocated past the device's capacity";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("out of device memory"), std::string::npos) << m;
    EXPECT_NE(m.find("5.00 MiB"), std::string::npos) << m;
    EXPECT_NE(m.find("8.00 MiB held by live tensors"), std::string::npos) << m;
  }
  DeviceAllocStats s = a.stats();
  EXPECT_EQ(s.bytes_in_use, size_t(8) << 20) << "the failed request left no trace";
  a.free(big);
  EXPECT_NE(a.allocate(5 << 20), nullptr);
}

TEST(CachingAllocator, WithoutCacheEveryBlockIsExactAndGivenBack) {
  FakeDevice dev;
  CachingAllocator a(dev.device(), false);
  void* p = a.allocate(1000);
  EXPECT_EQ(dev.blocks.at(p), 1000u);
  a.free(p);
  EXPECT_EQ(dev.held, 0u);
  for (int i = 0; i < 3; ++i) step(a, {100, 200, 300});
  DeviceAllocStats s = a.stats();
  EXPECT_EQ(s.cuda_malloc_calls, 10u);
  EXPECT_EQ(s.cuda_free_calls, 10u);
  EXPECT_EQ(s.bytes_cached, 0u);
  EXPECT_EQ(s.peak_in_use, 1000u);
}

TEST(CachingAllocator, DescribesItsStatistics) {
  DeviceAllocStats s;
  s.allocations = 1200;
  s.cuda_malloc_calls = 40;
  s.cuda_free_calls = 2;
  s.bytes_in_use = 3 << 20;
  s.bytes_cached = 512;
  s.peak_in_use = size_t(5) << 30;
  s.peak_held = (size_t(11) << 29);
  EXPECT_EQ(describe_device_memory(s),
            "device memory: peak 5.50 GiB held, 5.00 GiB in use; now 3.00 MiB in use, 512 B "
            "cached; 40 cudaMalloc and 2 cudaFree calls for 1200 allocations");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(size_t(300) << 20), "300 MiB");
}

}  // namespace
}  // namespace sd
