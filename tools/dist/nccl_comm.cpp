// NCCL all-reduce of CUDA gradient ranges (nccl_comm.h). NCCL runs on its own stream so that a
// bucket's reduction overlaps the kernels of the rest of the backward; an event orders it after
// the kernels that wrote the bucket. Completion is polled (cudaEventQuery) by Comm::wait, which
// also asks NCCL for asynchronous errors, so a lost peer ends the job instead of hanging it.
#include "tools/dist/nccl_comm.h"

#include <nccl.h>

#include "kernels/cuda/common.cuh"

namespace sd::dist {
namespace {

void nccl_check(ncclResult_t r, const char* call) {
  if (r != ncclSuccess) fail("NCCL call ", call, " failed: ", ncclGetErrorString(r));
}
#define NCCL_CHECK(call) nccl_check((call), #call)

struct NcclPending : Pending {
  ncclComm_t comm;
  cudaEvent_t done = nullptr;
  explicit NcclPending(ncclComm_t c) : comm(c) {
    CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  }
  ~NcclPending() override { cudaEventDestroy(done); }
  bool test() override {
    cudaError_t e = cudaEventQuery(done);
    if (e == cudaSuccess) return true;
    if (e != cudaErrorNotReady) CUDA_CHECK(e);
    ncclResult_t async = ncclSuccess;
    NCCL_CHECK(ncclCommGetAsyncError(comm, &async));
    nccl_check(async, "ncclAllReduce (asynchronous error)");
    return false;
  }
};

class Nccl : public NcclReduce {
 public:
  explicit Nccl(Comm& mpi) {
    ncclUniqueId id;
    if (mpi.root()) NCCL_CHECK(ncclGetUniqueId(&id));
    mpi.broadcast_bytes(&id, sizeof id, 0, "sharing the NCCL id");
    NCCL_CHECK(ncclCommInitRank(&comm_, mpi.size(), id, mpi.rank()));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  }
  ~Nccl() override {
    if (comm_) ncclCommDestroy(comm_);
    cudaEventDestroy(ready_);
    cudaStreamDestroy(stream_);
  }

  std::unique_ptr<Pending> start(const Tensor& range) override {
    auto p = std::make_unique<NcclPending>(comm_);
    CUDA_CHECK(cudaEventRecord(ready_, cuda::stream()));  // the bucket's gradients are written
    CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
    float* d = range.data<float>();
    NCCL_CHECK(ncclAllReduce(d, d, size_t(range.numel()), ncclFloat, ncclSum, comm_, stream_));
    CUDA_CHECK(cudaEventRecord(p->done, stream_));
    return p;
  }

  void abort() override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
  }

 private:
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
};

}  // namespace

void select_gpu(int local_rank) {
  int n = 0;
  CUDA_CHECK(cudaGetDeviceCount(&n));
  SD_CHECK(n > 0, "no CUDA device on this machine");
  CUDA_CHECK(cudaSetDevice(local_rank % n));
}

std::unique_ptr<NcclReduce> make_nccl(Comm& mpi) { return std::make_unique<Nccl>(mpi); }

}  // namespace sd::dist
