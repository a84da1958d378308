#include "tools/session.h"

#include "tools/image_io.h"
#include "tools/progress.h"

namespace sd {

Device pick_device(const std::string& name) {
  if (name == "auto") return cuda_available() ? Device::CUDA : Device::CPU;
  Device d = device_from_name(name);
  SD_CHECK(d == Device::CPU || cuda_available(),
           "--device cuda: no CUDA device is available (or this build has no CUDA backend)");
  return d;
}

ModelSession::ModelSession(const Config& c, Device device, uint64_t init_seed) : cfg(c) {
  model = std::make_unique<UViT>(cfg.model, ps);
  ps.finalize(device, init_seed);
}

Tensor sample_grid(const ModelSession& s, const SampleConfig& sc, int n, int only_class,
                   uint64_t seed, const std::string& png_path, bool show_progress) {
  const ModelConfig& mc = s.cfg.model;
  std::vector<int32_t> labels;
  int cols = n;
  if (mc.num_classes > 0 && only_class < 0) {
    for (int c = 0; c < mc.num_classes; ++c)
      for (int i = 0; i < n; ++i) labels.push_back(c);
  } else {
    SD_CHECK(only_class < mc.num_classes, "--class ", only_class, " is out of range: the model has ",
             mc.num_classes, " classes");
    labels.assign(size_t(n), only_class >= 0 ? only_class : mc.num_classes);
    cols = 0;  // near-square
  }
  int64_t B = int64_t(labels.size());
  Tensor y = Tensor::from_ints(labels, {B}).to(s.ps.device());
  Schedule sched(s.cfg.diffusion, mc.resolution);
  ProgressBar bar("sample", sc.steps);
  SampleProgress prog;
  if (show_progress) prog.on_step = [&](int i, int) { bar.update(i); };
  Tensor x = sample(make_denoiser(*s.model, y, sc), sched,
                    {B, mc.channels, mc.resolution, mc.resolution}, s.ps.device(), sc, seed, prog);
  if (show_progress) bar.finish("-> " + png_path);
  write_grid_png(png_path, x, cols);
  return x;
}

}  // namespace sd
