// A one-line progress bar on stderr: "train  1234/2000 [=========>     ] 61% loss 0.0312 | 41.2 img/s | ETA 3m05s".
// On a terminal it redraws in place; otherwise (CI logs, pipes) it prints a line every few seconds.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace sd {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, int64_t start = 0);
  // `done` items finished; `items_per_unit` converts to a rate (images per step); `extra` is shown.
  void update(int64_t done, const std::string& extra = "", double items_per_unit = 0);
  void finish(const std::string& extra = "");
  // A line of its own ("samples: wrote runs/demo/samples/step_000500.png"); on a terminal the bar
  // is cleared first and redrawn by the next update.
  void note(const std::string& line);

 private:
  std::string label_;
  int64_t total_, start_;
  bool tty_;
  std::chrono::steady_clock::time_point t0_, last_print_;
};

std::string format_duration(double seconds);  // "3m05s", "1h02m", "12.3s"

}  // namespace sd
