// The CUDA backend's float-atomics switch. By default every reduction into a shared result is
// deterministic (per-block partials, then a fixed-order second pass: kernels/cuda/reduce.cuh),
// so gradients are bit-identical from run to run on the same GPU model. SIMDIFF_CUDA_ATOMICS=1
// in the environment, or set_cuda_float_atomics(true), makes the kernels that used to reduce
// with float atomics (the broadcast operand of add/mul, embedding, layer_norm, layer_norm_mod,
// scale_shift nlc) use them again: not reproducible, kept to compare speed on a GPU and to show
// that the determinism tests catch them. Defined in runtime/cuda_runtime.cu.
#pragma once

namespace sd {

bool cuda_float_atomics();
void set_cuda_float_atomics(bool on);

}  // namespace sd
