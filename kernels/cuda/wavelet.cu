#include "kernels/cuda/common.cuh"
namespace sd {
void register_wavelet_cuda(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
