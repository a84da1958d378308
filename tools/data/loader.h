// Batches from a Dataset, prepared on a background thread a few steps ahead of training.
//
// The order is a pure function of (seed, step): sample position p = step * batch + j falls in
// epoch p / N at slot p % N, and the epoch's permutation is derived from (seed, epoch). Flips
// are decided per position too. So a run resumed at step k (start_step = k) sees exactly the
// batches an uninterrupted run sees from step k on; batches may straddle epoch boundaries.
// A data-parallel rank (tools/dist/) loads only its rows of each global batch: rank r of N takes
// rows [r B / N, (r + 1) B / N), the same examples and flips a one-process run puts there.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "tools/data/dataset.h"

namespace sd {

class Loader {
 public:
  // Rows [first, first + count) of every batch of batch_size; count 0: the whole batch.
  struct Rows {
    int first = 0, count = 0;
  };

  // `data` must outlive the loader. prefetch: batches prepared ahead (the queue bound).
  Loader(const Dataset& data, int batch_size, uint64_t seed, bool flip, int64_t start_step = 0,
         int prefetch = 2, Rows rows = {0, 0});  // spelled out: clang 14 (emulation build)
  ~Loader();  // stops and joins the worker, even if it is blocked on a full queue
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The batch for step(), then advances. Rethrows (every time) an error the worker hit, after
  // handing out the batches it finished before the error.
  Batch next();
  int64_t step() const { return step_; }

 private:
  void run(int64_t first_step);  // worker thread body
  Batch make_batch(int64_t step);
  int64_t index_at(int64_t position);  // worker thread only

  const Dataset& data_;
  const int batch_;     // the global batch: positions advance by this per step
  const Rows rows_;     // the rows this loader hands out
  const uint64_t seed_;
  const bool flip_;
  const size_t prefetch_;
  int64_t step_;

  // Worker-only cache of the current epoch's permutation.
  int64_t perm_epoch_ = -1;
  std::vector<int64_t> perm_;

  std::mutex mu_;
  std::condition_variable cv_;  // signalled on push, pop, error and stop
  std::deque<Batch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace sd
