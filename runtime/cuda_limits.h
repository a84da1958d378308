// Knobs for tests of the CUDA backend: a smaller SM count, grid caps and scratch buffers make the
// grid-stride loops, split reductions and chunked paths of the kernels run at test sizes (the
// parity loop runs once with them, under the emulator and on a GPU). Zero keeps the device's SM
// count and the kernels' own caps.
#pragma once
#include <cstdint>

namespace sd {

struct CudaLimits {
  int sm_count = 0;           // SMs that split grids are sized for
  int64_t max_grid = 0;       // the most blocks of any grid-stride or split grid dimension
  int64_t scratch_bytes = 0;  // the largest scratch buffer (conv2d's column buffer)
};

inline CudaLimits& cuda_limits() {
  static CudaLimits limits;
  return limits;
}

}  // namespace sd
