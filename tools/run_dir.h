// The output directory of a training run, and every write into it. A run directory holds
//   ckpt.safetensors  weights, EMA, AdamW state, step, seed, config (atomic temp + rename)
//   metrics.jsonl     one JSON line per step (appended, each write checked; rewritten
//                     atomically on resume)
//   config.json       the run's config (atomic)
//   loss.svg          the loss curve (atomic)
//   samples/*.png     sample grids (atomic)
//   train.lock        held (flock) by the one process training into the directory
// Nothing is written before lock(); a second process is refused there.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/checkpoint.h"
#include "runtime/file_io.h"

namespace sd {

class RunDir {
 public:
  // Refuses a path that exists and is not a directory; creates and writes nothing.
  explicit RunDir(std::string path);

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string checkpoint_path() const { return file("ckpt.safetensors"); }
  bool exists() const;
  bool has_checkpoint() const;
  bool has_metrics() const;
  // Holds the files of a run (checkpoint, metrics or config).
  bool holds_run() const;

  // Creates the directory when needed and takes an exclusive lock on train.lock for the life of
  // this object; refuses, naming the holder's pid when known, when another process holds it.
  // Then removes the temp files that killed writers left (a live process's are left alone).
  // Idempotent.
  void lock();
  // --overwrite: deletes the run's files (not the lock, not unrelated files).
  void clear_run();

  // Starts logging at `step` (0 for a new run, the checkpoint's step on resume): creates
  // samples/, writes config.json, keeps the metrics lines up to `step` (a run killed after its
  // checkpoint logged more; the rewrite is atomic) and returns their (step, loss) points for the
  // loss curve.
  std::vector<std::pair<int64_t, double>> begin(const Config& cfg, int64_t step,
                                                bool resumed);
  void log_step(const nlohmann::json& line);
  // Writes the checkpoint (refused, the old one left as it was, when the state is not finite),
  // after making the metrics logged so far durable, then the loss curve.
  void save(const Config& cfg, const ParamStore& ps, const TrainState& st,
            const std::vector<std::pair<int64_t, double>>& curve);
  void finish();  // closes metrics.jsonl, checking the close
  // "the last checkpoint, DIR/ckpt.safetensors (step 8), is left as it was", or that there is none.
  std::string checkpoint_note() const;

 private:
  std::string path_;
  Fd lock_;
  std::optional<AppendFile> metrics_;
  int64_t checkpoint_step_ = -1;  // of the file on disk; -1: none
};

}  // namespace sd
