#include "kernels/cuda/common.cuh"
namespace sd {
void register_optim_cuda(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
