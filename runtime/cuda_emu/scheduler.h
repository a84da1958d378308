// What the device-side pieces (sync.cpp, wmma.cpp) need from the scheduler.
#pragma once
#include <string>

#include "state.h"

namespace sd_emu {

// The calling thread enters a warp collective (its arguments already stored in *g.cur) and
// returns once every lane of `mask` has arrived and the collective is complete. Refuses a mask
// without the caller's lane or naming lanes the warp does not have.
void warp_collective(Coll kind, uint8_t sub, unsigned mask, Site at);

// Thrown on a thread's fiber when its block is stopped, so its frames unwind (no leaks, clean
// stacks); thread_main catches it.
struct StopThread {};

// Hands control to the scheduler until it resumes the thread; throws StopThread when the block
// has been stopped meanwhile.
void suspend(Thread& me);

// Records a problem that stops the block, and unwinds the calling thread.
[[noreturn]] void fail_thread(const std::string& what);

// "__shfl_xor_sync" and the like, for reports.
std::string collective_name(const Thread& t);

namespace wmma {
void complete_mma(int warp);  // stage().d = a * b + c of the warp (wmma.cpp)
}

}  // namespace sd_emu
