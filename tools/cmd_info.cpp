// simdiff info: what a checkpoint holds: its config, step, and parameters per module.
#include <iomanip>
#include <iostream>

#include "model/checkpoint.h"
#include "tools/cli.h"
#include "tools/session.h"

namespace sd::cli {

namespace {
const Command kInfo{"simdiff info", "", 0,
                    "Prints a checkpoint's config, training step and parameter count per module.",
                    {{"ckpt", "FILE", "", "checkpoint written by simdiff train", true}},
                    ""};

// "down.0.1.conv1.w" -> "down.0", "mid.block.3.qkv.w" -> "mid.block.3", "embed.w" -> "embed".
std::string module_of(const std::string& name) {
  size_t dot = name.find('.');
  std::string head = name.substr(0, dot);
  if (head == "down" || head == "up") return name.substr(0, name.find('.', dot + 1));
  if (name.rfind("mid.block.", 0) == 0) return name.substr(0, name.find('.', 10));
  return head;
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
  std::vector<std::pair<std::string, int64_t>> rows;
  for (auto& p : s.ps.params()) {
    std::string m = module_of(p.name);
    if (rows.empty() || rows.back().first != m) rows.push_back({m, 0});
    rows.back().second += shape_numel(p.shape);
  }
  for (auto& [m, n] : rows) std::cout << "  " << std::left << std::setw(16) << m << std::right << std::setw(12) << n << "\n";
  std::cout << "  " << std::left << std::setw(16) << "total" << std::right << std::setw(12) << s.ps.count() << "\n";
  return 0;
}

}  // namespace sd::cli
