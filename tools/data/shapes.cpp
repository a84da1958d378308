#include "tools/data/shapes.h"

#include <algorithm>
#include <cmath>

#include "tools/data/hash.h"
#include "tools/data/pixels.h"

namespace sd {
namespace {

constexpr int kKinds = int(ShapeKind::Count);
// Rotation stays within +-11.5 degrees so a square never looks like a diamond.
constexpr float kMaxTilt = 0.2f;
// Minimum luma gap between the shape and the background at its centre, so the shape reads in
// greyscale too.
constexpr float kMinLumaGap = 0.3f;

struct Rgb {
  float r, g, b;
};

Rgb lerp(const Rgb& a, const Rgb& b, float t) {
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}
float luma(const Rgb& c) { return sd::luma(c.r, c.g, c.b); }
// Each channel uniform in [lo, hi).
Rgb random_rgb(CounterRng& rng, float lo, float hi) {
  return {rng.uniform(lo, hi), rng.uniform(lo, hi), rng.uniform(lo, hi)};  // braced init: in order
}

// Signed distance functions (negative inside), after Inigo Quilez's 2D distance catalogue.
float sd_box(float px, float py, float bx, float by) {
  float qx = std::abs(px) - bx, qy = std::abs(py) - by;
  float ox = std::max(qx, 0.0f), oy = std::max(qy, 0.0f);
  return std::sqrt(ox * ox + oy * oy) + std::min(std::max(qx, qy), 0.0f);
}

// Equilateral triangle, centroid at the origin, apex towards +y, half side length `h`.
float sd_triangle(float px, float py, float h) {
  const float k = std::sqrt(3.0f);
  px = std::abs(px) - h;
  py = py + h / k;
  if (px + k * py > 0) {
    float nx = (px - k * py) / 2, ny = (-k * px - py) / 2;
    px = nx;
    py = ny;
  }
  px -= std::clamp(px, -2 * h, 0.0f);
  return -std::sqrt(px * px + py * py) * (py > 0 ? 1.0f : -1.0f);
}

// Rhombus with half diagonals bx (horizontal) and by (vertical).
float sd_rhombus(float px, float py, float bx, float by) {
  px = std::abs(px);
  py = std::abs(py);
  float h =
      std::clamp(((bx - 2 * px) * bx - (by - 2 * py) * by) / (bx * bx + by * by), -1.0f, 1.0f);
  float dx = px - 0.5f * bx * (1 - h), dy = py - 0.5f * by * (1 + h);
  float side = px * by + py * bx - bx * by;
  return std::sqrt(dx * dx + dy * dy) * (side > 0 ? 1.0f : -1.0f);
}

// Distance to a shape of extent ~r around the origin; y points up.
float shape_distance(ShapeKind kind, float x, float y, float r) {
  switch (kind) {
    case ShapeKind::Circle:
      return std::sqrt(x * x + y * y) - 0.9f * r;
    case ShapeKind::Square:
      return sd_box(x, y, 0.75f * r, 0.75f * r);
    case ShapeKind::Triangle:
      return sd_triangle(x, y, 0.91f * r);  // circumradius 1.05 r
    case ShapeKind::Cross:
      return std::min(sd_box(x, y, 0.95f * r, 0.3f * r), sd_box(x, y, 0.3f * r, 0.95f * r));
    case ShapeKind::Ring:
      return std::abs(std::sqrt(x * x + y * y) - 0.7f * r) - 0.25f * r;
    case ShapeKind::Diamond:
      return sd_rhombus(x, y, 0.7f * r, r);
    case ShapeKind::Count:
      break;
  }
  fail("render_shape: invalid shape kind ", int(kind));
}

}  // namespace

const char* shape_name(ShapeKind k) {
  static const char* names[kKinds] = {"circle", "square", "triangle", "cross", "ring", "diamond"};
  SD_CHECK(int(k) >= 0 && int(k) < kKinds, "shape_name: invalid shape kind ", int(k));
  return names[int(k)];
}

ShapeKind render_shape(uint64_t seed, int64_t index, int res, int channels, float* out) {
  SD_CHECK(res > 0 && (channels == 1 || channels == 3),
           "render_shape: expected res > 0 and 1 or 3 channels, got res ", res, ", channels ",
           channels);
  // Classes cycle with the index so every class has the same count (+-1) in any prefix.
  ShapeKind kind = ShapeKind(index % kKinds);
  CounterRng rng(hash_key(seed, uint64_t(index)));

  // Geometry in unit image coordinates [0, 1]^2.
  float r = rng.uniform(0.24f, 0.36f);
  float margin = 1.1f * r;  // the tilted square's corners reach 1.06 r
  float cx = rng.uniform(margin, 1 - margin), cy = rng.uniform(margin, 1 - margin);
  float tilt = rng.uniform(-kMaxTilt, kMaxTilt);
  float cs = std::cos(tilt), sn = std::sin(tilt);

  // Background: a dark colour, solid or a gentle linear gradient in a random direction. Shapes
  // are light colours on dark grounds: with the polarity fixed, which pixels belong to the shape
  // is clear early in denoising, and the demo model learns the shape classes in minutes on a CPU
  // (with arbitrary colours on arbitrary grounds it still drew blobs after 2500 steps).
  Rgb bg0 = random_rgb(rng, 0.0f, 0.45f), bg1 = bg0;
  float gdx = 0, gdy = 0;
  if (rng.uniform() < 0.5f) {
    float dr = rng.uniform(-0.15f, 0.15f), dg = rng.uniform(-0.15f, 0.15f),
          db = rng.uniform(-0.15f, 0.15f);
    bg1 = {std::clamp(bg0.r + dr, 0.0f, 0.5f), std::clamp(bg0.g + dg, 0.0f, 0.5f),
           std::clamp(bg0.b + db, 0.0f, 0.5f)};
    float angle = rng.uniform(0.0f, 6.2831853f);
    gdx = std::cos(angle);
    gdy = std::sin(angle);
  }
  auto background = [&](float u, float v) {
    float t = std::clamp((u - 0.5f) * gdx + (v - 0.5f) * gdy + 0.5f, 0.0f, 1.0f);
    return lerp(bg0, bg1, t);
  };

  float bg_luma = luma(background(cx, cy));
  Rgb fg{1, 1, 1};  // fallback if no draw contrasts enough
  for (int attempt = 0; attempt < 16; ++attempt) {
    Rgb c = random_rgb(rng, 0.45f, 1.0f);
    if (std::abs(luma(c) - bg_luma) >= kMinLumaGap) {
      fg = c;
      break;
    }
  }

  size_t plane = size_t(res) * res;
  for (int y = 0; y < res; ++y)
    for (int x = 0; x < res; ++x) {
      float u = (x + 0.5f) / res, v = (y + 0.5f) / res;
      // Into the shape's frame: centre, undo the tilt, flip y so "up" is up in the image.
      float dx = u - cx, dy = v - cy;
      float lx = cs * dx + sn * dy, ly = -(-sn * dx + cs * dy);
      // Antialiasing: coverage of a one-pixel-wide ramp across the edge.
      float d = shape_distance(kind, lx, ly, r);
      float cover = std::clamp(0.5f - d * res, 0.0f, 1.0f);
      Rgb c = lerp(background(u, v), fg, cover);
      size_t i = size_t(y) * res + x;
      if (channels == 3) {
        out[i] = 2 * c.r - 1;
        out[plane + i] = 2 * c.g - 1;
        out[2 * plane + i] = 2 * c.b - 1;
      } else {
        out[i] = 2 * luma(c) - 1;
      }
    }
  return kind;
}

ShapesDataset::ShapesDataset(int64_t count, int resolution, int channels, uint64_t seed)
    : count_(count), res_(resolution), channels_(channels), seed_(seed) {
  SD_CHECK(count > 0, "shapes: image count must be positive, got ", count);
  SD_CHECK(resolution > 0, "shapes: resolution must be positive, got ", resolution);
  SD_CHECK(channels == 1 || channels == 3, "shapes: channels must be 1 or 3, got ", channels);
}

std::vector<std::string> ShapesDataset::class_names() const {
  std::vector<std::string> names;
  for (int k = 0; k < kKinds; ++k) names.push_back(shape_name(ShapeKind(k)));
  return names;
}

void ShapesDataset::get_unchecked(int64_t index, float* out, int32_t* label) const {
  *label = int32_t(render_shape(seed_, index, res_, channels_, out));
}

}  // namespace sd
