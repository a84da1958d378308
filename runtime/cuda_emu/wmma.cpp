// wmma's emulator side (the fragment operations are templates in include/mma.h): the per-run
// random element-to-lane layouts, the warp-collective entry with CUDA's argument rules, and the
// 16 x 16 x 16 product itself.
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <random>

#include "mma.h"
#include "report.h"
#include "scheduler.h"

namespace sd_emu::wmma {
namespace {

// One permutation of the 256 positions of a tile per fragment kind (A or B in either layout,
// the accumulator): element i of lane l holds position perm[l * 8 + i].
uint8_t g_layout[5][256];
bool g_drawn = false;
Stage g_stage[32];  // one per warp of the running block

void draw_layouts() {
  std::mt19937_64 rng(options().seed);
  for (auto& perm : g_layout) {
    std::iota(perm, perm + 256, 0);
    std::shuffle(perm, perm + 256, rng);
  }
  g_drawn = true;
  std::fprintf(stderr, "emu: wmma fragment layouts drawn with SIMDIFF_EMU_SEED=%llu\n",
               options().seed);
}

}  // namespace

const uint8_t* layout(int kind) {
  if (!g_drawn) draw_layouts();
  return g_layout[kind];
}

Stage& stage() { return g_stage[warp_of(*g.cur)]; }

int lane() { return lane_of(*g.cur); }

void collective(Op op, const void* ptr, unsigned ldm_bytes, int layout, Site at) {
  Thread& me = *g.cur;
  me.ptr = ptr;
  me.ldm = ldm_bytes;
  me.layout = layout;
  me.coll = Coll::Wmma;
  me.sub = uint8_t(op);
  me.site = at;
  const int w = warp_of(me);
  auto fail = [&](const std::string& why) {
    fail_thread(collective_name(me) + " at " + site_str(at) + " (" + thread_str(me) + "): " + why);
  };
  if (warp_lanes(w) < 32)
    fail("needs all 32 lanes of the warp; warp " + std::to_string(w) + " has " +
         std::to_string(warp_lanes(w)));
  if (op != Op::Mma && reinterpret_cast<uintptr_t>(ptr) % 32) {
    char b[32];
    std::snprintf(b, sizeof b, "%p", ptr);
    fail(std::string("the pointer ") + b + " is not 32-byte (256-bit) aligned");
  }
  if (op != Op::Mma && ldm_bytes % 16)
    fail("the leading dimension is " + std::to_string(ldm_bytes) +
         " bytes, not a multiple of 16 bytes");
  warp_collective(Coll::Wmma, uint8_t(op), 0xffffffffu, at);
}

void complete_mma(int warp) {
  Stage& s = g_stage[warp];
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) {
      float acc = s.c[r * 16 + c];
      for (int k = 0; k < 16; ++k) acc += s.a[r * 16 + k] * s.b[k * 16 + c];
      s.d[r * 16 + c] = acc;
    }
}

}  // namespace sd_emu::wmma
