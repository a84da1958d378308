#include "kernels/cpu/common.h"
namespace sd {
void register_reduce_ops(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
