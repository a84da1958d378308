// Turning stored 8-bit images into model input: centre-crop to a square, resample to the model
// resolution, convert channels, map [0, 255] to [-1, 1]. Shared by every file-backed dataset
// so they all agree on filtering and channel conventions.
#pragma once
#include <cstdint>

namespace sd {

// src: planar CHW bytes, src_c in {1, 3}, any width x height. dst: out_c x res x res floats,
// out_c in {1, 3}. The longer side is cropped symmetrically; shrinking averages the covered
// source area (no aliasing), enlarging is bilinear.
void u8_to_model(const uint8_t* src, int src_c, int height, int width, int res, int out_c,
                 float* dst);

// Rec.601 luma, the weighting PIL and stb_image use for RGB -> grey.
inline float luma(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }

// Converts a planar float image between 1 and 3 channels: grey -> RGB replicates, RGB -> grey
// takes the luma, equal counts copy. src and dst must not overlap.
void convert_channels(const float* src, int src_c, int pixels, int out_c, float* dst);

}  // namespace sd
