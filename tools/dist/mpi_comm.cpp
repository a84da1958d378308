// The MPI communicator (comm.h): host collectives and the CPU gradient all-reduce on MPI's
// non-blocking collectives, each polled by Comm::wait (so a lost peer ends the job after the
// timeout instead of hanging it), and the GPU all-reduce handed to NCCL.
//
// On the CPU, MPI progresses a non-blocking collective only inside MPI calls: the gradient
// reducer (reducer.h) tests its buckets between the nodes of the backward to keep them moving.
// Only the main thread calls MPI (MPI_THREAD_FUNNELED; OpenMP's threads never do). A progress
// thread entering MPI every 50 us while buckets were in flight (MPI_THREAD_MULTIPLE) was tried
// and measured against this, interleaved (bench/RESULTS.md, data parallel): neither the step
// time nor the exposed wait changed beyond the noise. With one core per rank such a thread can
// only take its time slices from the backward it is meant to overlap, and MPI_THREAD_MULTIPLE
// puts Open MPI's locks on every call; so no thread.
#include "tools/dist/mpi_comm.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#ifdef SIMDIFF_WITH_NCCL
#include "tools/dist/nccl_comm.h"
#endif

namespace sd::dist {
namespace {

// Every MPI call is checked: the communicator returns errors rather than aborting on them.
void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail("MPI call ", call, " failed: ", std::string(text, size_t(len)));
}
#define MPI_CHECK(call) check((call), #call)

struct MpiPending : Pending {
  std::vector<MPI_Request> reqs;
  bool test() override {
    int done = 0;
    MPI_CHECK(MPI_Testall(int(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE));
    return done != 0;
  }
};

// MPI counts are ints: messages go in pieces of at most 2^30 elements.
constexpr int64_t kPiece = int64_t(1) << 30;

class MpiComm : public Comm {
 public:
  MpiComm() {
    int provided = 0;
    MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    SD_CHECK(provided >= MPI_THREAD_FUNNELED, "this MPI library gives thread level ", provided,
             " (MPI_THREAD_FUNNELED needed: OpenMP threads run beside the thread that calls MPI)");
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MPI_CHECK(MPI_Comm_size(comm_, &size_));
    MPI_Comm local;  // the ranks that share this machine
    MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
    MPI_CHECK(MPI_Comm_rank(local, &local_rank_));
    MPI_CHECK(MPI_Comm_size(local, &local_size_));
    MPI_CHECK(MPI_Comm_free(&local));
  }

  ~MpiComm() override {
#ifdef SIMDIFF_WITH_NCCL
    nccl_.reset();
#endif
    MPI_Comm_free(&comm_);
    MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string backend() const override {
#ifdef SIMDIFF_WITH_NCCL
    if (nccl_) return "MPI + NCCL";
#endif
    return "MPI";
  }

  void check_device(Device d) const override {
#ifndef SIMDIFF_WITH_NCCL
    SD_CHECK(d != Device::CUDA || size_ == 1, "--device cuda on ", size_, " ranks: this build ",
             "all-reduces GPU gradients with NCCL and has none (",
#ifdef SIMDIFF_CUDA_EMULATE
             "the CUDA emulation build never has it",
#else
             "no libnccl was found beside the CUDA toolkit",
#endif
             "); use --device cpu, or one rank");
#else
    (void)d;
#endif
  }

  void use_device(Device d) override {
#ifdef SIMDIFF_WITH_NCCL
    if (d == Device::CUDA) select_gpu(local_rank_);
#else
    (void)d;
#endif
  }

  void broadcast_bytes(void* data, size_t bytes, int from, const char* what) override {
    MpiPending p;
    for (size_t off = 0; off < bytes; off += size_t(kPiece)) {
      p.reqs.emplace_back();
      MPI_CHECK(MPI_Ibcast(static_cast<char*>(data) + off,
                           int(std::min(size_t(kPiece), bytes - off)), MPI_BYTE, from, comm_,
                           &p.reqs.back()));
    }
    wait(p, what);
  }

  void allgather_bytes(const void* mine, size_t bytes, void* all, const char* what) override {
    SD_CHECK(bytes < size_t(kPiece), "allgather_bytes: ", bytes, " bytes is too many");
    MpiPending p;
    p.reqs.emplace_back();
    MPI_CHECK(MPI_Iallgather(mine, int(bytes), MPI_BYTE, all, int(bytes), MPI_BYTE, comm_,
                             &p.reqs.back()));
    wait(p, what);
  }

  // Point-to-point, in pieces: the total may pass MPI's int counts (a large sample grid).
  void gather_bytes(const void* mine, void* all, const std::vector<size_t>& bytes_of,
                    const char* what) override {
    MpiPending p;
    auto pieces = [&](size_t bytes, auto&& post) {
      int tag = 0;
      for (size_t off = 0; off < bytes; off += size_t(kPiece), ++tag)
        post(off, int(std::min(size_t(kPiece), bytes - off)), tag);
    };
    if (rank_ == 0) {
      size_t at = bytes_of[0];
      if (bytes_of[0])
        std::copy_n(static_cast<const char*>(mine), bytes_of[0], static_cast<char*>(all));
      for (int r = 1; r < size_; ++r) {
        pieces(bytes_of[size_t(r)], [&](size_t off, int n, int tag) {
          p.reqs.emplace_back();
          MPI_CHECK(MPI_Irecv(static_cast<char*>(all) + at + off, n, MPI_BYTE, r, tag, comm_,
                              &p.reqs.back()));
        });
        at += bytes_of[size_t(r)];
      }
    } else {
      pieces(bytes_of[size_t(rank_)], [&](size_t off, int n, int tag) {
        p.reqs.emplace_back();
        MPI_CHECK(MPI_Isend(static_cast<const char*>(mine) + off, n, MPI_BYTE, 0, tag, comm_,
                            &p.reqs.back()));
      });
    }
    wait(p, what);
  }

  void allreduce_sum(double* v, int n, const char* what) override {
    MpiPending p;
    p.reqs.emplace_back();
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, comm_, &p.reqs.back()));
    wait(p, what);
  }

  void barrier(const char* what) override {
    MpiPending p;
    p.reqs.emplace_back();
    MPI_CHECK(MPI_Ibarrier(comm_, &p.reqs.back()));
    wait(p, what);
  }

  std::unique_ptr<Pending> start_allreduce_sum(const Tensor& range) override {
    SD_CHECK(range.dtype() == DType::F32, "all-reduce of ", range.desc(), ": f32 only");
    if (range.device() == Device::CUDA) {
#ifdef SIMDIFF_WITH_NCCL
      if (!nccl_) nccl_ = make_nccl(*this);  // at the first bucket, at one point on every rank
      return nccl_->start(range);
#else
      fail("all-reduce of ", range.desc(), ": this build has no NCCL");
#endif
    }
    auto p = std::make_unique<MpiPending>();
    float* d = range.data<float>();
    for (int64_t off = 0, n = range.numel(); off < n; off += kPiece) {
      p->reqs.emplace_back();
      MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, d + off, int(std::min(kPiece, n - off)), MPI_FLOAT,
                               MPI_SUM, comm_, &p->reqs.back()));
    }
    return p;
  }

  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "simdiff: error: rank %d: %s\n", rank_, message.c_str());
    std::fflush(stderr);
#ifdef SIMDIFF_WITH_NCCL
    if (nccl_) nccl_->abort();
#endif
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);  // MPI_Abort does not return; in case it does
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
#ifdef SIMDIFF_WITH_NCCL
  std::unique_ptr<NcclReduce> nccl_;
#endif
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm() { return std::make_unique<MpiComm>(); }

}  // namespace sd::dist
