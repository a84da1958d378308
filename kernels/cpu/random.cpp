#include "kernels/cpu/common.h"
namespace sd {
void register_random_ops(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
