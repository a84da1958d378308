// Data-parallel gradient averaging, overlapped with the backward (as PyTorch DDP does).
//
// The gradient arena (model/params.h) is cut into buckets: contiguous ranges of whole
// parameters of about `bucket_mb` each, taken from the arena's end, because the backward
// finishes the last-declared parameters (the output layers) first. autograd's AfterNode hook
// reports each parameter whose gradient is final; a bucket whose parameters are all final starts
// its all-reduce at once while the backward goes on. Buckets start in one fixed order on every
// rank (MPI and NCCL need the same order of collectives everywhere): bucket k waits for k - 1.
// finish() starts what is left (parameters the backward did not reach), waits for all, and
// divides by the number of ranks.
//
// On the CPU, MPI moves a non-blocking collective forward only inside MPI calls: after every
// node of the backward the hook tests the oldest bucket in flight, which progresses them all.
#pragma once
#include <memory>
#include <unordered_map>
#include <vector>

#include "model/params.h"
#include "tools/dist/comm.h"

namespace sd::dist {

class GradReducer {
 public:
  // overlap = false starts every bucket only after the backward (to measure the overlap).
  GradReducer(Comm& comm, const ParamStore& ps, double bucket_mb, bool overlap = true);

  // The hook for backward() of a step's last micro-batch (empty with one rank).
  AfterNode hook();
  // After that backward: every bucket all-reduced and averaged.
  void finish();

  struct Stats {
    int64_t steps = 0;
    double waited_s = 0;  // in finish(): the communication the backward did not hide
    double span_s = 0;    // from the first bucket's start to the last one seen done
  };
  const Stats& stats() const { return stats_; }
  int buckets() const { return int(buckets_.size()); }

 private:
  struct Bucket {
    int64_t begin = 0, end = 0;  // arena elements
    int params = 0, pending = 0;
    std::unique_ptr<Pending> op;
  };
  void after_node(const std::vector<VarImpl*>& leaves_done);
  void start(size_t k);
  void progress();

  Comm& comm_;
  const ParamStore& ps_;
  const bool overlap_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const VarImpl*, size_t> bucket_of_;
  size_t started_ = 0, done_ = 0;  // buckets [0, done_) finished, [done_, started_) in flight
  double first_start_ = 0, last_done_ = 0;
  Stats stats_;
};

}  // namespace sd::dist
