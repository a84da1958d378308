// A per-op wall-clock profile: every run_forward* / run_backward of the registry is timed (argument
// checks, output allocation and the kernel) and added up per op name and direction. Off by default
// (one flag test per op call). `simdiff train --profile` prints the table at the end of training;
// SIMDIFF_PROFILE=1 in the environment turns it on for any program (simdiff_bench, simdiff sample)
// and prints the table to stderr at exit. On the GPU each timed op synchronises the device first
// and last, so the times are the kernels' (and the pipeline is serialised while profiling).
#pragma once
#include <string>

namespace sd::op_profile {

bool enabled();
void enable(bool on);
void reset();

// The table: op, direction (fwd/bwd), calls, total ms, ms per call, share of the ops' total,
// sorted by total; `wall_ms` > 0 adds a line for the time spent outside ops (autograd
// bookkeeping, data, the training loop) out of that wall time.
std::string report(double wall_ms = 0);

// Times its scope when profiling is on.
class Scope {
 public:
  Scope(const std::string& op, bool backward, bool cuda);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const std::string* op_ = nullptr;  // null: not profiling
  bool backward_ = false, cuda_ = false;
  double t0_ = 0;
};

}  // namespace sd::op_profile
