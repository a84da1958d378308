#include "tools/train.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>

#include "kernels/op_profile.h"
#include "model/checkpoint.h"
#include "runtime/allocator.h"
#include "runtime/fault.h"
#include "runtime/json_text.h"
#include "tools/data/loader.h"
#include "tools/dist/comm.h"
#include "tools/dist/consistency.h"
#include "tools/dist/reducer.h"
#include "tools/interrupt.h"
#include "tools/progress.h"
#include "tools/run_dir.h"
#include "tools/session.h"

namespace sd {

namespace {

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

// ---- the config of the run ----

// The command-line overrides, each validated with its flag named.
void apply_overrides(Config& cfg, const TrainOptions& opt) {
  if (opt.data) cfg.train.data = *opt.data;
  auto set = [&](const std::optional<int64_t>& v, auto& field, const char* flag) {
    if (!v) return;
    SD_CHECK(*v >= 0 && *v <= std::numeric_limits<std::remove_reference_t<decltype(field)>>::max(),
             flag, " ", *v, " is out of range");
    field = *v;
    cfg.validate(flag);
  };
  set(opt.steps, cfg.train.steps, "--steps");
  set(opt.ckpt_every, cfg.train.ckpt_every, "--ckpt-every");
  set(opt.sample_every, cfg.train.sample_every, "--sample-every");
}

// On --resume the run's config is the checkpoint's. A --config given must agree with it in
// every key; a flag may change the keys that do not alter the trajectory of the run: the total
// steps, the checkpoint and sample periods, and the spelling of the data's path.
Config resume_config(const Config& was, const TrainOptions& opt, const std::string& ckpt) {
  Config now = opt.config_path.empty() ? was : Config::load(opt.config_path);
  apply_overrides(now, opt);
  struct Changeable {
    const char* key;
    const char* flag;
    bool given;
  };
  const Changeable changeable[] = {{"train.steps", "--steps", bool(opt.steps)},
                                   {"train.ckpt_every", "--ckpt-every", bool(opt.ckpt_every)},
                                   {"train.sample_every", "--sample-every", bool(opt.sample_every)}};
  std::string refused;
  for (auto& c : Config::changes(was, now)) {
    if (c.key == "train.data" && opt.data && same_dataset(was.train.data, *opt.data)) continue;
    std::string hint;
    bool by_flag = false;
    for (auto& k : changeable)
      if (c.key == k.key) {
        by_flag = k.given;
        hint = std::string(", pass ") + k.flag + " to change it";
      }
    if (!by_flag)
      refused += std::string(refused.empty() ? "" : "; ") + c.key + " (" + brief(c.from) +
                 " in the checkpoint, " + brief(c.to) + " now" + hint + ")";
  }
  SD_CHECK(refused.empty(), "--resume: ", ckpt, " was trained with another config: ", refused,
           ". A run continues exactly only with its own config (omit --config to use it); "
           "--steps, --ckpt-every, --sample-every and --data naming the same dataset may change");
  return now;
}

// ---- the ranks of a data-parallel run ----

nlohmann::json or_null(const std::optional<int64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json();
}

// What a rank was started with: the config it asks for (after the overrides; none when --resume
// takes the checkpoint's) and the options that shape the run, less the data's path: a rank
// names with --data where its machine keeps the data (the data itself is compared later).
nlohmann::json request_of(const TrainOptions& opt) {
  nlohmann::json config;
  if (!opt.config_path.empty()) {
    Config c = Config::load(opt.config_path);
    apply_overrides(c, opt);
    config = c.to_json();
    config["train"].erase("data");
  }
  return {{"config", config},
          {"--resume", opt.resume}, {"--overwrite", opt.overwrite}, {"--device", opt.device},
          {"--steps", or_null(opt.steps)}, {"--ckpt-every", or_null(opt.ckpt_every)},
          {"--sample-every", or_null(opt.sample_every)}, {"--stop-after", opt.stop_after},
          {"--bucket-mb", opt.bucket_mb}, {"--no-overlap", !opt.overlap}};
}

// The first signal any rank received (SIGTERM, SIGINT, SIGHUP), so that all stop at one step.
int first_signal(dist::Comm& comm, int mine, const char* what) {
  for (uint64_t s : comm.allgather(uint64_t(mine), what))
    if (s) return int(s);
  return 0;
}

// ---- the loop ----

struct StepResult {
  double loss = 0, grad_norm = 0, lr = 0;
};

// One optimizer step: gradient accumulation over micro-batches, the all-reduce of the gradients
// (data parallelism), clipping, AdamW, EMA. This rank holds rows `share` of each global batch.
StepResult train_step(const Config& cfg, ModelSession& s, TrainState& st, Loader& loader,
                      Device dev, const RunDir* dir, dist::Comm& comm,
                      dist::GradReducer& reducer, const dist::Share& share) {
  const TrainConfig& tc = cfg.train;
  const int64_t step = st.step;
  // Every rank reaches these with the same reduced values: all stop, rank 0 reports.
  auto stop = [&](const char* what, double v) {
    throw dist::Agreed(detail::capped(detail::cat("training stopped: ", what, " is ", v,
                                                  " at step ", step + 1, "; ",
                                                  dir ? dir->checkpoint_note() : "")),
                       1);
  };
  StepResult r;
  s.ps.zero_grad();
  double loss = 0;  // this rank's share of the global batch's loss
  for (int micro = 0; micro < tc.grad_accum; ++micro) {
    Batch b = loader.next();
    ForwardCtx ctx;
    ctx.train = true;
    ctx.seed = tc.seed;
    LossResult lr = diffusion_loss(*s.model, cfg.diffusion, b.images.to(dev), b.labels.to(dev),
                                   tc.label_dropout, tc.seed,
                                   StepStreams(uint64_t(step * tc.grad_accum + micro)), ctx,
                                   {share.first, tc.batch_size});
    loss += lr.loss.value().item() * (double(share.count) / tc.batch_size) / tc.grad_accum;
    bool last = micro + 1 == tc.grad_accum;
    backward(lr.loss, Tensor::full({}, 1.0 / tc.grad_accum).to(dev),
             last ? reducer.hook() : AfterNode());
  }
  reducer.finish();
  // The loss of the global batch and rank 0's gradient norm, so that every rank clips alike.
  double v[2] = {loss, comm.root() ? run_forward("grad_norm", {s.ps.grads()})[0].item() : 0.0};
  comm.allreduce_sum(v, 2, "summing the loss");
  r.loss = v[0];
  r.grad_norm = v[1];
  if (!std::isfinite(r.loss)) stop("the loss", r.loss);
  if (!std::isfinite(r.grad_norm)) stop("the gradient norm", r.grad_norm);
  double clip = tc.grad_clip > 0 && r.grad_norm > tc.grad_clip ? tc.grad_clip / r.grad_norm : 1.0;
  r.lr = learning_rate(tc, step);
  const Tensor& p = s.ps.values();
  run_forward_into("adamw", {p, s.ps.grads(), st.adam_m, st.adam_v}, {p, st.adam_m, st.adam_v},
                   {{"lr", r.lr}, {"beta1", tc.beta1}, {"beta2", tc.beta2}, {"eps", tc.adam_eps},
                    {"weight_decay", tc.weight_decay}, {"step", step + 1}, {"grad_scale", clip}});
  // EMA warm-up: the average starts short and lengthens to ema_decay.
  double decay = std::min(tc.ema_decay, double(step + 1) / double(step + 10));
  run_forward_into("ema", {st.ema, p}, {st.ema}, {{"decay", decay}});
  st.step = step + 1;
  return r;
}

}  // namespace

TrainSummary train(const TrainOptions& opt) {
  dist::Comm& comm = dist::world();
  const bool root = comm.root();
  const int ranks = comm.size();

  // 0. Every rank was started for the same run.
  if (ranks > 1)
    dist::same_as_root(comm, comm.agree([&] { return request_of(opt); }),
                       "this rank was started with another config or options than rank 0 (all "
                       "ranks need the same command line; only --data may differ, naming the "
                       "same data)");

  // 1. Everything is validated before anything is written: config, data, model, checkpoint.
  // Rank 0 alone reads and writes the run directory.
  std::optional<RunDir> dir;
  std::optional<LoadedCheckpoint> ck;
  Config cfg;
  auto refuse_existing_run = [&] {
    if (opt.overwrite) return;
    if (opt.resume)
      SD_CHECK(!dir->has_metrics(), "--resume: '", dir->path(), "' has a metrics log but no ",
               "checkpoint (stopped before its first one); start it again with --overwrite");
    else
      SD_CHECK(!dir->holds_run(), "'", dir->path(), "' holds a run; continue it with --resume, ",
               "or start a new one there with --overwrite (deleting the old one)");
  };
  comm.agree([&] {
    if (!root) return;
    dir.emplace(opt.out_dir);
    // Locked before its checkpoint is read, so that no other writer replaces it meanwhile.
    if (dir->exists()) dir->lock();
    if (opt.resume && dir->has_checkpoint()) {
      ck = read_checkpoint(dir->checkpoint_path());
      cfg = resume_config(ck->config, opt, dir->checkpoint_path());
      SD_CHECK(ck->step <= cfg.train.steps, "--resume: the checkpoint is at step ", ck->step,
               ", past train.steps = ", cfg.train.steps, "; pass a larger --steps");
    } else {
      SD_CHECK(!opt.config_path.empty(), "--resume: '", dir->path(), "' holds no checkpoint to ",
               "continue; pass --config to start a new run");
      refuse_existing_run();
      cfg = Config::load(opt.config_path);
      apply_overrides(cfg, opt);
    }
  });
  if (ranks > 1) {  // rank 0's config, with the data where this rank's machine keeps it
    std::string text = comm.broadcast(root ? cfg.to_json().dump() : std::string());
    if (!root) cfg = Config::from_json(nlohmann::json::parse(text), "rank 0's config");
    if (!root && opt.data) cfg.train.data = *opt.data;
  }
  const TrainConfig& tc = cfg.train;
  const ModelConfig& mc = cfg.model;
  Device dev = Device::CPU;
  std::unique_ptr<Dataset> data;
  comm.agree([&] {
    SD_CHECK(tc.batch_size % ranks == 0, "train.batch_size ", tc.batch_size, " does not divide ",
             "among ", ranks, " ranks: each rank takes train.batch_size / ranks examples of every ",
             "batch (the global batch stays train.batch_size); use a multiple of ", ranks);
    dev = pick_device(opt.device);
    comm.check_device(dev);
    data = open_dataset(tc.data, mc.resolution, mc.channels);
    SD_CHECK(mc.num_classes == 0 || data->num_classes() <= mc.num_classes, "dataset '", tc.data,
             "' has ", data->num_classes(), " classes but model.num_classes is ", mc.num_classes);
  });
  if (ranks > 1)
    dist::same_as_root(comm,
                       {{"device", device_name(dev)}, {"data", dist::data_fingerprint(*data)}},
                       "this rank's device or data differ from rank 0's (all ranks train on one "
                       "kind of device, on the same data)");
  comm.use_device(dev);
  std::optional<ModelSession> s;
  TrainState st;
  comm.agree([&] {
    s.emplace(cfg, dev, tc.seed, /*training=*/true);
    st.seed = tc.seed;
    st.ema = s->ps.values().clone();
    st.adam_m = Tensor::zeros({s->ps.count()}, DType::F32, dev);
    st.adam_v = Tensor::zeros({s->ps.count()}, DType::F32, dev);
    if (ck) load_train_state(*ck, s->ps, st, dir->checkpoint_path());
  });
  const bool resumed = ck.has_value();
  ck.reset();
  if (ranks > 1) {  // every rank starts from rank 0's state
    for (const Tensor& t : {s->ps.values(), st.ema, st.adam_m, st.adam_v}) comm.broadcast(t);
    st.step = int64_t(comm.allgather(uint64_t(st.step), "sharing the step")[0]);
  }

  // 2. The directory: locked, stale temp files removed, then (and only then) written.
  std::vector<std::pair<int64_t, double>> curve;
  const dist::Share share = dist::share_of(tc.batch_size, comm.rank(), ranks);
  comm.agree([&] {
    if (!root) return;
    dir->lock();
    if (!resumed) {
      refuse_existing_run();
      if (opt.overwrite) dir->clear_run();
    }
    curve = dir->begin(cfg, st.step, resumed);
    if (resumed)
      std::fprintf(stderr, "resuming %s at step %lld\n", dir->checkpoint_path().c_str(),
                   (long long)st.step);
    std::fprintf(stderr, "simdiff train: %lld parameters on %s, data '%s' (%lld images), out %s\n",
                 (long long)s->ps.count(), device_name(dev), tc.data.c_str(),
                 (long long)data->size(), dir->path().c_str());
    if (ranks > 1)
      std::fprintf(stderr, "simdiff train: %d ranks (%s) x %d threads, %lld examples of each batch "
                   "of %d per rank\n", ranks, comm.backend().c_str(), omp_get_max_threads(),
                   (long long)share.count, tc.batch_size);
  });

  // 3. The loop.
  Loader loader(*data, tc.batch_size, tc.seed, tc.flip, st.step * tc.grad_accum, 2,
                {int(share.first), int(share.count)});
  dist::GradReducer reducer(comm, s->ps, opt.bucket_mb, opt.overlap);
  ProgressBar bar("train", tc.steps, st.step);
  TrainSummary sum;
  auto t0 = std::chrono::steady_clock::now();
  if (opt.profile) op_profile::enable(true);
  const int64_t start = st.step;
  int64_t saved = resumed ? st.step : -1;
  auto save = [&] {
    if (root) dir->save(cfg, s->ps, st, curve);
    saved = st.step;
  };
  auto write_samples = [&](const std::string& name) {  // every rank draws its share
    s->ps.bind_values(st.ema);
    sample_grid(*s, cfg.sample, 8, -1, tc.seed + 1, root ? dir->file("samples/" + name) : "",
                false);
    s->ps.rebind();
    if (root && opt.progress)
      bar.note("samples: wrote " + dir->file("samples/" + name) + " (step " +
               std::to_string(st.step) + ", EMA weights)");
  };
  InterruptGuard interrupt;
  while (st.step < tc.steps && (opt.stop_after < 0 || st.step - start < opt.stop_after) &&
         !first_signal(comm, interrupt.signal(), "starting a step")) {
    StepResult r = train_step(cfg, *s, st, loader, dev, root ? &*dir : nullptr, comm, reducer,
                              share);
    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (root)
      dir->log_step({{"step", st.step}, {"loss", r.loss}, {"lr", r.lr}, {"grad_norm", r.grad_norm},
                     {"seconds", el}});
    curve.push_back({st.step, r.loss});
    sum.last_loss = r.loss;
    if (root && opt.progress) {
      char extra[64];
      std::snprintf(extra, sizeof extra, "loss %.4f", r.loss);
      bar.update(st.step, extra, double(tc.batch_size * tc.grad_accum));
    }
    if (fault::point("step:" + std::to_string(st.step)))  // a diverging update, for the tests
      s->ps.values().slice_flat(0, {1}).copy_from(Tensor::full({1}, NAN).to(dev));
    if (ranks > 1 && tc.dist_check_every > 0 && st.step % tc.dist_check_every == 0)
      if (int r = dist::differs_from_root(comm, s->ps.values()); r >= 0)
        throw dist::Agreed(detail::capped(detail::cat(
            "the ranks diverged: after step ", st.step, " the weights of rank ", r, " differ from ",
            "rank 0's (compared every train.dist_check_every = ", tc.dist_check_every, " steps; ",
            "ranks must compute alike: the same build, device kind and threads); ",
            root ? dir->checkpoint_note() : "")), 1);
    if (st.step % tc.ckpt_every == 0) save();
    if (tc.sample_every > 0 && st.step % tc.sample_every == 0 && st.step != tc.steps) {
      char name[32];
      std::snprintf(name, sizeof name, "step_%06lld.png", (long long)st.step);
      write_samples(name);
    }
  }
  if (saved != st.step) save();
  if (st.step == tc.steps && st.step != start) write_samples("final.png");
  if (root) dir->finish();
  sum.steps_done = st.step;
  sum.total_steps = tc.steps;
  sum.signal = first_signal(comm, interrupt.signal(), "finishing the run");
  sum.checkpoint = root ? dir->checkpoint_path() : "";
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!root) return sum;
  if (opt.progress) bar.finish("(" + dir->path() + ")");
  if (const auto& c = reducer.stats(); c.steps > 0)
    std::fprintf(stderr,
                 "simdiff train: gradients all-reduced over %d ranks in %d bucket(s) of <= %g "
                 "MB%s: %.2f ms per step waited after the backward, %.2f ms from the first "
                 "bucket's start to the last one's end\n",
                 ranks, reducer.buckets(), opt.bucket_mb,
                 opt.overlap ? " during the backward" : " after the backward",
                 1e3 * c.waited_s / c.steps, 1e3 * c.span_s / c.steps);
  if (opt.profile) std::fputs(op_profile::report(sum.seconds * 1e3).c_str(), stderr);
  if (dev == Device::CUDA && opt.progress)  // the caching allocator's peak and cache size
    std::fprintf(stderr, "simdiff train: %s\n", describe_device_memory(device_alloc_stats()).c_str());
  return sum;
}

}  // namespace sd
