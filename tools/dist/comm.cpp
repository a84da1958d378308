#include "tools/dist/comm.h"

#include <chrono>
#include <cstring>
#include <new>
#include <thread>

#include "tools/cli.h"

namespace sd::dist {

namespace {

// Done at once: with one rank there is nothing to exchange.
struct Done : Pending {
  bool test() override { return true; }
};

Comm& one_process() {
  static Comm c;
  return c;
}
Comm* g_world = nullptr;


}  // namespace

std::pair<std::string, int> describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Agreed& x) {
    return {x.what(), x.status};
  } catch (const cli::UsageError& x) {
    return {x.what(), 2};
  } catch (const Error& x) {
    return {x.what(), 1};
  } catch (const std::bad_alloc&) {
    return {"out of memory", 1};
  } catch (const std::exception& x) {
    return {detail::capped(std::string("internal: ") + x.what()), 1};
  } catch (...) {
    return {"internal: an unknown exception", 1};
  }
}

Share share_of(int64_t total, int rank, int size) {
  int64_t first = total * rank / size, next = total * (rank + 1) / size;
  return {first, next - first};
}

// ---- the one-process collectives ----

void Comm::broadcast_bytes(void*, size_t, int, const char*) {}

void Comm::allgather_bytes(const void* mine, size_t bytes, void* all, const char*) {
  if (bytes) std::memcpy(all, mine, bytes);
}

void Comm::gather_bytes(const void* mine, void* all, const std::vector<size_t>& bytes_of,
                        const char*) {
  if (bytes_of[0]) std::memcpy(all, mine, bytes_of[0]);
}

void Comm::allreduce_sum(double*, int, const char*) {}

void Comm::barrier(const char*) {}

std::unique_ptr<Pending> Comm::start_allreduce_sum(const Tensor&) {
  return std::make_unique<Done>();
}

void Comm::abort(const std::string& message) { fail(message); }

// Polls rather than blocks, so that a peer that never answers ends the job instead of hanging
// it. Each test moves the transfer on (on the CPU, MPI progresses only inside its calls), so the
// first 50 ms poll back to back, yielding the core to any other runnable thread (ranks may share
// cores); longer waits (a peer writing a checkpoint) poll every millisecond.
void Comm::wait(Pending& p, const std::string& what) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  while (!p.test()) {
    double waited = std::chrono::duration<double>(clock::now() - start).count();
    if (waited > timeout_s_)
      abort(detail::cat("no answer from the other ranks for ", int(waited), " s while ", what,
                        " (a rank died, hangs, or is at another step; --comm-timeout sets the "
                        "limit): stopping the job"));
    if (waited < 0.05) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// ---- built on the collectives ----

std::string Comm::broadcast(const std::string& s, int from) {
  if (size() == 1) return s;
  uint64_t n = s.size();
  broadcast_bytes(&n, sizeof n, from, "broadcasting a length");
  std::string out = rank() == from ? s : std::string(size_t(n), '\0');
  broadcast_bytes(out.data(), out.size(), from, "broadcasting a message");
  return out;
}

void Comm::broadcast(const Tensor& t) {
  if (size() == 1) return;
  if (t.is_cpu()) return broadcast_bytes(t.raw(), t.nbytes(), 0, "broadcasting the state");
  Tensor host = t.to(Device::CPU);
  broadcast_bytes(host.raw(), host.nbytes(), 0, "broadcasting the state");
  const_cast<Tensor&>(t).copy_from(host);  // a view: writing through it is the point
}

std::vector<uint64_t> Comm::allgather(uint64_t v, const char* what) {
  std::vector<uint64_t> all(static_cast<size_t>(size()));
  allgather_bytes(&v, sizeof v, all.data(), what);
  return all;
}

Tensor Comm::gather_rows(const Tensor& mine, const std::vector<int64_t>& rows_of) {
  SD_CHECK(mine.is_cpu() && mine.dtype() == DType::F32 && mine.ndim() >= 1 &&
               mine.dim(0) == rows_of[size_t(rank())],
           "gather_rows: rank ", rank(), " holds ", mine.desc(), ", expected ",
           rows_of[size_t(rank())], " rows of f32 on the host");
  Shape shape = mine.shape();
  shape[0] = 1;
  const size_t row_bytes = size_t(shape_numel(shape)) * sizeof(float);
  std::vector<size_t> bytes_of;
  int64_t total = 0;
  for (int64_t r : rows_of) {
    bytes_of.push_back(size_t(r) * row_bytes);
    total += r;
  }
  shape[0] = total;
  Tensor all = root() ? Tensor::empty(shape) : Tensor();
  gather_bytes(mine.raw(), root() ? all.raw() : nullptr, bytes_of, "gathering the images");
  return all;
}

void Comm::settle(const std::exception_ptr& error) {
  if (size() == 1) {
    if (error) std::rethrow_exception(error);
    return;
  }
  auto [message, status] = error ? describe(error) : std::pair<std::string, int>{"", 0};
  std::vector<uint64_t> statuses = allgather(uint64_t(status), "agreeing on the checks");
  for (int r = 0; r < size(); ++r) {
    if (statuses[size_t(r)] == 0) continue;
    std::string m = broadcast(message, r);
    throw Agreed(r == 0 ? m : "rank " + std::to_string(r) + ": " + m, int(statuses[size_t(r)]));
  }
}

// ---- the job ----

Comm& world() { return g_world ? *g_world : one_process(); }
void set_world(Comm* c) { g_world = c; }

}  // namespace sd::dist
