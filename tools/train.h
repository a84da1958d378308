// The training loop: data -> loss -> backward -> clip -> AdamW -> EMA, with progress, metrics,
// sample grids, a loss curve and atomic checkpoints; resumable exactly.
//
// A run starts only when everything is valid: the config and every override, the data (opened),
// the model (built, and its memory checked against the machine), the run directory (locked,
// holding no other run unless --resume or --overwrite) and, on resume, the checkpoint and its
// config. Only then is anything in the directory written.
//
// Under mpirun the run is data-parallel (tools/dist/comm.h): every rank validates the same
// config, takes its share of each global batch (train.batch_size / ranks rows, with the draws
// the one-process run gives those rows), and applies the same averaged update; only rank 0
// reads and writes the run directory and prints.
#pragma once
#include <optional>
#include <string>

#include "model/config.h"

namespace sd {

struct TrainOptions {
  std::string config_path;  // empty: only with resume, which then uses the checkpoint's config
  std::string out_dir = "runs/demo";
  std::string device = "auto";
  bool resume = false;      // continue from out_dir/ckpt.safetensors when it exists
  bool overwrite = false;   // start a new run even where one exists, deleting it
  int64_t stop_after = -1;  // stop (with a checkpoint) after this many steps of this invocation
  bool progress = true;
  bool profile = false;     // per-op time table on stderr at the end (kernels/op_profile.h)
  // Command-line overrides, validated like the keys they set. On resume these are the only keys
  // that may differ from the checkpoint's config (train.data only naming the same dataset).
  std::optional<std::string> data;          // train.data
  std::optional<int64_t> steps;             // train.steps
  std::optional<int64_t> ckpt_every;        // train.ckpt_every
  std::optional<int64_t> sample_every;      // train.sample_every
  // Data-parallel runs: the size of the gradient buckets, and whether their all-reduce starts
  // during the backward (false: after it, to measure what the overlap gains).
  double bucket_mb = 4;
  bool overlap = true;
};

struct TrainSummary {
  int64_t steps_done = 0;    // the final step counter
  int64_t total_steps = 0;   // train.steps
  double last_loss = 0;
  double seconds = 0;
  int signal = 0;            // stopped early by this signal (SIGTERM, SIGINT, SIGHUP), or 0
  std::string checkpoint;    // its path (rank 0's; empty on the other ranks)
};

TrainSummary train(const TrainOptions& opt);

}  // namespace sd
