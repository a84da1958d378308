// PNG output for samples and dataset previews, and image decoding for the folder dataset.
// All stb_image / stb_image_write code lives in image_io.cpp with internal linkage, so nothing
// else in the program (or Debian's libstb) can clash with it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace sd {

// One C x H x W image, planar floats in [-1, 1] (values outside are clamped, NaN is written
// black). C is 1 (grey), 3 (RGB) or 4 (RGBA). Written atomically (a device such as /dev/stdout
// in place); a write error (a full disk) throws naming the path.
void write_png(const std::string& path, const float* chw, int C, int H, int W);

// images: [N, C, H, W] float (any float dtype, any device), values in [-1, 1]. Tiles them
// row-major into a grid with `ncols` columns (<= 0: a near-square grid), `pad` grey pixels
// around and between tiles.
void write_grid_png(const std::string& path, const Tensor& images, int ncols, int pad = 2);

// A decoded 8-bit image, pixels interleaved (HWC).
struct Image8 {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

// Decodes PNG, JPEG or BMP. channels = 0 keeps the file's channel count; 1..4 converts
// (RGB -> grey by luma, grey -> RGB by replication, alpha dropped or set opaque; ask for 2 or 4
// to keep alpha, which then includes a PNG's transparent colour key).
Image8 read_image(const std::string& path, int channels = 0);

// The channel count the file stores, read from its header without decoding the pixels (throws
// naming the file when it is not a readable PNG, JPEG or BMP). 2 (grey + alpha) and 4 (RGBA, or
// a palette with transparent entries) mean the image has an alpha channel.
int image_file_channels(const std::string& path);

}  // namespace sd
