// Data-parallel training across processes: the ranks of one job and what they do together.
//
// A Comm connects the ranks. This base class is a job of one process, in which every collective
// is the identity: a build without MPI, or simdiff started without mpirun, is exactly the
// one-process program. Started by mpirun (or another MPI launcher) in a build with MPI, world()
// is an MPI communicator (mpi_comm.cpp) whose gradient all-reduce runs on MPI for CPU tensors and
// on NCCL for CUDA tensors (nccl_comm.cpp).
//
// Nothing waits forever: a collective polls for its completion and, after timeout() seconds
// without it (a rank died, hangs, or is at another step), stops the whole job with a message
// naming the collective. Failures are handled in one of two ways:
//   - agreed: every rank reaches the same failure at the same point (a check all ranks agree on
//     through agree(), or a value they all reduced). Rank 0 reports it, naming the rank it came
//     from, and every rank exits cleanly with the same status.
//   - local: anything else (a write error on rank 0, a data read error on rank 1). The rank
//     reports it, naming itself, and stops the job (MPI_Abort): its peers may be waiting in a
//     collective it will never join.
#pragma once
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/tensor.h"

namespace sd::dist {

// Thrown on every rank at once, for the same reason; `status` is the exit status (2: usage).
struct Agreed : Error {
  Agreed(const std::string& what, int status_) : Error(what), status(status_) {}
  int status;
};

// What an exception says to a user, and the exit status it gives (2 for cli::UsageError).
std::pair<std::string, int> describe(const std::exception_ptr& e);

// An operation in flight (a gradient all-reduce); test() progresses it and says whether it is
// done. Destroying an unfinished one is a bug: wait first.
class Pending {
 public:
  virtual ~Pending() = default;
  virtual bool test() = 0;
};

// Rows [first, first + count) of a batch of `total` that rank `rank` of `size` holds: the
// ranks' shares are contiguous, in rank order, and differ by at most one row.
struct Share {
  int64_t first = 0, count = 0;
};
Share share_of(int64_t total, int rank, int size);

class Comm {
 public:
  virtual ~Comm() = default;

  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  virtual int local_rank() const { return 0; }  // among the ranks on this machine
  virtual int local_size() const { return 1; }  // the ranks on this machine
  bool root() const { return rank() == 0; }
  virtual std::string backend() const { return "one process"; }

  double timeout() const { return timeout_s_; }
  void set_timeout(double seconds) { timeout_s_ = seconds; }

  // Refuses a device this job cannot all-reduce gradients on (no collective: agree() on it).
  virtual void check_device(Device) const {}
  // Before any CUDA work: makes this rank's GPU (its local rank's) the current one.
  virtual void use_device(Device) {}

  // ---- host collectives: blocking, every rank calls them in the same order ----
  // `what` names the collective in the timeout message.
  virtual void broadcast_bytes(void* data, size_t bytes, int from, const char* what);
  // all = every rank's `bytes` bytes, in rank order (size() * bytes).
  virtual void allgather_bytes(const void* mine, size_t bytes, void* all, const char* what);
  // On rank 0, all = the concatenation of every rank's bytes (rank r sends bytes_of[r]).
  virtual void gather_bytes(const void* mine, void* all, const std::vector<size_t>& bytes_of,
                            const char* what);
  virtual void allreduce_sum(double* v, int n, const char* what);
  virtual void barrier(const char* what);

  // ---- the gradient all-reduce: non-blocking ----
  // Sums an f32 range (a view of the gradient arena, on the CPU or the GPU) over the ranks, in
  // place. Starts at once; wait() or test() the result.
  virtual std::unique_ptr<Pending> start_allreduce_sum(const Tensor& range);

  // Polls until done; stops the job after timeout() seconds.
  void wait(Pending& p, const std::string& what);

  // Reports `message` as this rank's failure and ends the job: every rank exits non-zero.
  [[noreturn]] virtual void abort(const std::string& message);

  // ---- built on the above ----
  std::string broadcast(const std::string& s, int from = 0);
  void broadcast(const Tensor& t);  // rank 0's values into t on every rank (through the host)
  std::vector<uint64_t> allgather(uint64_t v, const char* what);
  // On rank 0: the f32 host tensors of every rank ([rows_r, ...], rows_of[r] rows each)
  // concatenated along dim 0; elsewhere undefined.
  Tensor gather_rows(const Tensor& mine, const std::vector<int64_t>& rows_of);

  // Runs `work` on every rank, then agrees: when it threw on any rank, every rank throws Agreed
  // with the lowest failing rank's message ("rank 2: ..." unless it is rank 0). `work` must not
  // call collectives (a rank that threw before one would leave the others waiting).
  template <class F>
  auto agree(F&& work) -> decltype(work()) {
    using R = decltype(work());
    if (size() == 1) return work();
    std::exception_ptr error;
    std::optional<std::conditional_t<std::is_void_v<R>, int, R>> result;
    try {
      if constexpr (std::is_void_v<R>)
        work();
      else
        result.emplace(work());
    } catch (...) {
      error = std::current_exception();
    }
    settle(error);
    if constexpr (!std::is_void_v<R>) return std::move(*result);
  }
  // Throws Agreed on every rank when `error` is set on any.
  void settle(const std::exception_ptr& error);

 private:
  double timeout_s_ = 600;
};

// The job's communicator while run() runs; the one-process Comm otherwise.
Comm& world();
void set_world(Comm* c);  // run()'s: nullptr restores the one-process Comm

// Runs a command on every rank of the job: sets up world() (MPI when started by an MPI launcher,
// refused in a build without MPI), applies the error policy above and shuts MPI down. Returns
// the body's exit status, or an agreed failure's (which rank 0 prints). No rank returns before
// rank 0 has reported: mpirun stops the job at the first rank that exits non-zero. With one
// process it only calls body. (tools/dist/job.cpp)
int run(const std::function<int()>& body);

}  // namespace sd::dist
