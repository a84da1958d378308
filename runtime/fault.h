// Fault injection for the crash-safety tests: a process dies, or is signalled, at a point the
// test names instead of at a moment it races against. Off unless the environment asks:
//   SIMDIFF_FAULT_KILL_AT=P   SIGKILL at P, the same abrupt death as an outside `kill -9`
//   SIMDIFF_FAULT_TERM_AT=P   raise SIGTERM at P, as if a user sent it (once per listed P)
//   SIMDIFF_FAULT_NAN_AT=P    point() returns true at P: the caller poisons its state with NaN
//   SIMDIFF_FAULT_STOP_AT=P   SIGSTOP at P: the process hangs, as a rank stuck in a collective would
// Under mpirun, SIMDIFF_FAULT_RANK=R keeps the faults to rank R (tools/dist/comm.cpp).
// P is NAME (every arrival at NAME) or NAME#K (the K-th arrival only); several P are separated
// by commas. Points: "step:N" (training, after step N is logged), "rename:FILE" (an atomic write
// of FILE, complete in its temp file, just before the rename).
#pragma once
#include <string>

namespace sd::fault {

bool point(const std::string& name);

}  // namespace sd::fault
