// simdiff trace: one training step on a fixed batch, writing every named activation, its
// gradient, every parameter and its gradient, and what the step drew (t, noise, labels) to one
// safetensors file, so the whole forward/backward path can be studied or compared with another
// implementation (bench/torch_model.py loads it).
#include <iostream>

#include "runtime/safetensors.h"
#include "tools/cli.h"
#include "tools/data/dataset.h"
#include "tools/session.h"

namespace sd::cli {

namespace {
const Command kTrace{
    "simdiff trace", "", 0,
    "Runs one training step (no optimizer update) on the first batch of the config's dataset and\n"
    "writes: input.x, input.labels (after label dropout), input.z, input.logsnr, input.v_target,\n"
    "input.weights, loss, act.<name> and grad.<name> for each named activation, param.<name> and\n"
    "grad_param.<name> for each parameter. Dropout uses the step's Philox stream.",
    {{"config", "FILE", "", "JSON config", true},
     {"out", "FILE", "trace.safetensors", "file to write"},
     {"data", "SPEC", "", "dataset, overrides train.data"},
     {"batch", "N", "", "batch size (default: train.batch_size)"},
     {"device", "auto|cpu|cuda", "cpu", "where to run"}},
    ""};
}  // namespace

int cmd_trace(int argc, char** argv) {
  Args a = parse(kTrace, argc, argv);
  if (a.help) {
    std::cout << help_text(kTrace);
    return 0;
  }
  Config cfg = Config::load(a.get("config"));
  if (a.has("data")) cfg.train.data = a.get("data");
  int B = a.has("batch") ? int(a.get_int("batch")) : cfg.train.batch_size;
  SD_CHECK(B >= 1, "--batch expected >= 1, got ", B);
  Device dev = pick_device(a.get("device"));
  ModelSession s(cfg, dev, cfg.train.seed);
  auto data = open_dataset(cfg.train.data, cfg.model.resolution, cfg.model.channels);
  int64_t chw = int64_t(cfg.model.channels) * cfg.model.resolution * cfg.model.resolution;
  Tensor x = Tensor::empty({B, cfg.model.channels, cfg.model.resolution, cfg.model.resolution});
  Tensor y = Tensor::empty({B}, DType::I32);
  for (int b = 0; b < B; ++b)
    data->get(b % data->size(), x.data<float>() + b * chw, y.data<int32_t>() + b);

  std::vector<Variable> acts;
  ForwardCtx ctx;
  ctx.train = true;
  ctx.seed = cfg.train.seed;
  ctx.trace = &acts;
  LossResult r = diffusion_loss(*s.model, cfg.diffusion, x.to(dev), y.to(dev),
                                cfg.train.label_dropout, cfg.train.seed, StepStreams(0), ctx);
  backward(r.loss);

  std::map<std::string, Tensor> out{{"input.x", x},          {"input.labels", r.labels},
                                    {"input.z", r.z},        {"input.logsnr", r.logsnr},
                                    {"input.v_target", r.v_target}, {"input.weights", r.weights},
                                    {"loss", r.loss.value()}};
  for (auto& v : acts) {
    out["act." + v.name()] = v.value();
    if (v.grad().defined()) out["grad." + v.name()] = v.grad();
  }
  for (auto& p : s.ps.params()) {
    out["param." + p.name] = p.var.value();
    out["grad_param." + p.name] = p.var.grad();
  }
  save_safetensors(a.get("out"), out, {{"config", cfg.to_json().dump()}});
  std::cout << "loss " << r.loss.value().item() << "; wrote " << out.size() << " tensors to "
            << a.get("out") << "\n";
  return 0;
}

}  // namespace sd::cli
