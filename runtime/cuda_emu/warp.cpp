// Warp collectives: __syncwarp, shuffles, votes and the wmma operations. A lane arrives with its
// mask and arguments and waits; once every lane its mask names has arrived at the same collective
// (same intrinsic, call site and mask), the scheduler completes it for all of them. CUDA leaves a
// collective undefined when the mask misses the caller, names lanes that do not exist (a partial
// warp) or have exited, when the named lanes are at different collectives, or when a shuffle
// reads a lane outside the mask: each is reported.
#include <cstdio>

#include "mma.h"
#include "race.h"
#include "report.h"
#include "scheduler.h"

namespace sd_emu {
namespace {

constexpr unsigned kFull = 0xffffffffu;

std::string hex(unsigned m) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", m);
  return b;
}

// "__shfl_xor_sync at kernels/cuda/x.cu:44 (thread (3,0,0) of block (0,0,0), mask 0xffffffff)"
std::string named(const Thread& t) {
  return collective_name(t) + " at " + site_str(t.site) + " (" + thread_str(t) + ", mask " +
         hex(t.mask) + ")";
}

// The lanes a warp has: all 32, or fewer in the last warp of a block that is not a multiple of 32.
unsigned existing_lanes(const Thread& t) {
  int n = warp_lanes(warp_of(t));
  return n == 32 ? kFull : (1u << n) - 1;
}

// Checks the mask against the caller and its warp, then waits for the collective to complete.
void arrive(Thread& me, Coll kind, uint8_t sub, unsigned mask, Site at) {
  me.coll = kind;
  me.sub = sub;
  me.mask = mask;
  me.site = at;
  if (!(mask >> lane_of(me) & 1))
    fail_thread(named(me) + ": the calling lane " + std::to_string(lane_of(me)) +
                " is not in the mask");
  if (mask & ~existing_lanes(me))
    fail_thread(named(me) + ": the mask names lanes that do not exist: warp " +
                std::to_string(warp_of(me)) + " has " + std::to_string(warp_lanes(warp_of(me))) +
                " threads (blocks of " + std::to_string(g.nthreads) + ")");
}

void wait_for_completion(Thread& me) {
  me.wait = Wait::Warp;
  suspend(me);
}

// CUDA's source lane of a shuffle: within the caller's segment of `width` lanes; the caller's
// own value when the source falls outside it (up, down) or in a later segment (xor).
int source_lane(const Thread& t) {
  int lane = lane_of(t), w = t.width, seg = lane & ~(w - 1), x = t.arg;
  switch (Shfl(t.sub)) {
    case Shfl::Idx: return seg + (x & (w - 1));
    case Shfl::Up: return lane - seg >= x ? lane - x : lane;
    case Shfl::Down: return lane - seg + x < w ? lane + x : lane;
    case Shfl::Xor: return (lane ^ x) < seg + w ? lane ^ x : lane;
  }
  return lane;
}

bool same_collective(const Thread& a, const Thread& b) {
  if (a.coll != b.coll || a.sub != b.sub || a.mask != b.mask || !same_site(a.site, b.site))
    return false;
  if (a.coll == Coll::Shuffle) return a.width == b.width;
  if (a.coll == Coll::Wmma) return a.ptr == b.ptr && a.ldm == b.ldm && a.layout == b.layout;
  return true;
}

std::string args_of(const Thread& t) {
  if (t.coll != Coll::Wmma) return named(t);
  char b[64];
  std::snprintf(b, sizeof b, " with pointer %p, ldm %u bytes", t.ptr, t.ldm);
  return named(t) + b;
}

// Completes the collective of lanes[l] for every lane of its mask.
void complete(int warp, Thread* lanes, const Thread& t) {
  const unsigned mask = t.mask;
  if (t.coll == Coll::SyncWarp) race::warp_synced(warp);
  if (t.coll == Coll::Shuffle)
    for (int i = 0; i < 32; ++i) {
      if (!(mask >> i & 1)) continue;
      int src = source_lane(lanes[i]);
      if (!(mask >> src & 1)) {
        problem(named(lanes[i]) + ": reads lane " + std::to_string(src) +
                    ", which is not in the mask (the value is undefined)",
                true);
        return;
      }
      lanes[i].result = lanes[src].bits;
    }
  if (t.coll == Coll::Vote) {
    unsigned ballot = 0;
    for (int i = 0; i < 32; ++i)
      if ((mask >> i & 1) && lanes[i].bits) ballot |= 1u << i;
    uint64_t r = Vote(t.sub) == Vote::Ballot ? ballot
                 : Vote(t.sub) == Vote::Any  ? uint64_t(ballot != 0)
                                             : uint64_t(ballot == mask);
    for (int i = 0; i < 32; ++i)
      if (mask >> i & 1) lanes[i].result = r;
  }
  if (t.coll == Coll::Wmma && wmma::Op(t.sub) == wmma::Op::Mma) wmma::complete_mma(warp);
  for (int i = 0; i < 32; ++i)
    if (mask >> i & 1) lanes[i].wait = Wait::Running;
}

}  // namespace

std::string collective_name(const Thread& t) {
  static const char* shfl[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync",
                               "__shfl_xor_sync"};
  static const char* vote[] = {"__ballot_sync", "__any_sync", "__all_sync"};
  static const char* mma[] = {"wmma::load_matrix_sync", "wmma::store_matrix_sync",
                              "wmma::mma_sync"};
  switch (t.coll) {
    case Coll::SyncWarp: return "__syncwarp";
    case Coll::Shuffle: return shfl[t.sub];
    case Coll::Vote: return vote[t.sub];
    case Coll::Wmma: return mma[t.sub];
  }
  return "?";
}

void warp_collective(Coll kind, uint8_t sub, unsigned mask, Site at) {
  Thread& me = *g.cur;
  arrive(me, kind, sub, mask, at);
  wait_for_completion(me);
}

bool complete_warp_collectives() {
  bool any = false;
  for (int w = 0; 32 * w < g.nthreads; ++w) {
    Thread* lanes = &g.threads[size_t(32 * w)];
    const int n = warp_lanes(w);
    for (int l = 0; l < n; ++l) {
      const Thread& t = lanes[l];
      if (t.wait != Wait::Warp) continue;
      bool ready = true;
      for (int j = 0; j < n; ++j) {
        if (j == l || !(t.mask >> j & 1)) continue;
        const Thread& o = lanes[j];
        if (o.wait == Wait::Exited) {
          problem(named(t) + ": lane " + std::to_string(j) + ", which the mask names, has exited",
                  true);
          return false;
        }
        if (o.wait != Wait::Warp) {
          ready = false;  // not there yet (if it never comes, the block is stuck)
        } else if (!same_collective(t, o)) {
          problem("lanes of warp " + std::to_string(w) + " disagree: lane " + std::to_string(l) +
                      " is at " + args_of(t) + ", lane " + std::to_string(j) + " at " + args_of(o),
                  true);
          return false;
        }
      }
      if (!ready) continue;
      complete(w, lanes, t);
      if (g.abort) return false;
      any = true;
    }
  }
  return any;
}

void syncwarp(unsigned mask, Site at) {
  Thread& me = *g.cur;
  arrive(me, Coll::SyncWarp, 0, mask, at);
  if (mask != existing_lanes(me))
    fail_thread(named(me) + ": a __syncwarp over part of a warp is not modelled by the emulator "
                            "(the race detector orders whole warps only)");
  wait_for_completion(me);
}

uint64_t shuffle(Shfl kind, unsigned mask, uint64_t bits, int arg, int width, Site at) {
  Thread& me = *g.cur;
  me.bits = bits;
  me.arg = arg;
  me.width = width;
  arrive(me, Coll::Shuffle, uint8_t(kind), mask, at);
  if (width < 1 || width > 32 || (width & (width - 1)))
    fail_thread(named(me) + ": width " + std::to_string(width) +
                " is not a power of two from 1 to 32");
  wait_for_completion(me);
  return me.result;
}

unsigned vote(Vote kind, unsigned mask, bool pred, Site at) {
  Thread& me = *g.cur;
  me.bits = pred;
  warp_collective(Coll::Vote, uint8_t(kind), mask, at);
  return unsigned(me.result);
}

}  // namespace sd_emu
