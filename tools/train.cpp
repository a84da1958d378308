#include "tools/train.h"

#include <csignal>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "model/checkpoint.h"
#include "tools/data/loader.h"
#include "tools/plot.h"
#include "tools/progress.h"
#include "tools/session.h"

namespace sd {

namespace fs = std::filesystem;

namespace {

// Fault injection for the resume test: SIMDIFF_FAULT_KILL_AT_STEP=N makes the process SIGKILL
// itself right after logging step N, the same abrupt death as an outside `kill -9` but at a
// step the test chooses instead of a race against the clock.
int64_t fault_kill_step() {
  const char* v = std::getenv("SIMDIFF_FAULT_KILL_AT_STEP");
  return v ? std::atoll(v) : -1;
}

double learning_rate(const TrainConfig& t, int64_t step) {
  double lr = t.lr;
  if (t.warmup > 0 && step < t.warmup) return lr * double(step + 1) / double(t.warmup);
  if (t.decay == "cosine") {
    double p = double(step - t.warmup) / double(std::max<int64_t>(1, t.steps - t.warmup));
    double floor = t.min_lr_ratio * lr;
    lr = floor + (lr - floor) * 0.5 * (1 + std::cos(M_PI * std::min(1.0, p)));
  }
  return lr;
}

// Reads metrics.jsonl back (for the loss curve and for resuming): keeps lines up to `upto`.
std::vector<std::pair<int64_t, double>> read_metrics(const fs::path& p, int64_t upto,
                                                     std::vector<std::string>* keep_lines) {
  std::vector<std::pair<int64_t, double>> pts;
  std::ifstream f(p);
  std::string line;
  while (std::getline(f, line)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("step")) continue;
    if (j["step"].get<int64_t>() > upto) break;
    pts.push_back({j["step"].get<int64_t>(), j["loss"].get<double>()});
    if (keep_lines) keep_lines->push_back(line);
  }
  return pts;
}

}  // namespace

TrainSummary train(const Config& cfg_in, const TrainOptions& opt) {
  Config cfg = cfg_in;
  if (!opt.data.empty()) cfg.train.data = opt.data;
  const TrainConfig& tc = cfg.train;
  const ModelConfig& mc = cfg.model;
  fs::path out(opt.out_dir);
  fs::create_directories(out / "samples");
  fs::path ckpt = out / "ckpt.safetensors", metrics = out / "metrics.jsonl";

  Device dev = pick_device(opt.device);
  ModelSession s(cfg, dev, tc.seed);
  TrainState st;
  st.seed = tc.seed;
  st.ema = s.ps.values().clone();
  st.adam_m = Tensor::zeros({s.ps.count()}, DType::F32, dev);
  st.adam_v = Tensor::zeros({s.ps.count()}, DType::F32, dev);

  std::vector<std::pair<int64_t, double>> curve;
  if (opt.resume && fs::exists(ckpt)) {
    LoadedCheckpoint ck = read_checkpoint(ckpt.string());
    SD_CHECK(ck.config.to_json()["model"] == cfg.to_json()["model"],
             ckpt.string(), ": its model config differs from the one given; resume with the same config (",
             "checkpoint: ", ck.config.to_json()["model"].dump(), ")");
    load_train_state(ck, s.ps, st, ckpt.string());
    std::vector<std::string> lines;
    curve = read_metrics(metrics, st.step, &lines);
    std::ofstream f(metrics, std::ios::trunc);  // drop what the killed run logged past the checkpoint
    for (auto& l : lines) f << l << '\n';
    std::fprintf(stderr, "resuming %s at step %lld\n", ckpt.c_str(), (long long)st.step);
  } else {
    SD_CHECK(!opt.resume || !fs::exists(metrics), "--resume: no checkpoint in ", out.string(),
             " but a metrics log exists; refusing to overwrite it");
    std::ofstream(metrics, std::ios::trunc);
  }
  { std::ofstream(out / "config.json") << cfg.to_json().dump(2) << '\n'; }

  auto data = open_dataset(tc.data, mc.resolution, mc.channels);
  SD_CHECK(mc.num_classes == 0 || data->num_classes() <= mc.num_classes, "dataset '", tc.data,
           "' has ", data->num_classes(), " classes but model.num_classes is ", mc.num_classes);
  Loader loader(*data, tc.batch_size, tc.seed, tc.flip, st.step * tc.grad_accum);

  std::fprintf(stderr, "simdiff train: %lld parameters on %s, data '%s' (%lld images), out %s\n",
               (long long)s.ps.count(), device_name(dev), tc.data.c_str(),
               (long long)data->size(), out.c_str());
  ProgressBar bar("train", tc.steps, st.step);
  std::ofstream log(metrics, std::ios::app);
  TrainSummary sum;
  auto t0 = std::chrono::steady_clock::now();
  int64_t start = st.step;
  const int64_t kill_at = fault_kill_step();
  auto write_curve = [&] { write_loss_svg((out / "loss.svg").string(), curve, "training loss", {.log_y = true}); };
  auto write_samples = [&](const std::string& name) {
    s.ps.bind_values(st.ema);
    sample_grid(s, cfg.sample, 8, -1, tc.seed + 1, (out / "samples" / name).string(), false);
    s.ps.rebind();
  };

  while (st.step < tc.steps && (opt.stop_after < 0 || st.step - start < opt.stop_after)) {
    int64_t step = st.step;
    s.ps.zero_grad();
    double loss = 0;
    for (int micro = 0; micro < tc.grad_accum; ++micro) {
      Batch b = loader.next();
      ForwardCtx ctx;
      ctx.train = true;
      ctx.seed = tc.seed;
      LossResult r = diffusion_loss(*s.model, cfg.diffusion, b.images.to(dev), b.labels.to(dev),
                                    tc.label_dropout, tc.seed,
                                    StepStreams(uint64_t(step * tc.grad_accum + micro)), ctx);
      double l = r.loss.value().item();
      SD_CHECK(std::isfinite(l), "training stopped: the loss is ", l, " at step ", step,
               "; the last good checkpoint (", ckpt.string(), ") is left intact");
      loss += l / tc.grad_accum;
      Tensor seed_grad = Tensor::full({}, 1.0 / tc.grad_accum).to(dev);
      backward(r.loss, seed_grad);
    }
    double gnorm = run_forward("grad_norm", {s.ps.grads()})[0].item();
    SD_CHECK(std::isfinite(gnorm), "training stopped: the gradient norm is ", gnorm, " at step ",
             step, "; the last good checkpoint (", ckpt.string(), ") is left intact");
    double clip = tc.grad_clip > 0 && gnorm > tc.grad_clip ? tc.grad_clip / gnorm : 1.0;
    double lr = learning_rate(tc, step);
    const Tensor& p = s.ps.values();
    run_forward_into("adamw", {p, s.ps.grads(), st.adam_m, st.adam_v}, {p, st.adam_m, st.adam_v},
                     {{"lr", lr}, {"beta1", tc.beta1}, {"beta2", tc.beta2}, {"eps", tc.adam_eps},
                      {"weight_decay", tc.weight_decay}, {"step", step + 1}, {"grad_scale", clip}});
    // EMA warm-up: the average starts short and lengthens to ema_decay.
    double decay = std::min(tc.ema_decay, double(step + 1) / double(step + 10));
    run_forward_into("ema", {st.ema, p}, {st.ema}, {{"decay", decay}});
    st.step = step + 1;

    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log << nlohmann::json{{"step", st.step}, {"loss", loss}, {"lr", lr}, {"grad_norm", gnorm},
                          {"seconds", el}}.dump()
        << '\n' << std::flush;
    curve.push_back({st.step, loss});
    sum.last_loss = loss;
    if (opt.progress) {
      char extra[64];
      std::snprintf(extra, sizeof extra, "loss %.4f", loss);
      bar.update(st.step, extra, double(tc.batch_size * tc.grad_accum));
    }
    if (st.step == kill_at) std::raise(SIGKILL);
    if (st.step % tc.ckpt_every == 0 || st.step == tc.steps) {
      save_checkpoint(ckpt.string(), cfg, s.ps, st);
      write_curve();
    }
    if (tc.sample_every > 0 && st.step % tc.sample_every == 0 && st.step != tc.steps) {
      char name[32];
      std::snprintf(name, sizeof name, "step_%06lld.png", (long long)st.step);
      write_samples(name);
    }
  }
  save_checkpoint(ckpt.string(), cfg, s.ps, st);
  write_curve();
  if (st.step == tc.steps) write_samples("final.png");
  sum.steps_done = st.step;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (opt.progress) bar.finish("(" + out.string() + ")");
  return sum;
}

}  // namespace sd
