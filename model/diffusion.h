// The diffusion process around the U-ViT: the logSNR schedule, the training loss (v-prediction,
// eps-space, multiscale, optional SiD2 sigmoid weighting) and the samplers (ancestral DDPM and
// DDIM with classifier-free guidance). The elementwise math runs as registry ops
// (logsnr_schedule, alpha_sigma, noising, sampler_step) on the model's device.
#pragma once
#include <functional>

#include "model/uvit.h"

namespace sd {

// Philox offsets: every random draw of a training run is addressed by (seed, offset), so a
// resumed run redraws exactly what the uninterrupted run drew. Micro-step m (step * accum + micro)
// owns offsets [m << 12, (m + 1) << 12).
struct StepStreams {
  uint64_t base;
  explicit StepStreams(uint64_t micro_step) : base(micro_step << 12) {}
  uint64_t t() const { return base + 0; }
  uint64_t eps() const { return base + 1; }
  uint64_t labels() const { return base + 2; }
  uint64_t dropout() const { return base + 16; }  // the model's masks take base+16, +17, ...
};

class Schedule {
 public:
  Schedule(const DiffusionConfig& d, int resolution);
  // t [B] f32 in [0, 1] on any device -> logsnr [B] on the same device.
  Tensor logsnr(const Tensor& t) const;
  double logsnr(double t) const;

 private:
  Attrs attrs_;
};

// The rows of the global batch that one data-parallel rank holds (tools/dist/): row j of its x
// is example first + j of a global batch of `total`. Every draw for example b (t, label dropout,
// eps, dropout masks) depends only on b, so N ranks together draw exactly what one process draws.
struct BatchRows {
  int64_t first = 0;
  int64_t total = 0;  // 0: the whole batch is here (one process)
};

struct LossResult {
  Variable loss;        // scalar, differentiable
  Tensor per_sample;    // [B] on the host, for logging
  // What the step drew, for `simdiff trace` and outside comparisons.
  Tensor z, v_target, logsnr, labels, weights;
};

// One training loss evaluation on a batch already on the model's device. Labels are dropped to
// the "no class" entry with probability `label_dropout` (classifier-free guidance).
LossResult diffusion_loss(const UViT& model, const DiffusionConfig& d, const Tensor& x,
                          const Tensor& labels, double label_dropout, uint64_t seed,
                          const StepStreams& streams, ForwardCtx& ctx, const BatchRows& rows = {});

// v_hat = f(z, logsnr [B]) for the sampler; guidance is folded in by make_denoiser.
using Denoiser = std::function<Tensor(const Tensor& z, const Tensor& logsnr)>;

// Wraps the model: with guidance w != 1 (inside the logSNR interval) evaluates the conditional
// and unconditional predictions in one batch and returns v_u + w (v_c - v_u).
Denoiser make_denoiser(const UViT& model, const Tensor& labels, const SampleConfig& s);

struct SampleProgress {
  std::function<void(int step, int total)> on_step;
};

// Draws z_1 ~ N(0, I) from (seed, 0) and runs `s.steps` reverse steps with noise from
// (seed, step); returns x_hat of the last step. Deterministic for a seed. The images are rows
// first_row.. of a larger grid (a rank's share): each image draws its own noise, whatever the
// number of ranks.
Tensor sample(const Denoiser& f, const Schedule& sched, const Shape& shape, Device device,
              const SampleConfig& s, uint64_t seed, const SampleProgress& progress = {},
              int64_t first_row = 0);

}  // namespace sd
