#include "kernels/cuda/common.cuh"
namespace sd {
void register_diffusion_cuda(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
