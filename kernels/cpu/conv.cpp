#include "kernels/cpu/common.h"
namespace sd {
void register_conv_ops(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
