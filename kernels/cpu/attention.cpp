#include "kernels/cpu/common.h"
namespace sd {
void register_attention_ops(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
