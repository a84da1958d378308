#include "kernels/cuda/common.cuh"
namespace sd {
void register_random_cuda(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
