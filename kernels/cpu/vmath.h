// Elementary functions the CPU kernels call per element, written so the loops around them
// vectorise (no calls, no branches): libm's scalar expf/erff were ~6% of a training step (perf).
// double keeps libm: it serves the gradient check, where accuracy is the point.
#pragma once
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace sd::cpu {

// exp(x): Cephes expf (x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial for e^r, 2^n from the
// exponent bits), within 2 ulp of std::exp on [-87, 88]; x is clamped to that range first, so
// exp(-inf) and exp(-1e9) give ~1e-38 (not 0) and exp(+big) ~1.6e38 (not inf): harmless in the
// sigmoids and Gaussians that use it, and NaN-free.
template <class T>
inline T vexp(T x) {
  return std::exp(x);
}
// e^x for x already clamped to [-88, 88.3], the part every clamp shares (vexp below, attention's
// exp_nonpos).
inline float exp_clamped(float x) {
  float t = x * 1.44269504088896341f + 12582912.f;  // 1.5 * 2^23: rounds x log2(e) to an integer
  float n = t - 12582912.f;
  int32_t e = std::bit_cast<int32_t>(t) - 0x4B400000;  // that integer
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;  // r = x - n ln2 in two steps (ln2 = hi + lo)
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  return p * std::bit_cast<float>((e + 127) << 23);  // e >= -127: 2^-127 encodes as 0
}
template <>
inline float vexp(float x) {
  return exp_clamped(std::min(std::max(x, -87.3f), 88.3f));
}

// 1 / (1 + exp(-x)).
template <class T>
inline T vsigmoid(T x) {
  return T(1) / (T(1) + vexp(-x));
}

// erf(x): float by the rational approximation of Eigen's generic_fast_erf_float (x clamped to
// [-4, 4], where erf is 1 to float precision; odd polynomial over even polynomial), within a few
// ulp; double keeps std::erf.
template <class T>
inline T verf(T x) {
  return std::erf(x);
}
template <>
inline float verf(float x) {
  x = std::min(std::max(x, -4.f), 4.f);
  float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 + -2.10102402082508e-06f;
  p = p * x2 + -5.69250639462346e-05f;
  p = p * x2 + -7.34990630326855e-04f;
  p = p * x2 + -2.95459980854025e-03f;
  p = p * x2 + -1.60960333262415e-02f;
  p = p * x;
  float q = -1.45660718464996e-05f;
  q = q * x2 + -2.13374055278905e-04f;
  q = q * x2 + -1.68282697438203e-03f;
  q = q * x2 + -7.37332916720468e-03f;
  q = q * x2 + -1.42647390514189e-02f;
  return p / q;
}

}  // namespace sd::cpu
