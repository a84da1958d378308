// The shared-memory race detector.
//
// Kernel files are compiled with -fsanitize-coverage=inline-8bit-counters,trace-loads,trace-stores
// (CMakeLists.txt), so every load and store in them calls __sanitizer_cov_load<N>(address) or
// __sanitizer_cov_store<N>(address), defined here, in a file that is not instrumented. One range
// check sends every address but the running launch's shared memory back.
//
// Each byte of shared memory has a shadow cell: the last write (thread, barrier interval, code
// address) and the reads of the current interval. An interval ends at every __syncthreads. An
// access is a race when another thread of the block wrote the byte in the same interval (read
// after write, write after write) or, for a write, read it (write after read), unless both threads
// are in one warp and a __syncwarp came between. Atomics of different threads to a byte do not
// race with each other, but do with plain accesses. A read of a byte that no thread of the block
// has written reads uninitialised memory. The first problem of a launch is described with
// symbolised code addresses; later ones are only counted.
#include <elf.h>
#include <link.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "race.h"
#include "report.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define SD_EMU_ASAN 1
#endif
#endif

namespace sd_emu {
namespace race {
namespace {

constexpr uint16_t kAtomic = 0xffff, kMany = 0xfffe;

struct Cell {
  uint32_t w_interval = 0, w_sync = 0;  // the last write: its interval, the writer warp's sync id
  uint32_t r_interval = 0, r_sync = 0;  // the reads: their interval, the latest reader sync id
  uint16_t w_tid = 0, r_tid = 0;        // the writer (kAtomic) and the reader (kMany: several)
  uint16_t r_warp = 0;                  // the readers' warp (kMany: several)
  const void* w_pc = nullptr;           // where the last write was made
};

// Watched ranges: empty outside a launch.
uintptr_t g_static_lo = 0, g_static_len = 0, g_dyn_lo = 0, g_dyn_len = 0;
std::vector<Cell> g_static_cells, g_dyn_cells;
uint32_t g_interval = 1, g_block_start = 1, g_sync_counter = 0;
uint32_t g_warp_sync[32] = {};
bool g_section_found = false;
uintptr_t g_section_lo = 0, g_section_len = 0;

// The static __shared__ variables are the ELF section .sd_emu_shared of this executable
// (emu/device.h). Its address comes from the section headers plus the load bias.
void find_section() {
  g_section_found = true;
  uintptr_t bias = 0;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        *static_cast<uintptr_t*>(out) = info->dlpi_addr;  // the first object is the executable
        return 1;
      },
      &bias);
  FILE* f = std::fopen("/proc/self/exe", "rb");
  if (!f) return;
  Elf64_Ehdr eh;
  std::vector<Elf64_Shdr> sh;
  std::vector<char> names;
  bool ok = std::fread(&eh, sizeof eh, 1, f) == 1 && eh.e_shentsize == sizeof(Elf64_Shdr);
  if (ok) {
    sh.resize(eh.e_shnum);
    ok = std::fseek(f, long(eh.e_shoff), SEEK_SET) == 0 &&
         std::fread(sh.data(), sizeof(Elf64_Shdr), sh.size(), f) == sh.size() &&
         eh.e_shstrndx < sh.size();
  }
  if (ok) {
    names.resize(sh[eh.e_shstrndx].sh_size + 1);
    ok = std::fseek(f, long(sh[eh.e_shstrndx].sh_offset), SEEK_SET) == 0 &&
         std::fread(names.data(), 1, names.size() - 1, f) == names.size() - 1;
  }
  std::fclose(f);
  for (size_t i = 0; ok && i < sh.size(); ++i)
    if (sh[i].sh_name < names.size() &&
        std::strcmp(names.data() + sh[i].sh_name, ".sd_emu_shared") == 0) {
      g_section_lo = bias + sh[i].sh_addr;
      g_section_len = sh[i].sh_size;
    }
}

inline bool watched(uintptr_t a) { return a - g_static_lo < g_static_len || a - g_dyn_lo < g_dyn_len; }

inline Cell& cell(uintptr_t a) {
  return a - g_static_lo < g_static_len ? g_static_cells[a - g_static_lo]
                                        : g_dyn_cells[a - g_dyn_lo];
}

// "`ks`" for a static __shared__ variable, "dynamic shared memory (byte 136)" otherwise.
std::string what_at(uintptr_t a) {
  if (a - g_dyn_lo < g_dyn_len) return "dynamic shared memory (byte " + std::to_string(a - g_dyn_lo) + ")";
#ifdef SD_EMU_ASAN
  char name[256] = {};
  void* region = nullptr;
  size_t size = 0;
  __asan_locate_address(reinterpret_cast<void*>(a), name, sizeof name, &region, &size);
  if (name[0])
    return "shared `" + std::string(name) + "` (byte " +
           std::to_string(a - reinterpret_cast<uintptr_t>(region)) + ")";
#endif
  return "static shared memory";
}

std::string thread_of(uint16_t tid) {
  Thread t;
  const dim3 b = g.block;
  t.idx = {tid % b.x, tid / b.x % b.y, tid / (b.x * b.y)};
  return thread_str(t);
}

std::string since() {
  return g.barrier.file ? " since the last __syncthreads (" + site_str(g.barrier) + ")"
                        : " since the block started (no __syncthreads yet)";
}

// Describes the first problem of the launch and counts the rest.
void report(const char* kind, const Thread& t, uintptr_t a, size_t n, const char* verb,
            const void* pc, const std::string& rest) {
  if (g.problems) {
    ++g.problems;
    return;
  }
  problem(std::string(kind) + ": " + thread_str(t) + " " + verb + " " + std::to_string(n) +
              " bytes of " + what_at(a) + " at " + code_at(pc) + rest,
          false);
}

bool ordered(uint16_t other_tid, uint32_t other_sync, int warp, uint32_t sync_now) {
  return other_tid < kMany && other_tid / 32 == warp && other_sync < sync_now;
}

enum Kind { kRead, kWrite, kAtomicUpdate };

void check(uintptr_t a, size_t n, Kind kind, const void* pc) {
  const Thread* t = g.cur;
  if (!t) return;  // the scheduler's own work (wmma staging) is no thread's access
  const uint16_t tid = uint16_t(t->tid);
  const int warp = t->tid / 32;
  const uint32_t sync = g_warp_sync[warp];
  const char* verb = kind == kRead ? "reads" : kind == kWrite ? "writes" : "atomically updates";
  for (size_t i = 0; i < n; ++i) {
    if (!watched(a + i)) continue;
    Cell& c = cell(a + i);
    if (kind != kWrite && c.w_interval < g_block_start) {
      report("shared memory read before any write", *t, a, n, verb, pc,
             ", which no thread of this block has written yet (a missing __syncthreads, or "
             "uninitialised shared memory)");
      break;
    }
    if (c.w_interval == g_interval && c.w_tid != tid && !(kind == kAtomicUpdate && c.w_tid == kAtomic) &&
        !ordered(c.w_tid, c.w_sync, warp, sync)) {
      report("shared-memory race", *t, a, n, verb, pc,
             c.w_tid == kAtomic ? ", which atomics updated" + since()
                                : ", which " + thread_of(c.w_tid) + " wrote at " + code_at(c.w_pc) + since());
      break;
    }
    if (kind != kRead && c.r_interval == g_interval && c.r_tid != tid &&
        !(c.r_warp == warp && c.r_sync < sync)) {
      report("shared-memory race", *t, a, n, verb, pc,
             ", which " + (c.r_tid == kMany ? std::string("other threads") : thread_of(c.r_tid)) +
                 " read" + since());
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (!watched(a + i)) continue;
    Cell& c = cell(a + i);
    if (kind == kRead) {
      if (c.r_interval != g_interval) {
        c.r_interval = g_interval;
        c.r_tid = tid;
        c.r_warp = uint16_t(warp);
        c.r_sync = sync;
      } else {
        if (c.r_tid != tid) c.r_tid = kMany;
        if (c.r_warp != warp) c.r_warp = kMany;
        c.r_sync = std::max(c.r_sync, sync);
      }
    } else {
      c.w_interval = g_interval;
      c.w_tid = kind == kAtomicUpdate ? kAtomic : tid;
      c.w_sync = sync;
      c.w_pc = pc;
    }
  }
}

}  // namespace

void begin_launch() {
  if (!g_section_found) {
    find_section();
    g_static_cells.resize(g_section_len);
  }
  g_static_lo = g_section_lo;
  g_static_len = g_section_len;
  g_dyn_lo = reinterpret_cast<uintptr_t>(g.dyn);
  g_dyn_len = g.dyn_size;
  if (g_dyn_cells.size() < g.dyn_size) g_dyn_cells.resize(g.dyn_size);  // new cells: unwritten
}

void end_launch() { g_static_len = g_dyn_len = 0; }

void begin_block() { g_block_start = ++g_interval; }

void barrier() { ++g_interval; }

void warp_synced(int warp) { g_warp_sync[warp] = ++g_sync_counter; }

}  // namespace race

float atomic_add(float* p, float v) {
  auto a = reinterpret_cast<uintptr_t>(p);
  if (race::watched(a)) race::check(a, sizeof *p, race::kAtomicUpdate, __builtin_return_address(0));
  float old = *p;
  *p = old + v;
  return old;
}

}  // namespace sd_emu

// The instrumentation's callbacks (one per access size).
#define SD_EMU_TRACE(n)                                                                     \
  extern "C" void __sanitizer_cov_load##n(void* p) {                                       \
    auto a = reinterpret_cast<uintptr_t>(p);                                                \
    if (sd_emu::race::watched(a))                                                           \
      sd_emu::race::check(a, n, sd_emu::race::kRead, __builtin_return_address(0));          \
  }                                                                                         \
  extern "C" void __sanitizer_cov_store##n(void* p) {                                      \
    auto a = reinterpret_cast<uintptr_t>(p);                                                \
    if (sd_emu::race::watched(a))                                                           \
      sd_emu::race::check(a, n, sd_emu::race::kWrite, __builtin_return_address(0));         \
  }
SD_EMU_TRACE(1)
SD_EMU_TRACE(2)
SD_EMU_TRACE(4)
SD_EMU_TRACE(8)
SD_EMU_TRACE(16)
#undef SD_EMU_TRACE
