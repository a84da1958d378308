// The training loop: data -> loss -> backward -> clip -> AdamW -> EMA, with progress, metrics,
// sample grids, a loss curve and atomic checkpoints; resumable exactly.
#pragma once
#include <string>

#include "model/config.h"

namespace sd {

struct TrainOptions {
  std::string out_dir = "runs/demo";
  std::string data;          // overrides train.data when set
  std::string device = "auto";
  bool resume = false;
  int64_t stop_after = -1;   // stop (with a checkpoint) after this many steps of this invocation
  bool progress = true;
};

struct TrainSummary {
  int64_t steps_done = 0;    // the final step counter
  double last_loss = 0;
  double seconds = 0;
};

TrainSummary train(const Config& cfg, const TrainOptions& opt);

}  // namespace sd
