// Counter-based randomness for the data pipeline. Every random choice is a pure function of
// (key, counter), so image i of a procedural dataset, or the order of epoch e, can be
// recomputed on its own: no generator state has to be saved or replayed to resume a run.
#pragma once
#include <cstdint>

namespace sd {

// splitmix64 finaliser: a bijective 64-bit mixer with full avalanche.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Derives an independent stream key from a parent key and a tag (seed + index, seed + epoch).
inline uint64_t hash_key(uint64_t key, uint64_t tag) { return mix64(mix64(key) ^ tag); }

// Draws from the stream (key, 0), (key, 1), ...
struct CounterRng {
  uint64_t key;
  uint64_t counter = 0;

  explicit CounterRng(uint64_t k) : key(k) {}
  uint64_t next_u64() { return mix64(key ^ mix64(counter++)); }
  // Uniform in [0, 1) with 24 random bits: exact in float.
  float uniform() { return float(next_u64() >> 40) * (1.0f / 16777216.0f); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), by the multiply-shift reduction (bias < n / 2^64).
  uint64_t below(uint64_t n) { return uint64_t((unsigned __int128)next_u64() * n >> 64); }
};

}  // namespace sd
