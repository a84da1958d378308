// Element types. f64 exists for the CPU reference and the double-precision gradient check;
// bf16 is the storage type of mixed-precision activations on both backends (computed in f32 unless
// a backend has a native bf16 kernel; the rules are in kernels/registry.h); i32 holds labels.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "runtime/error.h"

namespace sd {

enum class DType : uint8_t { F32, F64, BF16, I32 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::BF16: return 2;
    case DType::I32: return 4;
  }
  return 0;
}

// Names as safetensors spells them.
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
  }
  return "?";
}

inline DType dtype_from_name(const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "F64") return DType::F64;
  if (s == "BF16") return DType::BF16;
  if (s == "I32") return DType::I32;
  fail("unsupported dtype '", s, "' (expected one of F32, F64, BF16, I32)");
}

inline bool is_float(DType t) { return t != DType::I32; }

// Lowercase names, as configs and op attributes spell them ("f32", "bf16").
inline std::string dtype_lower(DType t) {
  std::string s = dtype_name(t);
  for (char& c : s) c = char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return s;
}

// bf16 <-> f32 on the host, round to nearest even (NaN kept quiet).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace sd
