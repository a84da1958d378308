// Block barriers, warp barriers, shuffles and votes. Each is a point where the calling thread
// (a fiber) hands control back to the scheduler (scheduler.cpp), which resumes it once every
// thread that takes part has arrived, and checks CUDA's rules on the way: the same barrier for the
// whole block, the caller's lane in the mask, every lane the mask names present and at the same
// intrinsic, a shuffle source lane that takes part. The call site (__builtin_FILE/LINE as
// default arguments) goes into every report.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace sd_emu {

struct Site {
  const char* file;
  int line;
};

enum class Shfl : uint8_t { Idx, Up, Down, Xor };
enum class Vote : uint8_t { Ballot, Any, All };

void syncthreads(Site at);
void syncwarp(unsigned mask, Site at);
uint64_t shuffle(Shfl kind, unsigned mask, uint64_t bits, int arg, int width, Site at);
unsigned vote(Vote kind, unsigned mask, bool pred, Site at);

template <class T>
T shfl(Shfl kind, unsigned mask, T v, int arg, int width, Site at) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move up to 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof v);
  bits = shuffle(kind, mask, bits, arg, width, at);
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

}  // namespace sd_emu

#define SD_EMU_CALLER const char *file = __builtin_FILE(), int line = __builtin_LINE()

inline void __syncthreads(SD_EMU_CALLER) { sd_emu::syncthreads({file, line}); }
inline void __syncwarp(unsigned mask = 0xffffffffu, SD_EMU_CALLER) {
  sd_emu::syncwarp(mask, {file, line});
}

template <class T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32, SD_EMU_CALLER) {
  return sd_emu::shfl(sd_emu::Shfl::Idx, mask, v, src_lane, width, {file, line});
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, SD_EMU_CALLER) {
  return sd_emu::shfl(sd_emu::Shfl::Up, mask, v, int(delta), width, {file, line});
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, SD_EMU_CALLER) {
  return sd_emu::shfl(sd_emu::Shfl::Down, mask, v, int(delta), width, {file, line});
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, SD_EMU_CALLER) {
  return sd_emu::shfl(sd_emu::Shfl::Xor, mask, v, lane_mask, width, {file, line});
}

inline unsigned __ballot_sync(unsigned mask, int pred, SD_EMU_CALLER) {
  return sd_emu::vote(sd_emu::Vote::Ballot, mask, pred != 0, {file, line});
}
inline int __any_sync(unsigned mask, int pred, SD_EMU_CALLER) {
  return int(sd_emu::vote(sd_emu::Vote::Any, mask, pred != 0, {file, line}));
}
inline int __all_sync(unsigned mask, int pred, SD_EMU_CALLER) {
  return int(sd_emu::vote(sd_emu::Vote::All, mask, pred != 0, {file, line}));
}

#undef SD_EMU_CALLER
