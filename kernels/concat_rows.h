// Concat and split as row copies, shared by the CPU and CUDA kernels: viewed around `axis`, the
// joined tensor is [outer, ra + rb] rows against the parts' [outer, ra] and [outer, rb].
#pragma once
#include "kernels/registry.h"

namespace sd {

struct Rows {
  int64_t outer, ra, rb;
};

inline Rows rows_of(const Shape& joined, int axis, int64_t first) {
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= joined[d];
  for (size_t d = size_t(axis) + 1; d < joined.size(); ++d) inner *= joined[d];
  return {outer, first * inner, (joined[axis] - first) * inner};
}

// The "axis" attribute made non-negative (infer() has validated its range).
inline int axis_attr(const Attrs& attrs, int ndim) {
  int64_t ax = attrs["axis"].get<int64_t>();
  return int(ax < 0 ? ax + ndim : ax);
}

}  // namespace sd
