#include "kernels/cpu/common.h"
namespace sd {
void register_embed_ops(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
