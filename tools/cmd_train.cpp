// simdiff train: trains a model from a JSON config; see tools/train.cpp for the loop.
#include <iostream>
#include <limits>

#include "tools/cli.h"
#include "tools/dist/comm.h"
#include "tools/interrupt.h"
#include "tools/train.h"

namespace sd::cli {

namespace {
const Command kTrain{
    "simdiff train",
    "",
    0,
    "Trains a simple-diffusion U-ViT. Writes to --out: ckpt.safetensors (atomically, every\n"
    "train.ckpt_every steps), metrics.jsonl (one line per step), loss.svg, samples/*.png (EMA\n"
    "weights, one row per class), config.json, and holds train.lock while it runs (a second\n"
    "process is refused). A directory that holds a run is continued with --resume (exactly) or\n"
    "replaced with --overwrite, never silently. On --resume the run keeps the checkpoint's config:\n"
    "--config may be left out, and one given must match it; only --steps, --ckpt-every,\n"
    "--sample-every and --data (naming the same dataset) may change. SIGTERM, SIGINT or SIGHUP\n"
    "stop after the current step with a checkpoint (exit status 128 + the signal); a second\n"
    "signal stops at once.\n\n"
    "Under mpirun (mpirun -np N simdiff train ...) the run is data-parallel: train.batch_size\n"
    "stays the global batch, each rank takes batch_size / N examples of it (the examples, noise\n"
    "and dropout a one-process run gives them), gradients are averaged across the ranks (MPI on\n"
    "the CPU, NCCL between GPUs: one GPU per rank), and only rank 0 writes and prints. A run\n"
    "resumes with any number of ranks. See README, \"Several processes\".",
    {
        {"config", "FILE", "", "JSON config (see configs/); required unless --resume finds a checkpoint"},
        {"data", "SPEC", "", "dataset, overrides train.data: shapes[:N], mnist:DIR, cifar10:DIR, folder:DIR[:bg=COLOUR]"},
        {"out", "DIR", "runs/demo", "output directory"},
        {"device", "auto|cpu|cuda", "auto", "where to train (auto: cuda when present)"},
        {"resume", "", "", "continue from DIR/ckpt.safetensors (a new run when there is none)"},
        {"overwrite", "", "", "start a new run in DIR even if it holds one, deleting that run"},
        {"steps", "N", "", "override train.steps"},
        {"ckpt-every", "N", "", "override train.ckpt_every"},
        {"sample-every", "N", "", "override train.sample_every (0: never)"},
        {"stop-after", "N", "", "stop after N steps of this invocation (a checkpoint is written)"},
        {"quiet", "", "", "no progress bar"},
        {"profile", "", "", "print a per-op time table (forward/backward, calls, ms, share) at the end"},
        {"bucket-mb", "MB", "4", "mpirun: size of the gradient buckets all-reduced in the backward"},
        {"no-overlap", "", "", "mpirun: all-reduce only after the backward (to measure the overlap)"},
        {"comm-timeout", "S", "600", "mpirun: end the job when ranks wait S seconds for each other"},
    },
    "examples:\n"
    "  simdiff train --config configs/demo.json --out runs/demo\n"
    "  simdiff train --config configs/mnist32.json --data mnist:data/mnist --out runs/mnist\n"
    "  simdiff train --out runs/demo --resume --steps 6000\n"
    "  mpirun -np 2 simdiff train --config configs/demo.json --out runs/demo2"};

int train_command(int argc, char** argv) {
  dist::Comm& comm = dist::world();
  Args a = comm.agree([&] { return parse(kTrain, argc, argv); });
  if (a.help) {
    if (comm.root()) std::cout << help_text(kTrain);
    return 0;
  }
  TrainOptions opt = comm.agree([&] {
    TrainOptions opt;
    opt.resume = a.flag("resume");
    opt.overwrite = a.flag("overwrite");
    if (opt.resume && opt.overwrite)
      throw UsageError("options --resume and --overwrite exclude each other");
    if (a.has("config")) opt.config_path = a.get("config");
    else if (!opt.resume) throw UsageError("'simdiff train' needs option --config FILE (or --resume)");
    opt.out_dir = a.get("out");
    opt.device = a.get("device");
    if (a.has("data")) opt.data = a.get("data");
    const int64_t kIntMax = std::numeric_limits<int>::max();
    if (a.has("steps")) opt.steps = a.get_int("steps", 1);
    if (a.has("ckpt-every")) opt.ckpt_every = a.get_int("ckpt-every", 1, kIntMax);
    if (a.has("sample-every")) opt.sample_every = a.get_int("sample-every", 0, kIntMax);
    if (a.has("stop-after")) opt.stop_after = a.get_int("stop-after", 1);
    opt.progress = !a.flag("quiet");
    opt.profile = a.flag("profile");
    opt.bucket_mb = a.get_double("bucket-mb", 1e-6, 1e6);
    opt.overlap = !a.flag("no-overlap");
    comm.set_timeout(a.get_double("comm-timeout", 1, 1e6));
    return opt;
  });
  TrainSummary s = train(opt);
  int status = s.signal ? 128 + s.signal : 0;
  if (!comm.root()) return status;
  if (s.signal) {
    std::cerr << "simdiff: stopped by " << signal_name(s.signal) << " after step " << s.steps_done
              << " of " << s.total_steps << "; checkpoint " << s.checkpoint
              << " written; continue with --resume\n";
    return status;
  }
  std::cout << "trained to step " << s.steps_done << ", last loss " << s.last_loss << ", "
            << s.checkpoint << "\n";
  return 0;
}

}  // namespace

int cmd_train(int argc, char** argv) {
  return dist::run([&] { return train_command(argc, argv); });
}

}  // namespace sd::cli
