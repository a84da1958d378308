// Fibers: one per CUDA thread of the running block, switched by a few instructions of assembly
// (ucontext's swapcontext makes a system call per switch, about 10x slower here). Each switch is
// announced to AddressSanitizer so it knows which stack is live.
#pragma once
#include <cstddef>

namespace sd_emu {

struct Fiber {
  void* sp = nullptr;        // saved stack pointer while switched out
  char* stack = nullptr;     // lowest usable byte of the stack (null: the OS thread's own stack)
  size_t size = 0;
  void* asan_fake = nullptr;  // AddressSanitizer's fake-stack handle while switched out
};

// Gives `f` a stack (kept for reuse) and makes it start at entry(arg) when first switched to.
void fiber_init(Fiber& f, void (*entry)(void*), void* arg);
// Saves the running context into `from` and resumes `to`. `from_done`: `from` never runs again.
void fiber_switch(Fiber& from, Fiber& to, bool from_done = false);
// First thing a fiber's entry function calls (completes the switch that started it).
void fiber_started();
// The OS thread's own context, which the scheduler runs on.
Fiber& main_fiber();

}  // namespace sd_emu
