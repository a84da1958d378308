// The fast path of conv2d for the model's 3x3 convolutions (stride 1, padding 1): Winograd
// F(4x4, 3x3) over channels-last tiles (kernels/cpu/conv_winograd.cpp). conv.cpp calls it when
// the shape applies and keeps im2col + GEMM as the reference for everything else and for tests.
#pragma once
#include <cstdint>

namespace sd::cpu {

// True when 3x3 stride-1 padding-1 convolutions run the im2col + GEMM reference instead of
// Winograd: set from SIMDIFF_CONV3X3=reference at start-up (a user's fallback), and by tests.
bool conv3x3_reference();
void set_conv3x3_reference(bool on);

struct Conv3x3Dims {
  int64_t B, C, H, W, O;  // x [B, C, H, W], w [O, C, 3, 3], y [B, O, H, W]
};

// y = conv(x, w) + bias (bias may be null); NCHW in and out, every element of y written.
template <class T>
void winograd_forward(const T* x, const T* w, const T* bias, T* y, const Conv3x3Dims& d);

// dx (may be null) and dw (may be null) of y = conv(x, w) for the output gradient g; both
// overwritten. The bias gradient is conv.cpp's (a plain sum of g).
template <class T>
void winograd_backward(const T* x, const T* w, const T* g, T* dx, T* dw, const Conv3x3Dims& d);

}  // namespace sd::cpu
