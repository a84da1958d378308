// cuBLAS's API takes int sizes, our shapes are int64: every narrowing goes through checked_int, so
// a problem too large for one call is refused with the argument's name and value instead of
// wrapping to a negative or small size. Plain C++ (no CUDA header): the CPU build tests it too.
#pragma once
#include <climits>
#include <cstdint>

#include "runtime/error.h"

namespace sd::cuda {

inline int checked_int(const char* what, const char* name, int64_t v) {
  SD_CHECK(v >= 0 && v <= INT_MAX, what, ": ", name, " = ", v, " does not fit cuBLAS's int argument ",
           "(expected 0..", INT_MAX, ")");
  return int(v);
}

}  // namespace sd::cuda
