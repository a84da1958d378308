#include "kernels/cpu/common.h"
namespace sd {
void register_shape_ops(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
