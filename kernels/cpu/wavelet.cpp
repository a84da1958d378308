#include "kernels/cpu/common.h"
namespace sd {
void register_wavelet_ops(Registry&) {}  // PLACEHOLDER: being written
}  // namespace sd
