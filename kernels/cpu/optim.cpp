#include "kernels/cpu/common.h"
namespace sd {
void register_optim_ops(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
