#include "tools/session.h"

#include <unistd.h>

#include <cmath>

#include "tools/dist/comm.h"
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

ModelSession::ModelSession(const Config& c, Device device, uint64_t init_seed, bool training)
    : cfg(c) {
  // Declares the parameters, allocates nothing; activations in train.precision (model/uvit.h).
  model = std::make_unique<UViT>(cfg.model, ps, compute_dtype(cfg.train, device));
  const int arenas = training ? 5 : 2;
  const double gib = double(1 << 30);
  double need = double(ps.count()) * sizeof(float) * arenas / gib;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  double have = pages > 0 && page > 0 ? double(pages) * double(page) / gib : HUGE_VAL;
  const ModelConfig& m = cfg.model;
  SD_CHECK(need < have, "the model has ", double(ps.count()), " parameters (model.transformer_depth ",
           m.transformer_depth, ", model.transformer_width ", m.width(), ", model.base_channels ",
           m.base_channels, ", model.channel_mult ", m.channel_mult, "): ",
           training ? "training" : "running", " it needs ", need, " GiB for its weights, ",
           training ? "gradients, EMA and AdamW moments" : "and gradients",
           ", more than this machine's ", have, " GiB of memory");
  ps.finalize(device, init_seed);
}

Tensor sample_grid(const ModelSession& s, const SampleConfig& sc, int n, int only_class,
                   uint64_t seed, const std::string& png_path, bool show_progress, int pad) {
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
  dist::Comm& comm = dist::world();
  const int64_t B = int64_t(labels.size());
  std::vector<int64_t> rows_of;
  for (int r = 0; r < comm.size(); ++r) rows_of.push_back(dist::share_of(B, r, comm.size()).count);
  const dist::Share mine = dist::share_of(B, comm.rank(), comm.size());
  show_progress = show_progress && comm.root();
  Tensor x = Tensor::empty({mine.count, mc.channels, mc.resolution, mc.resolution});
  if (mine.count > 0) {
    std::vector<int32_t> my_labels(labels.begin() + mine.first,
                                   labels.begin() + mine.first + mine.count);
    Tensor y = Tensor::from_ints(my_labels, {mine.count}).to(s.ps.device());
    Schedule sched(s.cfg.diffusion, mc.resolution);
    ProgressBar bar("sample", sc.steps);
    SampleProgress prog;
    if (show_progress) prog.on_step = [&](int i, int) { bar.update(i); };
    x = sample(make_denoiser(*s.model, y, sc), sched,
               {mine.count, mc.channels, mc.resolution, mc.resolution}, s.ps.device(), sc, seed,
               prog, mine.first)
            .to(Device::CPU);
    if (show_progress) bar.finish("-> " + png_path);
  }
  if (comm.size() > 1) x = comm.gather_rows(x, rows_of);
  if (comm.root()) write_grid_png(png_path, x, cols, pad);
  return x;
}

}  // namespace sd
