#include "kernels/cpu/common.h"
namespace sd {
void register_linalg_ops(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
