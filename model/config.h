// The JSON configuration of a run: model shape, diffusion (schedule, loss), training and default
// sampling settings. Parsing is strict: an unknown or duplicated key, a wrong type, a number
// outside its field (an integer that does not fit, a real outside the 32-bit float range) or an
// impossible shape is an error naming the key (as "model.heads") and the value. The same JSON is
// stored in checkpoints.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/device.h"
#include "runtime/dtype.h"

namespace sd {

struct ModelConfig {
  int resolution = 32;          // image side in pixels
  int channels = 3;             // image channels
  int num_classes = 0;          // 0: unconditional; else labels 0..n-1 plus a "no class" entry
  std::string downsample = "dwt";  // "dwt" (Haar, `dwt_levels` times) or "patch"
  int dwt_levels = 1;
  int patch_size = 2;
  int base_channels = 64;
  std::vector<int> channel_mult = {1, 2};  // one conv level per entry, 2x pooling between
  int res_blocks = 2;                      // ResBlocks per level on the way down
  int groups = 8;                          // group norm groups
  int transformer_depth = 2;               // blocks at the lowest resolution
  int transformer_width = 0;               // 0: the channels of the lowest level
  int heads = 4;
  int mlp_ratio = 4;
  int cond_dim = 256;                      // width of the conditioning vector
  double dropout = 0.0;
  int dropout_max_resolution = 16;         // dropout only at and below this feature resolution

  int input_resolution() const;  // after the immediate downsampling (DWT or patching)
  int input_channels() const;
  int lowest_resolution() const;
  int lowest_channels() const { return base_channels * channel_mult.back(); }
  int width() const { return transformer_width ? transformer_width : lowest_channels(); }
};

struct DiffusionConfig {
  std::string schedule = "shifted";  // "cosine", "shifted", "interpolated"
  double noise_d = 64;               // base resolution of the shift
  double logsnr_min = -15, logsnr_max = 15;
  int interp_low = 32;               // interpolated schedule: the low resolution end
  // Multiscale loss: average-pool eps to each resolution, weight, sum. Empty means the
  // single-scale loss at full resolution.
  std::vector<int> loss_resolutions;
  std::vector<double> loss_weights;  // default 1/s for each s (paper), when left empty
  std::string weighting = "eps";     // "eps" (v-prediction, eps-space loss) or "sigmoid" (SiD2)
  double sigmoid_bias = 2.0;
  bool stratified_t = true;          // low-discrepancy t over the batch
};

struct TrainConfig {
  std::string data = "shapes";
  int batch_size = 32;
  int64_t steps = 2000;
  double lr = 3e-4;
  int64_t warmup = 100;
  std::string decay = "constant";  // "constant" or "cosine"
  double min_lr_ratio = 0.1;       // cosine floor as a fraction of lr
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.99, adam_eps = 1e-8;
  double grad_clip = 1.0;          // global norm; 0 disables
  double ema_decay = 0.999;
  double label_dropout = 0.1;      // classifier-free guidance training
  int grad_accum = 1;
  uint64_t seed = 0;
  bool flip = true;
  int log_every = 10;
  int sample_every = 500;
  int ckpt_every = 250;
  // Data-parallel runs (mpirun): every this many steps the ranks compare a checksum of their
  // weights and stop, naming the step, if they differ. 0: never.
  int dist_check_every = 100;
  // "f32", "bf16" (mixed precision: bf16 activations, f32 master weights, optimizer, EMA, loss;
  // model/uvit.h) or "auto": bf16 on CUDA, f32 on the CPU (where bf16 is computed in f32 and
  // only adds conversions: for checking a bf16 run without a GPU). Sampling, tracing and the
  // samples written during training use the same precision on the device they run on.
  std::string precision = "auto";
};

// The activations' dtype of a run on `device`: train.precision with "auto" resolved.
DType compute_dtype(const TrainConfig& t, Device device);

struct SampleConfig {
  int steps = 128;
  std::string sampler = "ddpm";  // "ddpm" or "ddim"
  double guidance = 1.0;          // 1: no guidance
  double guidance_min_logsnr = -100, guidance_max_logsnr = 100;  // SiD2 guidance interval
  bool clip_x = true;
};

// One key whose value differs between two configs ("train.lr", 3e-4, 1e-3).
struct ConfigChange {
  std::string key;
  nlohmann::json from, to;
};

struct Config {
  ModelConfig model;
  DiffusionConfig diffusion;
  TrainConfig train;
  SampleConfig sample;

  nlohmann::json to_json() const;
  // `source` names the file (or "checkpoint metadata") in error messages.
  static Config from_json(const nlohmann::json& j, const std::string& source);
  // Reads a regular file of at most kMaxConfigBytes; refuses duplicate keys and deep nesting.
  static Config load(const std::string& path);
  static constexpr size_t kMaxConfigBytes = 1 << 20;
  // Checks every value (what from_json checks), for a config edited after parsing (command-line
  // overrides); `source` names where the edit came from ("--steps").
  void validate(const std::string& source) const;
  // The keys whose values differ, in to_json's order.
  static std::vector<ConfigChange> changes(const Config& from, const Config& to);
};

}  // namespace sd
