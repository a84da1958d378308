// Runs a grid: blocks one after another, each block's threads as fibers on the calling OS thread.
// A thread runs until it reaches __syncthreads, a warp collective, or its end; when no thread can
// run, the scheduler completes the warp collectives whose lanes have all arrived, else releases
// the block barrier when every live thread waits at the same one, else reports what is stuck
// (a divergent barrier, threads that exited while others wait, a deadlock). Nothing preempts a
// thread between those points: the emulator has no memory model (README.md, limits).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <set>

#include "race.h"
#include "report.h"
#include "scheduler.h"

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace sd_emu {

Launch g;

bool complete_warp_collectives();  // warp.cpp
bool stream_ok(cudaStream_t s);    // runtime_api.cpp
int dynamic_smem_limit(const void* fn);

namespace {

constexpr unsigned kMaxGridX = 2147483647u, kMaxGridYZ = 65535, kMaxBlock = 1024;

void thread_main(void* arg) {
  fiber_started();
  Thread& me = *static_cast<Thread*>(arg);
  me.started = true;
  try {
    g.body(g.ctx);
  } catch (const StopThread&) {
  }
  me.wait = Wait::Exited;
  fiber_switch(me.fiber, main_fiber(), /*from_done=*/true);
  __builtin_unreachable();
}

void resume(Thread& t) {
  threadIdx = t.idx;
  g.cur = &t;
  fiber_switch(main_fiber(), t.fiber);
  g.cur = nullptr;
}

std::string describe(const Thread& t) {
  if (t.wait == Wait::Barrier) return "wait at __syncthreads (" + site_str(t.site) + ")";
  char mask[16];
  std::snprintf(mask, sizeof mask, "0x%08x", t.mask);
  return "wait at " + collective_name(t) + " (" + site_str(t.site) + ", mask " + mask + ")";
}

// Releases the block barrier when every live thread waits at one __syncthreads.
bool release_barrier() {
  const Thread* first = nullptr;
  for (int i = 0; i < g.nthreads; ++i) {
    const Thread& t = g.threads[i];
    if (t.wait == Wait::Exited) return false;  // CUDA: every thread of the block must arrive
    if (t.wait != Wait::Barrier) return false;
    if (!first) first = &t;
    else if (!same_site(t.site, first->site)) return false;
  }
  race::barrier();
  g.barrier = first->site;
  for (int i = 0; i < g.nthreads; ++i) g.threads[i].wait = Wait::Running;
  return true;
}

// Nothing can run, no collective completes and the barrier cannot open: say who waits where.
void report_stuck() {
  std::map<std::string, std::vector<int>> groups;  // what -> threads
  bool collective = false, exited = false;
  std::set<std::string> barriers;  // the sites threads wait at
  for (int i = 0; i < g.nthreads; ++i) {
    const Thread& t = g.threads[i];
    exited |= t.wait == Wait::Exited;
    collective |= t.wait == Wait::Warp;
    if (t.wait == Wait::Barrier) barriers.insert(site_str(t.site));
    groups[t.wait == Wait::Exited ? "exited" : describe(t)].push_back(i);
  }
  std::string who;
  for (auto& [what, ids] : groups)
    who += (who.empty() ? "" : "; ") + std::string("threads ") + lanes_str(ids) + " " + what;
  std::string kind = collective ? "deadlock"
                     : barriers.size() > 1 ? "divergent __syncthreads (threads at different barriers)"
                     : exited ? "divergent __syncthreads (some threads exited, others wait)"
                              : "deadlock";
  problem(kind + " in block (" + std::to_string(g.block_idx.x) + "," +
              std::to_string(g.block_idx.y) + "," + std::to_string(g.block_idx.z) + "): " + who,
          true);
}

// After a problem that stops the block: every thread that has started unwinds its frames.
bool stop_block() {
  for (int i = 0; i < g.nthreads; ++i)
    if (g.threads[i].started && g.threads[i].wait != Wait::Exited) resume(g.threads[i]);
  return false;
}

// Runs one block to its end; false when it stopped on a problem.
bool run_block(std::mt19937_64* shuffle_rng) {
  race::begin_block();
  g.barrier = {};
  const dim3 b = g.block;
  for (int i = 0; i < g.nthreads; ++i) {
    Thread& t = g.threads[i];
    t.tid = i;
    t.idx = {unsigned(i) % b.x, unsigned(i) / b.x % b.y, unsigned(i) / (b.x * b.y)};
    t.wait = Wait::Running;
    t.started = false;
    fiber_init(t.fiber, thread_main, &t);
  }
  std::vector<int> order(size_t(g.nthreads));
  std::iota(order.begin(), order.end(), 0);
  for (;;) {
    if (shuffle_rng) std::shuffle(order.begin(), order.end(), *shuffle_rng);
    for (int i : order) {
      if (g.threads[i].wait != Wait::Running) continue;
      resume(g.threads[i]);
      if (g.abort) return stop_block();
    }
    bool live = false;
    for (int i = 0; i < g.nthreads; ++i) live |= g.threads[i].wait != Wait::Exited;
    if (!live) return true;
    bool completed = complete_warp_collectives();
    if (g.abort) return stop_block();
    if (completed || release_barrier()) continue;
    report_stuck();
    return stop_block();
  }
}

std::string check_config(const KernelSite& k, dim3 grid, dim3 block, size_t smem,
                         cudaStream_t s) {
  auto d3 = [](dim3 d) {
    return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
  };
  uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (threads == 0 || threads > kMaxBlock || block.x > 1024 || block.y > 1024 || block.z > 64)
    return "block " + d3(block) + " (" + std::to_string(threads) +
           " threads): a block has 1 to 1024 threads, at most (1024,1024,64)";
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > kMaxGridX || grid.y > kMaxGridYZ ||
      grid.z > kMaxGridYZ)
    return "grid " + d3(grid) + ": each dimension is at least 1, at most (2^31-1,65535,65535)";
  int limit = dynamic_smem_limit(k.fn);
  if (smem > size_t(limit))
    return std::to_string(smem) + " bytes of dynamic shared memory, the kernel's limit is " +
           std::to_string(limit) +
           (limit == 48 * 1024 ? " (more needs cudaFuncSetAttribute(..., "
                                 "cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) first)"
                               : "");
  if (!stream_ok(s)) return "the stream is not a live stream handle";
  return "";
}

}  // namespace

void fail_thread(const std::string& what) {
  problem(what, true);
  throw StopThread{};
}

void suspend(Thread& me) {
  fiber_switch(me.fiber, main_fiber());
  if (g.abort) throw StopThread{};
}

unsigned char* dynamic_shared() { return g.dyn; }

std::string run_grid(const KernelSite& k, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                     void (*body)(void*), void* ctx) {
  static std::mutex one_launch_at_a_time;
  static uint64_t launches = 0;
  std::lock_guard<std::mutex> lock(one_launch_at_a_time);
  std::string bad = check_config(k, grid, block, smem, stream);
  if (!bad.empty()) return "invalid launch configuration: " + bad;

  g.kernel = k;
  g.grid = grid;
  g.block = block;
  g.nthreads = int(block.x * block.y * block.z);
  g.body = body;
  g.ctx = ctx;
  g.error.clear();
  g.problems = 0;
  g.abort = false;
  if (g.threads.size() < size_t(g.nthreads)) g.threads.resize(size_t(g.nthreads));
  blockDim = block;
  gridDim = grid;
  // Dynamic shared memory: an exact-size allocation (AddressSanitizer bounds it), NaN-filled
  // because the GPU's is uninitialised too.
  void* dyn = nullptr;
  if (posix_memalign(&dyn, 128, smem)) return "out of host memory for dynamic shared memory";
  std::memset(dyn, 0xff, smem);
  g.dyn = static_cast<unsigned char*>(dyn);
  g.dyn_size = smem;

  // Blocks in order, or in a random order with SIMDIFF_EMU_RANDOM_ORDER (threads too).
  const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
  std::mt19937_64 rng(options().seed + launches++);
  std::vector<uint64_t> order;
  if (options().random_order) {
    static bool said = false;
    if (!said) std::fprintf(stderr, "emu: random order with SIMDIFF_EMU_SEED=%llu\n", options().seed);
    said = true;
    order.resize(nblocks);
    std::iota(order.begin(), order.end(), uint64_t(0));
    std::shuffle(order.begin(), order.end(), rng);
  }
  race::begin_launch();
  for (uint64_t i = 0; i < nblocks; ++i) {
    uint64_t b = order.empty() ? i : order[i];
    g.block_idx = {unsigned(b % grid.x), unsigned(b / grid.x % grid.y),
                   unsigned(b / (uint64_t(grid.x) * grid.y))};
    blockIdx = g.block_idx;
    if (!run_block(options().random_order ? &rng : nullptr)) break;
  }
  race::end_launch();
  std::free(dyn);
  g.dyn = nullptr;
  g.dyn_size = 0;
  if (!g.problems) return "";
  std::string msg = "kernel " + kernel_name(k) + ": " + g.error;
  if (g.problems > 1) msg += " (and " + std::to_string(g.problems - 1) + " more problems)";
  return msg;
}

void syncthreads(Site at) {
  Thread& me = *g.cur;
  me.wait = Wait::Barrier;
  me.site = at;
  suspend(me);
}

}  // namespace sd_emu
