// simdiff sample: draws images from a checkpoint (EMA weights by default) into a PNG grid.
#include <filesystem>
#include <iostream>

#include "model/checkpoint.h"
#include "tools/cli.h"
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
    "given. The same --seed gives the same images.",
    {
        {"ckpt", "FILE", "", "checkpoint written by simdiff train", true},
        {"out", "FILE", "samples.png", "PNG grid to write"},
        {"n", "N", "8", "images per class (or in total with --class or unconditional models)"},
        {"steps", "S", "", "sampling steps (default: the config's sample.steps)"},
        {"sampler", "ddpm|ddim", "", "default: the config's sample.sampler"},
        {"guidance", "W", "", "classifier-free guidance weight; 1 = none (default: config)"},
        {"guidance-interval", "LO,HI", "", "apply guidance only for logSNR in [LO, HI] (SiD2)"},
        {"class", "K", "", "sample only class K"},
        {"seed", "S", "0", "random seed"},
        {"raw-weights", "", "", "use the raw weights instead of the EMA weights"},
        {"each", "DIR", "", "also write one PNG per image into DIR"},
        {"device", "auto|cpu|cuda", "auto", "where to sample"},
    },
    "example:\n  simdiff sample --ckpt runs/demo/ckpt.safetensors --n 8 --steps 128 --guidance 2 --out grid.png"};
}  // namespace

int cmd_sample(int argc, char** argv) {
  Args a = parse(kSample, argc, argv);
  if (a.help) {
    std::cout << help_text(kSample);
    return 0;
  }
  std::string path = a.get("ckpt");
  LoadedCheckpoint ck = read_checkpoint(path);
  SampleConfig sc = ck.config.sample;
  if (a.has("steps")) sc.steps = int(a.get_int("steps"));
  if (a.has("sampler")) sc.sampler = a.get("sampler");
  SD_CHECK(sc.sampler == "ddpm" || sc.sampler == "ddim", "--sampler expected ddpm or ddim, got '",
           sc.sampler, "'");
  SD_CHECK(sc.steps >= 1, "--steps expected >= 1, got ", sc.steps);
  if (a.has("guidance")) sc.guidance = a.get_double("guidance");
  if (a.has("guidance-interval")) {
    std::string v = a.get("guidance-interval");
    size_t comma = v.find(',');
    SD_CHECK(comma != std::string::npos, "--guidance-interval expected LO,HI, got '", v, "'");
    try {
      sc.guidance_min_logsnr = std::stod(v.substr(0, comma));
      sc.guidance_max_logsnr = std::stod(v.substr(comma + 1));
    } catch (const std::logic_error&) {
      fail("--guidance-interval expected two numbers LO,HI, got '", v, "'");
    }
  }
  int n = int(a.get_int("n"));
  SD_CHECK(n >= 1 && n <= 4096, "--n expected 1..4096, got ", n);
  int cls = a.has("class") ? int(a.get_int("class")) : -1;
  SD_CHECK(cls < 0 || ck.config.model.num_classes > 0, "--class given but the model is unconditional");

  ModelSession s(ck.config, pick_device(a.get("device")), ck.seed);
  load_weights(ck, s.ps, a.flag("raw-weights") ? "params." : "ema.", path);
  Tensor x = sample_grid(s, sc, n, cls, uint64_t(a.get_int("seed")), a.get("out"), true);
  if (a.has("each")) {
    std::filesystem::create_directories(a.get("each"));
    Tensor h = x.to(Device::CPU);
    int64_t per = h.numel() / h.dim(0);
    for (int64_t i = 0; i < h.dim(0); ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "/%05lld.png", (long long)i);
      write_png(a.get("each") + name, h.data<float>() + i * per, int(h.dim(1)), int(h.dim(2)),
                int(h.dim(3)));
    }
  }
  std::cout << "wrote " << a.get("out") << " (" << x.dim(0) << " images, " << sc.steps << " "
            << sc.sampler << " steps, guidance " << sc.guidance << ")\n";
  return 0;
}

}  // namespace sd::cli
