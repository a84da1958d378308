// The MPI communicator of a job started by mpirun (built only with MPI; see comm.h).
#pragma once
#include <memory>

#include "tools/dist/comm.h"

namespace sd::dist {

// Calls MPI_Init_thread (funneled: only the main thread calls MPI); the result's destructor
// calls MPI_Finalize unless the job was aborted.
std::unique_ptr<Comm> make_mpi_comm();

}  // namespace sd::dist
