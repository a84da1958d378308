// The one-level Haar transform is orthonormal and its 4x4 matrix is symmetric, so the adjoint of
// the DWT is the IDWT and vice versa: each op's backward runs the other direction's forward.
// Shared by the CPU and CUDA backends, which differ only in `haar`.
#pragma once
#include "kernels/registry.h"

namespace sd {

// haar(op, forward, src, dst): dwt when forward ([B,C,H,W] -> [B,4C,H/2,W/2]), else idwt.
template <class Haar>
Backend haar_backend(const char* op, bool forward, Haar haar) {
  return {[=](OpCall& c) { haar(op, forward, c.in[0], c.out[0]); },
          [=](GradCall& c) {
            if (!c.grad_in[0].defined()) return;
            if (!c.grad_out[0].defined())
              c.grad_in[0].zero_();
            else
              haar(op, !forward, c.grad_out[0], c.grad_in[0]);
          }};
}

}  // namespace sd
