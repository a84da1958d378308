#include "fiber.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SD_EMU_ASAN 1
#include <sanitizer/common_interface_defs.h>
#endif
#endif

#if !defined(__x86_64__)
#error "the CUDA emulator's fiber switch (runtime/cuda_emu/fiber.cpp) is written for x86-64"
#endif

// sd_emu_swap(save, to): pushes the callee-saved registers and the SSE/x87 control words (the
// System V ABI's preserved state), stores the stack pointer in *save, loads `to` and pops the
// same from there. A new fiber's first frame returns into sd_emu_fiber_start, which calls
// entry(arg) from r12/r13.
extern "C" void sd_emu_swap(void** save, void* to);
extern "C" void sd_emu_fiber_start();
asm(R"(
  .text
  .globl sd_emu_swap
  .type sd_emu_swap, @function
sd_emu_swap:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size sd_emu_swap, .-sd_emu_swap

  .globl sd_emu_fiber_start
  .type sd_emu_fiber_start, @function
sd_emu_fiber_start:
  movq %r13, %rdi
  callq *%r12
  ud2
  .size sd_emu_fiber_start, .-sd_emu_fiber_start
)");

namespace sd_emu {
namespace {
// Stacks are reserved, not committed: a kernel touches a few pages of its 256 KiB.
constexpr size_t kStackBytes = size_t(256) << 10, kGuardBytes = 4096;
thread_local Fiber t_main;
}  // namespace

Fiber& main_fiber() { return t_main; }

void fiber_init(Fiber& f, void (*entry)(void*), void* arg) {
  if (!f.stack) {
    void* base = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
      perror("emu: cannot map a fiber stack");
      abort();
    }
    mprotect(base, kGuardBytes, PROT_NONE);  // a stack overflow faults instead of corrupting
    f.stack = static_cast<char*>(base) + kGuardBytes;
    f.size = kStackBytes;
  }
  // The frame sd_emu_swap pops: control words, r15, r14, r13 = arg, r12 = entry, rbx, rbp = 0
  // (ends frame-pointer unwinding in reports), return address. The stack top stays 16-aligned.
  void** sp = reinterpret_cast<void**>(f.stack + f.size) - 8;
  asm volatile("stmxcsr (%0)\n\tfnstcw 4(%0)" : : "r"(sp) : "memory");
  sp[1] = sp[2] = nullptr;
  sp[3] = arg;
  sp[4] = reinterpret_cast<void*>(entry);
  sp[5] = sp[6] = nullptr;
  sp[7] = reinterpret_cast<void*>(&sd_emu_fiber_start);
  f.sp = sp;
  f.asan_fake = nullptr;
}

void fiber_switch(Fiber& from, Fiber& to, bool from_done) {
#ifdef SD_EMU_ASAN
  __sanitizer_start_switch_fiber(from_done ? nullptr : &from.asan_fake, to.stack, to.size);
#else
  (void)from_done;
#endif
  sd_emu_swap(&from.sp, to.sp);
#ifdef SD_EMU_ASAN
  const void* bottom;
  size_t size;
  __sanitizer_finish_switch_fiber(from.asan_fake, &bottom, &size);
#endif
}

void fiber_started() {
#ifdef SD_EMU_ASAN
  // The stack we came from is the scheduler's: switches back to it need its bounds.
  const void* bottom;
  size_t size;
  __sanitizer_finish_switch_fiber(nullptr, &bottom, &size);
  t_main.stack = static_cast<char*>(const_cast<void*>(bottom));
  t_main.size = size;
#endif
}

}  // namespace sd_emu
