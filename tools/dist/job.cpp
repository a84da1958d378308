// The job: how simdiff's commands start on every rank (comm.h, run()). Apart from the rest of
// tools/dist/ so that only programs that start jobs (simdiff, the tests) reference MPI: a program
// that uses world() alone (the benchmarks) gets the one-process Comm and links no MPI code.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <thread>

#include "tools/dist/comm.h"
#ifdef SIMDIFF_WITH_MPI
#include "tools/dist/mpi_comm.h"
#endif

namespace sd::dist {

namespace {

// The number of processes an MPI launcher said it started: Open MPI's mpirun, and MPICH-style
// (Hydra, Slurm's PMI) launchers; PMIx-only launchers give no size (-1). 0: not launched by one.
int launched_size() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* s = std::getenv(v)) return std::atoi(s);
  return std::getenv("PMIX_RANK") ? -1 : 0;
}

}  // namespace

int run(const std::function<int()>& body) {
  int launched = launched_size();
  if (launched == 0) return body();
#ifndef SIMDIFF_WITH_MPI
  if (launched == 1) return body();
  fail("simdiff was started by an MPI launcher as one of several processes, but built without "
       "MPI (SIMDIFF_MPI=OFF, or libopenmpi-dev was missing): each process would work alone. "
       "Rebuild with MPI, or run simdiff without mpirun");
#else
  std::unique_ptr<Comm> comm = make_mpi_comm();
  set_world(comm.get());
  // Threads per rank: OMP_NUM_THREADS when set, else this machine's cores shared by its ranks.
  if (comm->size() > 1 && !std::getenv("OMP_NUM_THREADS"))
    omp_set_num_threads(std::max(1, int(std::thread::hardware_concurrency()) / comm->local_size()));
  // Fault injection (runtime/fault.h) on one rank: SIMDIFF_FAULT_RANK=R clears the faults of
  // the other ranks.
  if (const char* r = std::getenv("SIMDIFF_FAULT_RANK"); r && std::atoi(r) != comm->rank())
    for (const char* v : {"SIMDIFF_FAULT_KILL_AT", "SIMDIFF_FAULT_TERM_AT", "SIMDIFF_FAULT_NAN_AT",
                          "SIMDIFF_FAULT_STOP_AT"})
      unsetenv(v);
  auto finish = [&] {
    set_world(nullptr);
    comm.reset();  // MPI_Finalize
  };
  int status = 1;
  try {
    status = body();
  } catch (const Agreed& e) {
    if (comm->root()) std::fprintf(stderr, "simdiff: error: %s\n", e.what());
    status = e.status;
  } catch (...) {
    if (comm->size() == 1) {
      finish();
      throw;
    }
    comm->abort(describe(std::current_exception()).first);
  }
  std::fflush(stdout);
  std::cout.flush();
  comm->barrier("finishing");
  finish();
  return status;
#endif
}

}  // namespace sd::dist
