// libFuzzer target: a checkpoint's bytes through read_checkpoint (format, config metadata, step
// and seed), then, for models small enough to build here, through load_weights and
// load_train_state (names, shapes, dtypes, finiteness). An sd::Error is a correct refusal; a
// crash, a sanitizer report or any other exception is a bug.
#include <cstdint>

#include "fuzz/fuzz_input.h"
#include "model/checkpoint.h"
#include "model/uvit.h"
#include "runtime/error.h"
#include "tools/session.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz_file(data, size);
  try {
    sd::LoadedCheckpoint ck = sd::read_checkpoint(path);
    {
      sd::ParamStore probe;  // declares the parameters only: cheap for any valid config
      sd::UViT model(ck.config.model, probe);
      if (probe.count() > 1'000'000) return 0;  // a large model is valid, not worth allocating
    }
    sd::ModelSession s(ck.config, sd::Device::CPU, ck.seed, /*training=*/true);
    sd::load_weights(ck, s.ps, "ema.", path);
    sd::TrainState st{s.ps.values().clone(), sd::Tensor::zeros({s.ps.count()}),
                      sd::Tensor::zeros({s.ps.count()}), 0, 0};
    sd::load_train_state(ck, s.ps, st, path);
  } catch (const sd::Error&) {
  }
  return 0;
}
