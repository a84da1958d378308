#include "kernels/cpu/common.h"
namespace sd {
void register_diffusion_ops(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
