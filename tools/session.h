// What every command that touches a model needs: the device choice, the model built from a
// config with its parameters in place, and sample-grid writing.
#pragma once
#include <memory>
#include <string>

#include "model/diffusion.h"

namespace sd {

// "auto" picks cuda when this build has it and a device is present, else cpu.
Device pick_device(const std::string& name);

struct ModelSession {
  Config cfg;
  ParamStore ps;
  std::unique_ptr<UViT> model;
  // Builds the model; before allocating, refuses (with the figures) a model whose parameter
  // arenas do not fit in this machine's memory: weights and gradients, plus the EMA and the two
  // AdamW moments when `training`.
  ModelSession(const Config& cfg, Device device, uint64_t init_seed, bool training = false);
};

// Samples `per_class` images for every class (one grid row each) or `n` unconditional ones
// (a near-square grid) with the weights currently bound, and writes the PNG grid. Under mpirun
// every rank draws its share of the images (each image's noise is its own, so the grid is the
// one-process grid) and rank 0 gathers them, writes the grid and returns it (on the host);
// the other ranks return an undefined tensor. `pad` grey pixels surround every tile.
Tensor sample_grid(const ModelSession& s, const SampleConfig& sc, int n_or_per_class, int only_class,
                   uint64_t seed, const std::string& png_path, bool show_progress, int pad = 2);

}  // namespace sd
