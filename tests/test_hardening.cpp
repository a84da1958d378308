// Bad input in-process: configs with out-of-range or overflowing numbers, checkpoints with wrong
// dtypes, non-finite values or malformed metadata, shapes whose element count overflows,
// broadcasting with empty dimensions, and the Haar band convention.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "kernels/broadcast.h"
#include "kernels/registry.h"
#include "model/checkpoint.h"
#include "model/uvit.h"
#include "runtime/safetensors.h"
#include "tests/error_of.h"
#include "tests/temp_dir.h"
#include "tools/session.h"

namespace sd {
namespace {

using ::testing::HasSubstr;

const std::string kTiny = std::string(SIMDIFF_SOURCE_DIR) + "/tests/data/tiny.json";

nlohmann::json tiny_json() {
  std::ifstream f(kTiny);
  return nlohmann::json::parse(f);
}

std::string config_error(const nlohmann::json& j) {
  return error_of([&] { Config::from_json(j, "test.json"); });
}

// ---- config numbers ----

TEST(ConfigHardening, IntegersOutsideTheFieldAreRefusedNotTruncated) {
  for (auto [section, key] : {std::pair{"train", "batch_size"}, {"model", "resolution"},
                              {"model", "heads"}, {"sample", "steps"}}) {
    auto j = tiny_json();
    j[section][key] = 4294967297LL;  // 2^32 + 1: an int would read 1
    EXPECT_THAT(config_error(j), HasSubstr(std::string(section) + "." + key)) << key;
    EXPECT_THAT(config_error(j), HasSubstr("4294967297")) << key;
  }
  auto j = tiny_json();
  j["train"]["steps"] = 18446744073709551615ULL;  // above int64: must not wrap to -1
  EXPECT_THAT(config_error(j), HasSubstr("train.steps"));
  j = tiny_json();
  j["train"]["seed"] = -1;
  EXPECT_THAT(config_error(j), HasSubstr("train.seed"));
}

TEST(ConfigHardening, OptimizerSettingsAreValidated) {
  auto bad = [](const char* key, double v, const char* expect) {
    auto j = tiny_json();
    j["train"][key] = v;
    EXPECT_THAT(config_error(j), HasSubstr(std::string("train.") + key)) << key << " = " << v;
    EXPECT_THAT(config_error(j), HasSubstr(expect)) << key << " = " << v;
  };
  bad("adam_eps", 0, "> 0");
  bad("adam_eps", -1e-8, "> 0");
  bad("adam_eps", 1e-50, "32-bit float");  // rounds to 0 in f32
  bad("lr", 1e39, "32-bit float");         // inf in f32
  bad("beta1", 1.0, "[0, 1)");
  bad("beta2", -0.1, "[0, 1)");
  bad("weight_decay", -1, ">= 0");
  bad("grad_clip", 1e39, "32-bit float");
  auto j = tiny_json();
  j["model"]["transformer_width"] = -8;
  EXPECT_THAT(config_error(j), HasSubstr("model.transformer_width"));
  j = tiny_json();
  j["sample"]["guidance_min_logsnr"] = 5;
  j["sample"]["guidance_max_logsnr"] = 1;
  EXPECT_THAT(config_error(j), HasSubstr("sample.guidance_min_logsnr"));
  j = tiny_json();
  j["model"]["transformer_depth"] = 20000;
  EXPECT_THAT(config_error(j), HasSubstr("model.transformer_depth"));
}

TEST(ConfigHardening, DuplicateKeysAndOverflowingNumbersNameTheFileAndKey) {
  TempDir dir;
  std::string p = dir / "c.json";
  std::ofstream(p) << R"({"train": {"lr": 1e-3, "steps": 3, "lr": 2e-3}})";
  std::string msg = error_of([&] { Config::load(p); });
  EXPECT_THAT(msg, HasSubstr(p));
  EXPECT_THAT(msg, HasSubstr("'train.lr' appears twice"));
  std::ofstream(p) << R"({"diffusion": {"noise_d": -1e400}})";
  msg = error_of([&] { Config::load(p); });
  EXPECT_THAT(msg, HasSubstr(p));
  EXPECT_THAT(msg, HasSubstr("diffusion.noise_d"));
}

// ---- model size ----

// Declaring parameters is linear in their number: 20000 transformer blocks (240k parameters)
// declare at once; the duplicate-name check used to compare every pair (minutes).
TEST(ModelHardening, DeepModelDeclaresItsParametersInLinearTime) {
  Config c = Config::load(kTiny);
  c.model.transformer_depth = 20000;  // past the config's bound: built directly
  ParamStore ps;
  UViT model(c.model, ps);
  EXPECT_GT(ps.params().size(), 200000u);
  std::string name = ps.params()[123456].name;
  EXPECT_THROW(ps.declare(name, {1}, {}), Error) << name;  // duplicates are still refused
}

// ---- checkpoints ----

struct CkptFixture {
  TempDir dir;
  std::string path = dir / "ckpt.safetensors";
  Config cfg = Config::load(kTiny);
  ModelSession s{cfg, Device::CPU, 1};
  CkptFixture() {
    TrainState st{s.ps.values().clone(), Tensor::zeros({s.ps.count()}),
                  Tensor::zeros({s.ps.count()}), 3, 1};
    save_checkpoint(path, cfg, s.ps, st);
  }
  // Rewrites the checkpoint through `edit`.
  template <class F>
  void edit(F f) {
    SafeTensors t = load_safetensors(path);
    f(t);
    save_safetensors(path, t.tensors, t.metadata);
  }
  std::string load_error(const std::string& prefix = "params.") {
    return error_of([&] {
      LoadedCheckpoint ck = read_checkpoint(path);
      ModelSession m(ck.config, Device::CPU, 0);
      load_weights(ck, m.ps, prefix, path);
    });
  }
};

TEST(CheckpointHardening, MetadataNumbersAreParsedWhole) {
  for (auto [key, value] : {std::pair{"step", "12abc"}, {"step", "-4"}, {"seed", "-1"},
                            {"seed", " 7"}, {"step", ""}}) {
    CkptFixture f;
    f.edit([&](SafeTensors& t) { t.metadata[key] = value; });
    std::string msg = f.load_error();
    EXPECT_THAT(msg, HasSubstr(f.path)) << key << "=" << value;
    EXPECT_THAT(msg, HasSubstr(std::string("'") + key + "'")) << key << "=" << value;
  }
}

TEST(CheckpointHardening, WrongDtypesAndNonFiniteValuesAreRefused) {
  {
    CkptFixture f;
    f.edit([](SafeTensors& t) {
      Tensor& w = t.tensors.at("params.embed.w");
      w = w.to(DType::I32);
    });
    std::string msg = f.load_error();
    EXPECT_THAT(msg, HasSubstr("'params.embed.w'"));
    EXPECT_THAT(msg, HasSubstr("I32"));
  }
  {
    CkptFixture f;
    f.edit([](SafeTensors& t) { t.tensors.at("ema.embed.w").data<float>()[5] = NAN; });
    std::string msg = f.load_error("ema.");
    EXPECT_THAT(msg, HasSubstr("'ema.embed.w'"));
    EXPECT_THAT(msg, HasSubstr("not finite"));
  }
  {
    CkptFixture f;
    f.edit([](SafeTensors& t) { t.tensors.at("adam_v.embed.w").data<float>()[0] = -1; });
    std::string msg = error_of([&] {
      LoadedCheckpoint ck = read_checkpoint(f.path);
      TrainState st{f.s.ps.values().clone(), Tensor::zeros({f.s.ps.count()}),
                    Tensor::zeros({f.s.ps.count()}), 0, 0};
      load_train_state(ck, f.s.ps, st, f.path);
    });
    EXPECT_THAT(msg, HasSubstr("'adam_v.embed.w'"));
  }
}

TEST(CheckpointHardening, NonFiniteStateIsNeverWritten) {
  CkptFixture f;
  std::string before;
  {
    std::ifstream in(f.path, std::ios::binary);
    before.assign(std::istreambuf_iterator<char>(in), {});
  }
  TrainState st{f.s.ps.values().clone(), Tensor::zeros({f.s.ps.count()}),
                Tensor::zeros({f.s.ps.count()}), 4, 1};
  st.ema.data<float>()[7] = INFINITY;
  std::string msg = error_of([&] { save_checkpoint(f.path, f.cfg, f.s.ps, st); });
  EXPECT_THAT(msg, HasSubstr("not finite"));
  EXPECT_THAT(msg, HasSubstr("ema."));
  std::ifstream in(f.path, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), before);
}

// ---- shapes ----

TEST(ShapeHardening, BroadcastingWithAnEmptyDimensionFollowsNumPy) {
  EXPECT_EQ(broadcast_shape(make_broadcast("add", {2, 0, 3}, {3})), (Shape{2, 0, 3}));
  EXPECT_EQ(broadcast_shape(make_broadcast("add", {0}, {1})), (Shape{0}));
  EXPECT_EQ(broadcast_shape(make_broadcast("add", {1}, {0})), (Shape{0}));
  EXPECT_EQ(broadcast_shape(make_broadcast("add", {2, 1}, {1, 0})), (Shape{2, 0}));
  EXPECT_THROW(make_broadcast("add", {2}, {0}), Error);  // 2 vs 0: neither is 1
  Tensor a = Tensor::empty({2, 0, 3}), b = Tensor::from_floats({1, 2, 3}, {3});
  std::vector<Tensor> y = run_forward("add", {a, b});
  EXPECT_EQ(y[0].shape(), (Shape{2, 0, 3}));
  std::vector<Tensor> g = run_backward("add", {a, b}, y, {y[0]}, {true, true});
  EXPECT_EQ(g[1].to_floats(), (std::vector<float>{0, 0, 0}));  // a sum over nothing
}

TEST(ShapeHardening, ElementCountOverflowIsRefused) {
  const int64_t big = int64_t(1) << 32;
  for (Shape s : {Shape{big, big}, Shape{(int64_t(1) << 62) + 1, 4}, Shape{big, 0, big}}) {
    std::string msg = error_of([&] {
      run_forward_on(Device::CPU, "random_uniform", {{"shape", s}, {"seed", 1}, {"offset", 0}});
    });
    EXPECT_THAT(msg, HasSubstr("overflow")) << shape_str(s);
  }
  EXPECT_THAT(error_of([&] { Tensor::empty({big, big}); }), HasSubstr("overflow"));
}

// ---- the Haar band convention, as documented in kernels/cpu/wavelet.cpp ----

// One 2x2 block [[a, b], [c, d]] (rows along H): the first band letter is the filter along H,
// the second along W; high-pass is first minus second sample. pywt.dwt2(x, 'haar') returns
// (cA, (cH, cV, cD)) = (LL, (HL, LH, HH)) with the same signs.
TEST(HaarConvention, BandsAreLowHighAlongHThenW) {
  float a = 1, b = 2, c = 4, d = 8;
  Tensor x = Tensor::from_floats({a, b, c, d}, {1, 1, 2, 2});
  std::vector<float> y = run_forward("haar_dwt", {x})[0].to_floats();
  EXPECT_FLOAT_EQ(y[0], (a + b + c + d) / 2);  // LL
  EXPECT_FLOAT_EQ(y[1], (a - b + c - d) / 2);  // LH: low along H, high along W (pywt cV)
  EXPECT_FLOAT_EQ(y[2], (a + b - c - d) / 2);  // HL: high along H, low along W (pywt cH)
  EXPECT_FLOAT_EQ(y[3], (a - b - c + d) / 2);  // HH (pywt cD)
  // Values pywt 1.x gives for this block: cA 7.5, cH -4.5, cV -2.5, cD 1.5.
  EXPECT_FLOAT_EQ(y[0], 7.5f);
  EXPECT_FLOAT_EQ(y[2], -4.5f);
  EXPECT_FLOAT_EQ(y[1], -2.5f);
  EXPECT_FLOAT_EQ(y[3], 1.5f);
}

}  // namespace
}  // namespace sd
