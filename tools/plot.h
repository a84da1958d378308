// Training-curve charts as standalone SVG files (viewable in any browser, diffable as text).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sd {

struct PlotOptions {
  bool log_y = false;      // log10 y axis; non-positive values are then left out
  double smoothing = 0.9;  // EMA weight of the previous value (TensorBoard style); 0 = no EMA line
  int width = 800, height = 450;
  std::string x_label = "step", y_label = "loss";
};

// Line chart of (step, value) points: the raw series as a thin light line, its bias-corrected
// EMA (computed on the plotted scale, i.e. on log10 values for a log axis) as a bold line on
// top, with axes, grid, "nice" ticks and the title. Non-finite values are skipped; with no
// plottable point the chart says "no data". Written atomically; throws sd::Error naming `path`
// if it cannot write.
void write_loss_svg(const std::string& path, const std::vector<std::pair<int64_t, double>>& points,
                    const std::string& title, const PlotOptions& options = {});

// Several named series on one chart (a comparison: bf16 vs f32 training), each in its own
// colour (at most 4), the legend naming them.
struct Series {
  std::string name;
  std::vector<std::pair<int64_t, double>> points;
};
void write_loss_svg(const std::string& path, const std::vector<Series>& series,
                    const std::string& title, const PlotOptions& options = {});

}  // namespace sd
