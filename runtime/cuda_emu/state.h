// The state of the launch being emulated, shared by the scheduler, the race detector, wmma and
// the reports. One launch runs at a time (run_grid holds a mutex), so it is one global.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_runtime.h"
#include "fiber.h"

namespace sd_emu {

enum class Wait : uint8_t { Running, Barrier, Warp, Exited };
enum class Coll : uint8_t { SyncWarp, Shuffle, Vote, Wmma };

// One CUDA thread of the running block.
struct Thread {
  Fiber fiber;
  uint3 idx{};
  int tid = 0;  // linear index in the block; warp tid / 32, lane tid % 32
  bool started = false;  // has run (a thread that has not needs no unwinding when a block stops)
  Wait wait = Wait::Running;
  Site site{};  // where it waits
  // The warp collective it waits in: kind, arguments, and (once complete) its result.
  Coll coll{};
  uint8_t sub = 0;  // Shfl, Vote or wmma::Op
  unsigned mask = 0;
  uint64_t bits = 0;
  int arg = 0, width = 0;
  const void* ptr = nullptr;
  unsigned ldm = 0;
  int layout = 0;
  uint64_t result = 0;
};

struct Launch {
  KernelSite kernel{};
  dim3 grid, block;
  uint3 block_idx{};
  int nthreads = 0;
  std::vector<Thread> threads;  // the running block's threads (stacks kept between launches)
  Thread* cur = nullptr;        // the thread running now; null while the scheduler runs
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  unsigned char* dyn = nullptr;  // dynamic shared memory
  size_t dyn_size = 0;
  Site barrier{};  // the last __syncthreads the block passed (file null: none yet)
  std::string error;  // the first problem found, with where and who
  int problems = 0;
  bool abort = false;  // the block cannot go on: its threads unwind (StopThread) and it ends
};
extern Launch g;

// The same call site (one header line inlined into two files has two copies of its file name).
inline bool same_site(Site a, Site b) {
  return a.line == b.line && (a.file == b.file || std::strcmp(a.file, b.file) == 0);
}

inline int warp_of(const Thread& t) { return t.tid / 32; }
inline int lane_of(const Thread& t) { return t.tid % 32; }
// Threads in warp w of the running block.
inline int warp_lanes(int w) { return g.nthreads - 32 * w < 32 ? g.nthreads - 32 * w : 32; }

}  // namespace sd_emu
