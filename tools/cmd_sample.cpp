// simdiff sample: draws images from a checkpoint (EMA weights by default) into a PNG grid.
#include <filesystem>
#include <iostream>
#include <optional>
#include <tuple>
#include <utility>

#include "model/checkpoint.h"
#include "runtime/file_io.h"
#include "tools/cli.h"
#include "tools/dist/comm.h"
#include "tools/image_io.h"
#include "tools/session.h"

namespace sd::cli {

namespace {
const Command kSample{
    "simdiff sample",
    "",
    0,
    "Samples from a checkpoint with ancestral DDPM or DDIM and classifier-free guidance. For a\n"
    "class-conditional model the grid has one row per class (N images each) unless --class is\n"
    "given. The same --seed gives the same images. Under mpirun the ranks share the images and\n"
    "rank 0 writes the grid, the same grid one process draws.",
    {
        {"ckpt", "FILE", "", "checkpoint written by simdiff train", true},
        {"out", "FILE", "samples.png", "PNG grid to write"},
        {"n", "N", "8", "images per class (or in total with --class or unconditional models)"},
        {"steps", "S", "", "sampling steps (default: the config's sample.steps)"},
        {"sampler", "ddpm|ddim", "", "default: the config's sample.sampler"},
        {"guidance", "W", "", "classifier-free guidance weight >= 0; 1 = none (default: config)"},
        {"guidance-interval", "LO,HI", "", "apply guidance only for logSNR in [LO, HI], LO <= HI (SiD2)"},
        {"class", "K", "", "sample only class K (0 .. classes-1)"},
        {"seed", "S", "0", "random seed"},
        {"raw-weights", "", "", "use the raw weights instead of the EMA weights"},
        {"each", "DIR", "", "also write each image alone: DIR/00000.png, ... in grid order"},
        {"pad", "P", "2", "grey pixels around and between the grid's tiles, 0..64"},
        {"device", "auto|cpu|cuda", "auto", "where to sample"},
    },
    "example:\n  simdiff sample --ckpt runs/demo/ckpt.safetensors --n 8 --steps 128 --guidance 2 --out grid.png"};

int sample_command(int argc, char** argv) {
  dist::Comm& comm = dist::world();
  const bool root = comm.root();
  Args a = comm.agree([&] { return parse(kSample, argc, argv); });
  if (a.help) {
    if (root) std::cout << help_text(kSample);
    return 0;
  }
  // Every option and the output paths are checked before the sampling, which may take long.
  struct Options {
    std::string path, out;
    int n = 1, pad = 2;
    uint64_t seed = 0;
    std::optional<int> steps;
    std::optional<double> guidance;
    std::optional<std::pair<double, double>> interval;
  };
  Options o = comm.agree([&] {
    Options o;
    o.path = a.get("ckpt");
    o.out = a.get("out");
    o.n = int(a.get_int("n", 1, 4096));
    o.pad = int(a.get_int("pad", 0, 64));
    o.seed = uint64_t(a.get_int("seed", 0));
    if (a.has("steps")) o.steps = int(a.get_int("steps", 1, 1000000));
    if (a.has("guidance")) o.guidance = a.get_double("guidance", 0);
    if (a.has("guidance-interval")) o.interval = a.get_interval("guidance-interval");
    if (a.has("sampler") && a.get("sampler") != "ddpm" && a.get("sampler") != "ddim")
      throw UsageError("option --sampler expected ddpm or ddim, got '" + a.get("sampler") + "'");
    return o;
  });

  // Rank 0 alone reads the checkpoint and writes the output; the others get its config and
  // weights (the checkpoint need not be on their machines).
  std::optional<LoadedCheckpoint> ck;
  comm.agree([&] {
    if (!root) return;
    check_output_path(o.out, "--out");
    if (a.has("each")) {
      std::error_code ec;
      std::filesystem::create_directories(a.get("each"), ec);
      SD_CHECK(!ec, "--each: cannot create directory '", a.get("each"), "': ", ec.message());
    }
    ck = read_checkpoint(o.path);
  });
  Config config = ck ? ck->config : Config();
  uint64_t init_seed = ck ? ck->seed : 0;
  if (comm.size() > 1) {
    std::string text = comm.broadcast(root ? config.to_json().dump() : std::string());
    if (!root) config = Config::from_json(nlohmann::json::parse(text), "rank 0's checkpoint");
  }
  const ModelConfig& mc = config.model;
  SampleConfig sc = config.sample;
  int cls = -1;
  Device dev = Device::CPU;
  comm.agree([&] {
    if (a.has("class")) {
      if (mc.num_classes == 0)
        throw UsageError("option --class given but the model in '" + o.path + "' is unconditional");
      cls = int(a.get_int("class", 0, mc.num_classes - 1));
    }
    if (o.steps) sc.steps = *o.steps;
    if (a.has("sampler")) sc.sampler = a.get("sampler");
    if (o.guidance) sc.guidance = *o.guidance;
    if (o.interval) std::tie(sc.guidance_min_logsnr, sc.guidance_max_logsnr) = *o.interval;
    dev = pick_device(a.get("device"));
  });
  comm.use_device(dev);  // one GPU per rank; sampling needs no all-reduce

  std::optional<ModelSession> s;
  comm.agree([&] {
    s.emplace(config, dev, init_seed);
    if (root) load_weights(*ck, s->ps, a.flag("raw-weights") ? "params." : "ema.", o.path);
  });
  ck.reset();
  comm.broadcast(s->ps.values());
  Tensor x = sample_grid(*s, sc, o.n, cls, o.seed, o.out, true, o.pad);
  if (!root) return 0;
  if (a.has("each")) {
    int64_t per = x.numel() / x.dim(0);
    for (int64_t i = 0; i < x.dim(0); ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "/%05lld.png", (long long)i);
      write_png(a.get("each") + name, x.data<float>() + i * per, int(x.dim(1)), int(x.dim(2)),
                int(x.dim(3)));
    }
  }
  std::cout << "wrote " << o.out << " (" << x.dim(0) << " images, " << sc.steps << " "
            << sc.sampler << " steps, guidance " << sc.guidance << ")\n";
  return 0;
}

}  // namespace

int cmd_sample(int argc, char** argv) {
  return dist::run([&] { return sample_command(argc, argv); });
}

}  // namespace sd::cli
