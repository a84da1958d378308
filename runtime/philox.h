// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator. Output block = bijection(counter, key) so element i of a stream is
// computed directly from (seed, offset, i) with no state: the host and the device produce the
// same 32-bit words, any element can be regenerated (dropout's backward), and a resumed run
// continues exactly by restoring one integer offset.
//
// Stream layout used everywhere in simdiff: word i of stream (seed, offset) is lane i % 4 of the
// block with counter (lo(i/4), hi(i/4), lo(offset), hi(offset)) and key (lo(seed), hi(seed)).
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SD_HD __host__ __device__ __forceinline__
#else
#define SD_HD inline
#endif

namespace sd {

struct PhiloxBlock {
  uint32_t v[4];
};

SD_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

SD_HD PhiloxBlock philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  return {{c0, c1, c2, c3}};
}

// The block holding words 4*j .. 4*j+3 of stream (seed, offset).
SD_HD PhiloxBlock philox_block(uint64_t seed, uint64_t offset, uint64_t j) {
  return philox4x32_10(uint32_t(j), uint32_t(j >> 32), uint32_t(offset), uint32_t(offset >> 32),
                       uint32_t(seed), uint32_t(seed >> 32));
}

// 32-bit word -> float uniform in (0, 1): 23 random bits, centred in their bucket, so neither
// 0 nor 1 is ever returned (safe for log in Box-Muller). 23, not 24: with 24 bits the +0.5 is
// not exact near the top and 0xffffffff would round to exactly 1.0f.
SD_HD float philox_u01(uint32_t x) { return (float(x >> 9) + 0.5f) * (1.0f / 8388608.0f); }

// Element i of the uniform stream.
SD_HD float philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  return philox_u01(philox_block(seed, offset, i >> 2).v[i & 3]);
}

// Element i of the standard normal stream: Box-Muller on the pair of words (2k, 2k+1) of its
// block, in double so host and device agree to a few ulp of float.
SD_HD float philox_normal(uint64_t seed, uint64_t offset, uint64_t i) {
  PhiloxBlock b = philox_block(seed, offset, i >> 2);
  int lane = int(i & 3);
  int pair = lane >> 1;
  double u1 = philox_u01(b.v[2 * pair]), u2 = philox_u01(b.v[2 * pair + 1]);
  double r = sqrt(-2.0 * log(u1));
  double a = 6.283185307179586 * u2;
  return float((lane & 1) ? r * sin(a) : r * cos(a));
}

}  // namespace sd
