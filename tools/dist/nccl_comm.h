// The GPU gradient all-reduce of an MPI job: NCCL, its unique id bootstrapped through MPI
// (built only with MPI and a CUDA toolkit that ships NCCL; see comm.h).
#pragma once
#include <memory>

#include "tools/dist/comm.h"

namespace sd::dist {

class NcclReduce {
 public:
  virtual ~NcclReduce() = default;
  // Sums a CUDA f32 range over the ranks in place, on NCCL's own stream, after the work queued
  // so far on the compute stream (which writes the gradients).
  virtual std::unique_ptr<Pending> start(const Tensor& range) = 0;
  virtual void abort() = 0;  // ncclCommAbort: frees a rank stuck in a collective
};

// Makes the GPU of this rank's local rank (modulo the GPUs this machine has) the current one;
// before any other CUDA call.
void select_gpu(int local_rank);

// The NCCL communicator of mpi's ranks, on the current GPU. A collective: every rank calls it.
std::unique_ptr<NcclReduce> make_nccl(Comm& mpi);

}  // namespace sd::dist
