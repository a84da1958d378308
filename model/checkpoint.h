// Checkpoints: one safetensors file with the weights, the EMA weights, the AdamW moments, the
// step and the RNG position, and the config JSON in the metadata, so the Python safetensors /
// PyTorch tools can open it. Written atomically (temp file + rename) by save_safetensors.
#pragma once
#include <string>

#include "model/config.h"
#include "model/params.h"

namespace sd {

// Everything a run needs to continue exactly. Tensors are arenas with the ParamStore's layout.
struct TrainState {
  Tensor ema, adam_m, adam_v;
  int64_t step = 0;  // optimizer steps completed
  // All randomness is Philox addressed by (seed, step): the seed and the step are the RNG state.
  uint64_t seed = 0;
};

// Keys: "params.<name>", "ema.<name>", "adam_m.<name>", "adam_v.<name>". Refuses (leaving the
// file on disk as it was) when any value of the state is not finite: a diverged run must not
// replace its last good checkpoint.
void save_checkpoint(const std::string& path, const Config& cfg, const ParamStore& ps,
                     const TrainState& st);

// Empty when every value of the weights, EMA and AdamW moments is finite; else names the first
// tensor that is not ("'ema.embed.w'").
std::string non_finite_state(const ParamStore& ps, const TrainState& st);

struct LoadedCheckpoint {
  Config config;
  int64_t step = 0;
  uint64_t seed = 0;
  std::map<std::string, Tensor> tensors;  // host tensors, keys as saved
};

// Reads and validates the file (format, config, step and seed). Building the model and copying
// the weights in is done by load_weights / load_train_state, which refuse, by tensor name, a
// missing tensor, a mismatched shape, a dtype other than F32 and a value that is not finite.
LoadedCheckpoint read_checkpoint(const std::string& path);
// prefix "params." or "ema."
void load_weights(const LoadedCheckpoint& ck, const ParamStore& ps, const std::string& prefix,
                  const std::string& path);
void load_train_state(const LoadedCheckpoint& ck, ParamStore& ps, TrainState& st,
                      const std::string& path);

}  // namespace sd
