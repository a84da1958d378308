// The op families. Each family F provides `void register_F_ops(Registry&)` (OpDefs + CPU kernels,
// kernels/cpu/F.cpp) and, in CUDA builds, `void register_F_cuda(Registry&)` (kernels/cuda/F.cu;
// cast's, device-independent, in kernels/cpu/cast.cpp), which fills in the CUDA backend of the
// same ops. Registry::get() calls them in this order.
#pragma once

#define SD_OP_FAMILIES(X) \
  X(elementwise)          \
  X(linalg)               \
  X(conv)                 \
  X(wavelet)              \
  X(norm)                 \
  X(attention)            \
  X(shape)                \
  X(cast)                 \
  X(embed)                \
  X(reduce)               \
  X(random)               \
  X(diffusion)            \
  X(optim)                \
  X(fused)
