#include "model/diffusion.h"

#include <algorithm>
#include <cmath>

#include "runtime/philox.h"

namespace sd {

Schedule::Schedule(const DiffusionConfig& d, int resolution) {
  attrs_ = {{"kind", d.schedule},     {"logsnr_min", d.logsnr_min}, {"logsnr_max", d.logsnr_max},
            {"noise_d", d.noise_d},   {"image_d", resolution},      {"low_d", d.interp_low},
            {"high_d", 0}};
}

Tensor Schedule::logsnr(const Tensor& t) const {
  return run_forward("logsnr_schedule", {t}, attrs_)[0];
}

double Schedule::logsnr(double t) const {
  return logsnr(Tensor::from_floats({float(t)}, {1})).item();
}

namespace {

// Per-sample weight of the eps-space loss: alpha^2 turns ||v - v_hat||^2 into
// ||eps - eps_hat||^2 (eps - eps_hat = alpha (v - v_hat)); SiD2 multiplies by sigmoid(b - logsnr).
Tensor loss_weights(const Tensor& logsnr_host, const DiffusionConfig& d) {
  Tensor alpha = run_forward("alpha_sigma", {logsnr_host})[0];
  Tensor w = Tensor::empty(logsnr_host.shape());
  const float* a = alpha.data<float>();
  const float* l = logsnr_host.data<float>();
  for (int64_t b = 0; b < w.numel(); ++b) {
    double v = double(a[b]) * a[b];
    if (d.weighting == "sigmoid") v *= 1.0 / (1.0 + std::exp(-(d.sigmoid_bias - l[b])));
    w.data<float>()[b] = float(v);
  }
  return w;
}

std::vector<std::pair<int, double>> loss_scales(const DiffusionConfig& d, int resolution) {
  if (d.loss_resolutions.empty()) return {{resolution, 1.0}};
  std::vector<std::pair<int, double>> s;
  for (size_t i = 0; i < d.loss_resolutions.size(); ++i) {
    int r = d.loss_resolutions[i];
    s.push_back({r, d.loss_weights.empty() ? 1.0 / r : d.loss_weights[i]});
  }
  return s;
}

}  // namespace

LossResult diffusion_loss(const UViT& model, const DiffusionConfig& d, const Tensor& x,
                          const Tensor& labels, double label_dropout, uint64_t seed,
                          const StepStreams& streams, ForwardCtx& ctx, const BatchRows& rows) {
  const ModelConfig& mc = model.config();
  int64_t B = x.dim(0);
  Device dev = x.device();
  // Example b of this batch is example g = rows.first + b of the global batch of Bg.
  const int64_t Bg = rows.total > 0 ? rows.total : B;
  SD_CHECK(rows.first >= 0 && rows.first + B <= Bg, "diffusion_loss: rows ", rows.first, "..",
           rows.first + B, " outside a global batch of ", Bg);

  // t per example: stratified (one uniform shifts a regular grid) or i.i.d. uniform.
  Tensor t = Tensor::empty({B});
  double u0 = philox_uniform(seed, streams.t(), 0);
  for (int64_t b = 0; b < B; ++b) {
    int64_t g = rows.first + b;
    double u = d.stratified_t ? std::fmod(u0 + double(g) / Bg, 1.0)
                              : philox_uniform(seed, streams.t(), uint64_t(g) + 1);
    t.data<float>()[b] = float(u);
  }
  Schedule sched(d, mc.resolution);
  Tensor logsnr = sched.logsnr(t);
  Tensor weights = loss_weights(logsnr, d).to(dev);

  Tensor lab = labels.to(Device::CPU).clone();
  if (mc.num_classes > 0)
    for (int64_t b = 0; b < B; ++b)
      if (philox_uniform(seed, streams.labels(), uint64_t(rows.first + b)) < label_dropout)
        lab.data<int32_t>()[b] = mc.num_classes;

  const uint64_t per_example = uint64_t(x.numel() / B);
  Tensor eps = run_forward_on(dev, "random_normal",
                              {{"shape", x.shape()}, {"seed", seed}, {"offset", streams.eps()},
                               {"first", uint64_t(rows.first) * per_example}})[0];
  Tensor logsnr_dev = logsnr.to(dev);
  std::vector<Tensor> zv = run_forward("noising", {x, eps, logsnr_dev});

  ctx.offset = streams.dropout();
  ctx.row0 = rows.first;
  Variable v_hat = model(Variable(zv[0]), logsnr_dev, lab.to(dev), ctx);

  Variable per_sample;
  for (auto [res, w] : loss_scales(d, mc.resolution)) {
    int k = mc.resolution / res;
    Variable pred = k > 1 ? ops::avg_pool2d(v_hat, k) : v_hat;
    Variable target(k > 1 ? run_forward("avg_pool2d", {zv[1]}, {{"k", k}})[0] : zv[1]);
    Variable term = ops::scale(ops::mse(pred, target), w);
    per_sample = per_sample.defined() ? ops::add(per_sample, term) : term;
  }
  per_sample = ops::mul(per_sample, Variable(weights));
  return {ops::mean(per_sample), per_sample.value().to(Device::CPU), zv[0], zv[1], logsnr_dev,
          lab, weights};
}

Denoiser make_denoiser(const UViT& model, const Tensor& labels, const SampleConfig& s) {
  int nc = model.config().num_classes;
  return [&model, labels, s, nc](const Tensor& z, const Tensor& logsnr) {
    NoGradGuard ng;
    ForwardCtx ctx;
    double l = logsnr.to(Device::CPU).data<float>()[0];
    bool guide = nc > 0 && s.guidance != 1.0 && l >= s.guidance_min_logsnr &&
                 l <= s.guidance_max_logsnr;
    if (!guide) return model(Variable(z), logsnr, labels, ctx).value();
    int64_t B = z.dim(0);
    Tensor z2 = run_forward("concat", {z, z}, {{"axis", 0}})[0];
    Tensor l2 = run_forward("concat", {logsnr, logsnr}, {{"axis", 0}})[0];
    // Labels are integers: build [labels, no-class] on the host.
    Tensor y2 = Tensor::full({2 * B}, nc, DType::I32);
    Tensor yh = labels.to(Device::CPU);
    std::copy(yh.data<int32_t>(), yh.data<int32_t>() + B, y2.data<int32_t>());
    y2 = y2.to(z.device());
    Tensor v = model(Variable(z2), l2, y2, ctx).value();
    std::vector<Tensor> cu = run_forward("split", {v}, {{"first", B}, {"axis", 0}});
    // v_u + w (v_c - v_u)
    Tensor diff = run_forward("add", {cu[0], run_forward("scale", {cu[1]}, {{"s", -1.0}})[0]})[0];
    return run_forward("add", {cu[1], run_forward("scale", {diff}, {{"s", s.guidance}})[0]})[0];
  };
}

Tensor sample(const Denoiser& f, const Schedule& sched, const Shape& shape, Device device,
              const SampleConfig& s, uint64_t seed, const SampleProgress& progress,
              int64_t first_row) {
  int64_t B = shape[0];
  const uint64_t per_image = uint64_t(shape_numel(shape) / std::max<int64_t>(B, 1));
  const uint64_t first = uint64_t(first_row) * per_image;
  Tensor z = run_forward_on(device, "random_normal",
                            {{"shape", shape}, {"seed", seed}, {"offset", 0}, {"first", first}})[0];
  int N = s.steps;
  for (int i = N; i >= 1; --i) {
    Tensor lt = sched.logsnr(Tensor::full({B}, double(i) / N)).to(device);
    Tensor ls = sched.logsnr(Tensor::full({B}, double(i - 1) / N)).to(device);
    Tensor v = f(z, lt);
    Tensor noise = run_forward_on(
        device, "random_normal",
        {{"shape", shape}, {"seed", seed}, {"offset", uint64_t(i)}, {"first", first}})[0];
    z = run_forward("sampler_step", {z, v, lt, ls, noise},
                    {{"mode", s.sampler}, {"clip_x", s.clip_x}, {"last", i == 1}})[0];
    if (progress.on_step) progress.on_step(N - i + 1, N);
  }
  return z;
}

}  // namespace sd
