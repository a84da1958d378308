// The whole-model benchmark, registered statically next to bench_ops.cpp's op benchmarks (same
// simdiff_bench binary and main):
//   train_step/<config>/<cpu|cuda>   one full training step of the config's model at its batch
//     size, as tools/train.cpp runs it minus data loading: zero grads, diffusion_loss (draws,
//     noising, forward), backward, global gradient norm, clipped AdamW, EMA. The batch is fixed
//     (Philox uniform images, integer labels); each step draws its own t, noise and dropout.
//     In f32, whatever the config's train.precision says;
//   train_step_bf16/<config>/<cpu|cuda>   the same step in mixed precision (train.precision
//     "bf16"; compare with `torch_model.py --time --bf16`). A name of its own, so that filters
//     on ^train_step/ (bench/cpu_vs_torch.py) keep timing the f32 step alone.
//     Config: $SIMDIFF_CONFIG, default "configs/demo.json" relative to the working directory;
//     <config> is the file's stem. Compare with `bench/torch_model.py --time`. A CPU step takes
//     0.2 s to seconds, so Google Benchmark's default gives one timed step: for a stable number run e.g.
//     --benchmark_repetitions=3 and interleave with the PyTorch side, as bench/README.md does.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>

#include "bench/guard.h"
#include "kernels/op_inputs.h"
#include "runtime/allocator.h"
#include "tools/session.h"

namespace sd {
namespace {

std::string config_path() {
  const char* p = std::getenv("SIMDIFF_CONFIG");
  return p && *p ? p : "configs/demo.json";
}

// Everything a step needs, built once per device and kept across Google Benchmark's calls (it
// calls the function again for each iteration-count estimate; building is not what we time).
struct StepState {
  std::unique_ptr<ModelSession> s;
  Tensor x, labels, ema, m, v;
  uint64_t step = 0;
};

// Never destroyed (like the CUDA block cache): nothing to tear down in static destruction.
StepState& state_for(Device dev, const std::string& precision) {
  static auto* states = new std::map<std::pair<Device, std::string>, std::unique_ptr<StepState>>;
  auto& st = (*states)[{dev, precision}];
  if (st) return *st;
  Config cfg = Config::load(config_path());
  cfg.train.precision = precision;
  st = std::make_unique<StepState>();
  st->s = std::make_unique<ModelSession>(cfg, dev, cfg.train.seed);
  const ModelConfig& mc = cfg.model;
  int64_t B = cfg.train.batch_size;
  TestCase batch{"", {{{B, mc.channels, mc.resolution, mc.resolution}},
                      {{B}, true, 0, double(std::max(mc.num_classes, 1) - 1)}}};
  std::vector<Tensor> in = make_op_inputs(batch, 7, DType::F32, dev);
  st->x = in[0];
  st->labels = in[1];
  st->ema = st->s->ps.values().clone();
  st->m = Tensor::zeros({st->s->ps.count()}, DType::F32, dev);
  st->v = Tensor::zeros({st->s->ps.count()}, DType::F32, dev);
  return *st;
}

// One training step (tools/train.cpp's loop body with grad_accum 1 and a constant lr).
void train_step(StepState& st) {
  ModelSession& s = *st.s;
  const TrainConfig& tc = s.cfg.train;
  s.ps.zero_grad();
  ForwardCtx ctx;
  ctx.train = true;
  ctx.seed = tc.seed;
  LossResult r = diffusion_loss(*s.model, s.cfg.diffusion, st.x, st.labels, tc.label_dropout,
                                tc.seed, StepStreams(st.step), ctx);
  backward(r.loss);
  double gnorm = run_forward("grad_norm", {s.ps.grads()})[0].item();
  double clip = tc.grad_clip > 0 && gnorm > tc.grad_clip ? tc.grad_clip / gnorm : 1.0;
  const Tensor& p = s.ps.values();
  run_forward_into("adamw", {p, s.ps.grads(), st.m, st.v}, {p, st.m, st.v},
                   {{"lr", tc.lr}, {"beta1", tc.beta1}, {"beta2", tc.beta2}, {"eps", tc.adam_eps},
                    {"weight_decay", tc.weight_decay}, {"step", st.step + 1},
                    {"grad_scale", clip}});
  double decay = std::min(tc.ema_decay, double(st.step + 1) / double(st.step + 10));
  run_forward_into("ema", {st.ema, p}, {st.ema}, {{"decay", decay}});
  ++st.step;
  if (p.device() == Device::CUDA) device_synchronize();
}

void bench_train_step(benchmark::State& bs, Device dev, std::string precision) {
  StepState& st = state_for(dev, precision);
  if (st.step == 0) train_step(st);  // warm-up: first-touch pages, allocator caches
  for (auto _ : bs) train_step(st);
  bs.counters["images/s"] = benchmark::Counter(
      double(st.s->cfg.train.batch_size) * double(bs.iterations()), benchmark::Counter::kIsRate);
}

// Static registration: only getenv and a device query run before main.
const bool registered = [] {
  std::string cfg = std::filesystem::path(config_path()).stem().string();
  std::vector<Device> devs{Device::CPU};
  if (cuda_available()) devs.push_back(Device::CUDA);
  for (Device d : devs)
    for (std::string precision : {"f32", "bf16"})
      benchmark::RegisterBenchmark((std::string(precision == "f32" ? "train_step/" : "train_step_bf16/") +
                                    cfg + "/" + device_name(d)).c_str(),
                                   guarded(bench_train_step), d, precision)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
  return true;
}();

}  // namespace
}  // namespace sd
