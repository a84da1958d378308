#include "tools/data/pixels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/error.h"

namespace sd {
namespace {

// For each output sample, the source taps (index, weight) along one axis.
struct Tap {
  int index;
  float weight;
};
using Taps = std::vector<std::vector<Tap>>;

Taps resample_taps(int in, int out) {
  Taps taps(out);
  if (in == out) {
    for (int o = 0; o < out; ++o) taps[o] = {{o, 1.0f}};
  } else if (in > out) {
    // Area: output o covers source interval [o, o+1) * scale; weight each source pixel by
    // how much of it falls inside.
    double scale = double(in) / out;
    for (int o = 0; o < out; ++o) {
      double lo = o * scale, hi = (o + 1) * scale;
      for (int i = int(lo); i < in && i < hi; ++i) {
        double overlap = std::min(hi, i + 1.0) - std::max(lo, double(i));
        if (overlap > 0) taps[o].push_back({i, float(overlap / scale)});
      }
    }
  } else {
    // Bilinear with pixel centres aligned (half-pixel convention), edges clamped.
    for (int o = 0; o < out; ++o) {
      double src = std::clamp((o + 0.5) * in / out - 0.5, 0.0, in - 1.0);
      int i0 = int(src);
      float t = float(src - i0);
      taps[o] = {{i0, 1.0f - t}, {std::min(i0 + 1, in - 1), t}};
    }
  }
  return taps;
}

}  // namespace

void convert_channels(const float* src, int src_c, int pixels, int out_c, float* dst) {
  SD_CHECK((src_c == 1 || src_c == 3) && (out_c == 1 || out_c == 3),
           "convert_channels: expected 1 or 3 channels, got ", src_c, " -> ", out_c);
  if (src_c == out_c) {
    std::memcpy(dst, src, sizeof(float) * size_t(pixels) * src_c);
  } else if (src_c == 1) {
    for (int c = 0; c < 3; ++c) std::memcpy(dst + size_t(c) * pixels, src, sizeof(float) * pixels);
  } else {
    for (int i = 0; i < pixels; ++i) dst[i] = luma(src[i], src[pixels + i], src[2 * pixels + i]);
  }
}

void u8_to_model(const uint8_t* src, int src_c, int height, int width, int res, int out_c,
                 float* dst) {
  SD_CHECK(height > 0 && width > 0 && res > 0, "u8_to_model: bad size ", height, "x", width, " -> ",
           res);
  int side = std::min(height, width);
  int y0 = (height - side) / 2, x0 = (width - side) / 2;
  Taps taps = resample_taps(side, res);

  size_t plane = size_t(res) * res;
  std::vector<float> rows(size_t(side) * res);  // horizontal pass: side rows x res columns
  std::vector<float> resized(plane * src_c);
  for (int c = 0; c < src_c; ++c) {
    const uint8_t* p = src + size_t(c) * height * width;
    for (int y = 0; y < side; ++y) {
      const uint8_t* row = p + size_t(y0 + y) * width + x0;
      for (int x = 0; x < res; ++x) {
        float acc = 0;
        for (const Tap& t : taps[x]) acc += t.weight * row[t.index];
        rows[size_t(y) * res + x] = acc;
      }
    }
    float* out = resized.data() + c * plane;
    for (int y = 0; y < res; ++y)
      for (int x = 0; x < res; ++x) {
        float acc = 0;
        for (const Tap& t : taps[y]) acc += t.weight * rows[size_t(t.index) * res + x];
        // The filters are convex, so only rounding can leave [-1, 1]; clamp it away.
        out[size_t(y) * res + x] = std::clamp(acc * (2.0f / 255.0f) - 1.0f, -1.0f, 1.0f);
      }
  }
  convert_channels(resized.data(), src_c, int(plane), out_c, dst);
}

}  // namespace sd
