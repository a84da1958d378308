// The built-in procedural dataset: one light-coloured shape per image on a dark, solid or softly
// graded background; the class is the shape. It needs no files, renders at any resolution, and image i
// is a pure function of (seed, i), so every run and every resume sees the same data.
#pragma once
#include <cstdint>

#include "tools/data/dataset.h"

namespace sd {

enum class ShapeKind : int32_t { Circle, Square, Triangle, Cross, Ring, Diamond, Count };

const char* shape_name(ShapeKind k);

// Renders image `index` into out (channels x res x res, [-1, 1]); returns its class.
// channels is 3 (RGB) or 1 (luma of the RGB rendering; shape and background colours are chosen
// with a luma gap so the shape stays visible in grey).
ShapeKind render_shape(uint64_t seed, int64_t index, int res, int channels, float* out);

class ShapesDataset : public Dataset {
 public:
  static constexpr int64_t kDefaultCount = 50000;

  ShapesDataset(int64_t count, int resolution, int channels = 3, uint64_t seed = 0);

  int64_t size() const override { return count_; }
  int channels() const override { return channels_; }
  int resolution() const override { return res_; }
  std::vector<std::string> class_names() const override;

 protected:
  void get_unchecked(int64_t index, float* out, int32_t* label) const override;

 private:
  int64_t count_;
  int res_, channels_;
  uint64_t seed_;
};

}  // namespace sd
