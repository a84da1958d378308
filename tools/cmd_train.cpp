// simdiff train: trains a model from a JSON config; see tools/train.cpp for the loop.
#include <iostream>

#include "tools/cli.h"
#include "tools/train.h"

namespace sd::cli {

namespace {
const Command kTrain{
    "simdiff train",
    "",
    0,
    "Trains a simple-diffusion U-ViT. Writes to --out: ckpt.safetensors (atomically, every\n"
    "train.ckpt_every steps), metrics.jsonl (one line per step), loss.svg, samples/*.png (EMA\n"
    "weights, one row per class) and config.json. --resume continues exactly from the checkpoint.",
    {
        {"config", "FILE", "", "JSON config (see configs/)", true},
        {"data", "SPEC", "", "dataset, overrides train.data: shapes[:N], mnist:DIR, cifar10:DIR, folder:DIR"},
        {"out", "DIR", "runs/demo", "output directory"},
        {"device", "auto|cpu|cuda", "auto", "where to train (auto: cuda when present)"},
        {"resume", "", "", "continue from DIR/ckpt.safetensors when it exists"},
        {"steps", "N", "", "override train.steps"},
        {"stop-after", "N", "", "stop after N steps of this invocation (a checkpoint is written)"},
        {"quiet", "", "", "no progress bar"},
    },
    "examples:\n"
    "  simdiff train --config configs/demo.json --out runs/demo\n"
    "  simdiff train --config configs/mnist32.json --data mnist:../shared/data/mnist --out runs/mnist\n"
    "  simdiff train --config configs/demo.json --out runs/demo --resume"};
}  // namespace

int cmd_train(int argc, char** argv) {
  Args a = parse(kTrain, argc, argv);
  if (a.help) {
    std::cout << help_text(kTrain);
    return 0;
  }
  Config cfg = Config::load(a.get("config"));
  if (a.has("steps")) cfg.train.steps = a.get_int("steps");
  TrainOptions opt;
  opt.out_dir = a.get("out");
  if (a.has("data")) opt.data = a.get("data");
  opt.device = a.get("device");
  opt.resume = a.flag("resume");
  if (a.has("stop-after")) opt.stop_after = a.get_int("stop-after");
  opt.progress = !a.flag("quiet");
  TrainSummary s = train(cfg, opt);
  std::cout << "trained to step " << s.steps_done << ", last loss " << s.last_loss << ", "
            << opt.out_dir << "/ckpt.safetensors\n";
  return 0;
}

}  // namespace sd::cli
