#include "tools/image_io.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

// The single translation unit that compiles stb. STATIC gives every stb symbol internal linkage;
// the unused-function warnings that follow from that are stb's, not ours.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

#include "runtime/file_io.h"

namespace sd {
namespace {

constexpr uint8_t kGridPadGrey = 128;  // visible against both black and white samples

uint8_t to_u8(float v) {
  if (!(v == v)) return 0;  // NaN
  return uint8_t(std::lround((std::clamp(v, -1.0f, 1.0f) + 1.0f) * 127.5f));
}

// Encodes in memory, then writes through write_output_file: stb's own file writer ignores
// fwrite and fclose errors, and so reported success for empty files on a full disk.
void write_interleaved(const std::string& path, const uint8_t* hwc, int C, int H, int W) {
  int len = 0;
  unsigned char* png = stbi_write_png_to_mem(hwc, W * C, W, H, C, &len);
  SD_CHECK(png != nullptr, "write_png '", path, "': cannot encode a ", W, "x", H, " image");
  try {
    write_output_file(path, std::string_view(reinterpret_cast<const char*>(png), size_t(len)));
  } catch (...) {
    free(png);
    throw;
  }
  free(png);
}

}  // namespace

void write_png(const std::string& path, const float* chw, int C, int H, int W) {
  SD_CHECK(C >= 1 && C <= 4, "write_png '", path, "': channels must be 1..4, got ", C);
  SD_CHECK(H > 0 && W > 0, "write_png '", path, "': empty image ", H, "x", W);
  size_t plane = size_t(H) * W;
  std::vector<uint8_t> hwc(plane * C);
  for (int c = 0; c < C; ++c)
    for (size_t i = 0; i < plane; ++i) hwc[i * C + c] = to_u8(chw[c * plane + i]);
  write_interleaved(path, hwc.data(), C, H, W);
}

void write_grid_png(const std::string& path, const Tensor& images, int ncols, int pad) {
  SD_CHECK(images.defined() && images.ndim() == 4 && is_float(images.dtype()), "write_grid_png '",
           path, "': expected a float [N, C, H, W] tensor, got ",
           images.defined() ? images.desc() : std::string("undefined"));
  int64_t n = images.dim(0), C = images.dim(1), H = images.dim(2), W = images.dim(3);
  SD_CHECK(n > 0 && C >= 1 && C <= 4, "write_grid_png '", path,
           "': need at least one image with 1..4 channels, got ", images.desc());
  SD_CHECK(pad >= 0, "write_grid_png '", path, "': pad must be >= 0, got ", pad);
  if (ncols <= 0) ncols = int(std::ceil(std::sqrt(double(n))));
  int64_t cols = std::min<int64_t>(ncols, n), rows = (n + cols - 1) / cols;
  int64_t GW = cols * W + (cols + 1) * pad, GH = rows * H + (rows + 1) * pad;

  std::vector<float> v = images.to_floats();
  std::vector<uint8_t> grid(size_t(GH * GW * C), kGridPadGrey);
  for (int64_t k = 0; k < n; ++k) {
    int64_t oy = pad + (k / cols) * (H + pad), ox = pad + (k % cols) * (W + pad);
    const float* img = v.data() + k * C * H * W;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x)
          grid[((oy + y) * GW + ox + x) * C + c] = to_u8(img[(c * H + y) * W + x]);
  }
  write_interleaved(path, grid.data(), int(C), int(GH), int(GW));
}

Image8 read_image(const std::string& path, int channels) {
  SD_CHECK(channels >= 0 && channels <= 4, "read_image '", path, "': channels must be 0..4, got ",
           channels);
  // stb reports the file's channels but, asked for none, returns an RGB PNG with a transparent
  // colour key as 4 channels: ask for the file's count explicitly so the two always agree.
  if (channels == 0) channels = image_file_channels(path);
  Image8 img;
  int file_channels = 0;
  uint8_t* p = stbi_load(path.c_str(), &img.width, &img.height, &file_channels, channels);
  if (!p) fail("read_image: cannot decode '", path, "': ", stbi_failure_reason());
  img.channels = channels;
  img.pixels.assign(p, p + size_t(img.width) * img.height * img.channels);
  stbi_image_free(p);
  return img;
}

int image_file_channels(const std::string& path) {
  int w = 0, h = 0, c = 0;
  if (!stbi_info(path.c_str(), &w, &h, &c))
    fail("read_image: cannot decode '", path, "': ", stbi_failure_reason());
  return c;
}

}  // namespace sd
