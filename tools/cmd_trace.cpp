// simdiff trace: one training step on a fixed batch, writing every named activation, its
// gradient, every parameter and its gradient, and what the step drew (t, noise, labels) to one
// safetensors file, so the whole forward/backward path can be studied or compared with another
// implementation (bench/torch_model.py loads it), and a short table of what the step computed
// (shape, statistics, gradient norm per tensor) to read at once: plain text on stdout, or
// Markdown with --markdown.
#include <cmath>
#include <cstdio>
#include <iostream>

#include "model/checkpoint.h"
#include "runtime/file_io.h"
#include "runtime/safetensors.h"
#include "tools/cli.h"
#include "tools/data/dataset.h"
#include "tools/session.h"

namespace sd::cli {

namespace {
const Command kTrace{
    "simdiff trace", "", 0,
    "Runs one training step (no optimizer update) on the first batch of the config's dataset and\n"
    "writes: input.x, input.labels (after label dropout), input.z, input.logsnr, input.v_target,\n"
    "input.weights, loss, act.<name> and grad.<name> for each named activation, param.<name> and\n"
    "grad_param.<name> for each parameter. Dropout uses the step's Philox stream.\n"
    "Prints a table of the inputs, each activation (in forward order) and the loss: shape, mean,\n"
    "std, min, max and the norm of the loss's gradient with respect to it (--params adds the\n"
    "parameters). docs/walkthrough.md follows the step through this table.",
    {{"config", "FILE", "", "JSON config", true},
     {"out", "FILE", "trace.safetensors", "file to write"},
     {"data", "SPEC", "", "dataset, overrides train.data"},
     {"batch", "N", "", "batch size, 1..65536 (default: train.batch_size)"},
     {"device", "auto|cpu|cuda", "cpu", "where to run"},
     {"ckpt", "FILE", "", "start from this checkpoint's weights (default: a fresh initialisation)"},
     {"markdown", "FILE", "", "write the table as Markdown to FILE (- for stdout) instead of printing it"},
     {"params", "", "", "add every parameter and its gradient to the table"}},
    "example:\n  simdiff trace --config configs/demo.json --batch 4 --out trace.safetensors"};

struct Row {
  std::string name;
  Tensor value, grad;  // grad undefined: no gradient (inputs, the loss itself)
};

struct Stats {
  double mean = 0, std = 0, min = 0, max = 0;
};

Stats stats_of(const Tensor& t) {
  std::vector<float> v = t.to_floats();
  Stats s;
  if (v.empty()) return s;
  s.min = s.max = v[0];
  double sum = 0;
  for (float x : v) {
    sum += x;
    s.min = std::min<double>(s.min, x);
    s.max = std::max<double>(s.max, x);
  }
  s.mean = sum / double(v.size());
  double sq = 0;
  for (float x : v) sq += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(sq / double(v.size()));
  return s;
}

double norm_of(const Tensor& t) {
  double sq = 0;
  for (float x : t.to_floats()) sq += double(x) * x;
  return std::sqrt(sq);
}

// One line per tensor: plain columns, or a Markdown table.
std::string table(const std::vector<Row>& rows, bool markdown) {
  auto num = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4g", v);
    return std::string(b);
  };
  std::vector<std::vector<std::string>> cells{
      {"tensor", "shape", "mean", "std", "min", "max", "grad norm"}};
  for (const Row& r : rows) {
    Stats st = stats_of(r.value);
    std::string shape = shape_str(r.value.shape());
    cells.push_back({markdown ? "`" + r.name + "`" : r.name, shape, num(st.mean), num(st.std),
                     num(st.min), num(st.max), r.grad.defined() ? num(norm_of(r.grad)) : "-"});
  }
  std::vector<size_t> width(cells[0].size(), 0);
  for (auto& row : cells)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::string out;
  for (size_t i = 0; i < cells.size(); ++i) {
    std::string line = markdown ? "|" : "";
    for (size_t c = 0; c < cells[i].size(); ++c) {
      std::string cell = cells[i][c];
      cell.resize(width[c], ' ');
      line += markdown ? " " + cell + " |" : (c ? "  " : "") + cell;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
    if (markdown && i == 0) {
      std::string rule = "|";
      for (size_t c = 0; c < width.size(); ++c) rule += std::string(width[c] + 2, '-') + "|";
      out += rule + "\n";
    }
  }
  return out;
}
}  // namespace

int cmd_trace(int argc, char** argv) {
  Args a = parse(kTrace, argc, argv);
  if (a.help) {
    std::cout << help_text(kTrace);
    return 0;
  }
  Config cfg = Config::load(a.get("config"));
  if (a.has("data")) cfg.train.data = a.get("data");
  int B = a.has("batch") ? int(a.get_int("batch", 1, 65536)) : cfg.train.batch_size;
  check_output_path(a.get("out"), "--out");
  const bool md_stdout = a.has("markdown") && a.get("markdown") == "-";
  if (a.has("markdown") && !md_stdout) check_output_path(a.get("markdown"), "--markdown");
  Device dev = pick_device(a.get("device"));
  ModelSession s(cfg, dev, cfg.train.seed);
  if (a.has("ckpt")) load_weights(read_checkpoint(a.get("ckpt")), s.ps, "params.", a.get("ckpt"));
  auto data = open_dataset(cfg.train.data, cfg.model.resolution, cfg.model.channels);
  int64_t chw = int64_t(cfg.model.channels) * cfg.model.resolution * cfg.model.resolution;
  Tensor x = Tensor::empty({B, cfg.model.channels, cfg.model.resolution, cfg.model.resolution});
  Tensor y = Tensor::empty({B}, DType::I32);
  for (int b = 0; b < B; ++b)
    data->get(b % data->size(), x.data<float>() + b * chw, y.data<int32_t>() + b);

  std::vector<Variable> acts;
  ForwardCtx ctx;
  ctx.train = true;
  ctx.seed = cfg.train.seed;
  ctx.trace = &acts;
  LossResult r = diffusion_loss(*s.model, cfg.diffusion, x.to(dev), y.to(dev),
                                cfg.train.label_dropout, cfg.train.seed, StepStreams(0), ctx);
  backward(r.loss);

  std::map<std::string, Tensor> out{{"input.x", x},          {"input.labels", r.labels},
                                    {"input.z", r.z},        {"input.logsnr", r.logsnr},
                                    {"input.v_target", r.v_target}, {"input.weights", r.weights},
                                    {"loss", r.loss.value()}};
  std::vector<Row> rows{{"input.x", x, {}}, {"input.z", r.z, {}}, {"input.v_target", r.v_target, {}}};
  for (auto& v : acts) {
    out["act." + v.name()] = v.value();
    if (v.grad().defined()) out["grad." + v.name()] = v.grad();
    rows.push_back({"act." + v.name(), v.value(), v.grad()});
  }
  rows.push_back({"loss", r.loss.value(), {}});
  for (auto& p : s.ps.params()) {
    out["param." + p.name] = p.var.value();
    out["grad_param." + p.name] = p.var.grad();
    if (a.flag("params")) rows.push_back({"param." + p.name, p.var.value(), p.var.grad()});
  }
  save_safetensors(a.get("out"), out, {{"config", cfg.to_json().dump()}});
  if (!a.has("markdown")) std::cout << table(rows, false);
  else if (md_stdout) std::cout << table(rows, true);
  else write_output_file(a.get("markdown"), table(rows, true));
  (md_stdout ? std::cerr : std::cout) << "loss " << r.loss.value().item() << "; wrote "
                                       << out.size() << " tensors to " << a.get("out") << "\n";
  return 0;
}

}  // namespace sd::cli
