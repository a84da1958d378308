// simdiff info: what a checkpoint holds: its config, step, and parameters per module; with
// --device cuda also the device memory one training step of the model takes (the caching
// allocator's statistics, runtime/caching_allocator.h).
#include <algorithm>
#include <iomanip>
#include <iostream>

#include "model/checkpoint.h"
#include "runtime/allocator.h"
#include "tools/cli.h"
#include "tools/session.h"

namespace sd::cli {

namespace {
const Command kInfo{
    "simdiff info", "", 0,
    "Prints a checkpoint's config, training step and parameter count per module. With --device\n"
    "cuda it also runs one training step of the model on the GPU (random images, no update) and\n"
    "prints the device memory the step took: the most held from the device (tensors plus the\n"
    "allocator's cache) and in use by tensors, cudaMalloc calls; a training run holds the EMA\n"
    "and the two AdamW moments on top of that.",
    {{"ckpt", "FILE", "", "checkpoint written by simdiff train", true},
     {"device", "cpu|cuda|auto", "cpu", "cuda: also measure one training step's device memory"},
     {"batch", "N", "", "that step's batch, 1..65536 (default: train.batch_size)"}},
    "example:\n  simdiff info --ckpt runs/demo/ckpt.safetensors --device cuda --batch 64"};

// "down.0.1.conv1.w" -> "down.0", "mid.block.3.qkv.w" -> "mid.block.3", "embed.w" -> "embed".
std::string module_of(const std::string& name) {
  size_t dot = name.find('.');
  std::string head = name.substr(0, dot);
  if (head == "down" || head == "up") return name.substr(0, name.find('.', dot + 1));
  if (name.rfind("mid.block.", 0) == 0) return name.substr(0, name.find('.', 10));
  return head;
}
// One training step (loss and backward, no optimizer) of the checkpoint's model on the GPU, from
// random images, then the allocator's statistics.
void step_memory(const LoadedCheckpoint& ck, const std::string& path, const Args& a) {
  const Config& cfg = ck.config;
  int64_t B = a.has("batch") ? a.get_int("batch", 1, 65536) : cfg.train.batch_size;
  ModelSession s(cfg, Device::CUDA, ck.seed);
  load_weights(ck, s.ps, "params.", path);
  const ModelConfig& m = cfg.model;
  Tensor x = run_forward_on(Device::CUDA, "random_normal",
                            {{"shape", {B, m.channels, m.resolution, m.resolution}},
                             {"seed", ck.seed},
                             {"offset", 0}})[0];
  ForwardCtx ctx;
  ctx.train = true;
  ctx.seed = ck.seed;
  Tensor labels = Tensor::zeros({B}, DType::I32, Device::CUDA);
  LossResult r = diffusion_loss(*s.model, cfg.diffusion, x, labels, cfg.train.label_dropout,
                                ck.seed, StepStreams(0), ctx);
  backward(r.loss);
  device_synchronize();
  std::cout << "\none training step on cuda, batch " << B << ":\n  "
            << describe_device_memory(device_alloc_stats()) << "\n  a training run adds "
            << format_bytes(size_t(s.ps.count()) * 3 * sizeof(float))
            << " for the EMA and the AdamW moments\n";
}
}  // namespace

int cmd_info(int argc, char** argv) {
  Args a = parse(kInfo, argc, argv);
  if (a.help) {
    std::cout << help_text(kInfo);
    return 0;
  }
  std::string path = a.get("ckpt");
  LoadedCheckpoint ck = read_checkpoint(path);
  ModelSession s(ck.config, Device::CPU, ck.seed);
  load_weights(ck, s.ps, "params.", path);  // validates every tensor against the config
  std::cout << "checkpoint " << path << "\nstep " << ck.step << ", seed " << ck.seed << "\nconfig "
            << ck.config.to_json().dump(2) << "\n\nparameters per module:\n";
  // One row per module, in the order of its first parameter (a module's parameters need not be
  // declared together: the transformer's position table and final norm sit around its blocks).
  std::vector<std::pair<std::string, int64_t>> rows;
  for (auto& p : s.ps.params()) {
    std::string m = module_of(p.name);
    auto row = std::find_if(rows.begin(), rows.end(), [&](const auto& r) { return r.first == m; });
    if (row == rows.end()) row = rows.insert(rows.end(), {m, 0});
    row->second += shape_numel(p.shape);
  }
  auto print = [](const std::string& name, int64_t n) {
    std::cout << "  " << std::left << std::setw(16) << name << std::right << std::setw(12) << n
              << "\n";
  };
  for (auto& [m, n] : rows) print(m, n);
  print("total", s.ps.count());
  if (pick_device(a.get("device")) == Device::CUDA) step_memory(ck, path, a);
  return 0;
}

}  // namespace sd::cli
