// The method end to end on the CPU: config validation, the loss, the sampler on a case with an
// analytic optimum, overfitting one batch, checkpoints, and the CLI train -> sample path.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "model/checkpoint.h"
#include "runtime/safetensors.h"
#include "tests/run_simdiff.h"
#include "tools/data/dataset.h"
#include "tools/session.h"

namespace sd {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kTiny = std::string(SIMDIFF_SOURCE_DIR) + "/tests/data/tiny.json";

nlohmann::json tiny_json() {
  std::ifstream f(kTiny);
  return nlohmann::json::parse(f);
}

std::string config_error(const nlohmann::json& j) {
  try {
    Config::from_json(j, "test.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, RefusesBadConfigsNamingTheKey) {
  auto j = tiny_json();
  j["model"]["hedas"] = 4;
  EXPECT_THAT(config_error(j), HasSubstr("unknown key 'model.hedas'"));
  j = tiny_json();
  j["model"]["heads"] = "four";
  EXPECT_THAT(config_error(j), HasSubstr("'model.heads' = \"four\": expected an integer"));
  j = tiny_json();
  j["model"]["heads"] = 3;  // width 16 is not divisible by 3
  EXPECT_THAT(config_error(j), HasSubstr("'model.heads' = 3: must divide the transformer width 16"));
  j = tiny_json();
  j["model"]["resolution"] = 6;  // 6 -> 3 after the DWT: not divisible by 2 for two levels
  EXPECT_THAT(config_error(j), HasSubstr("'model.channel_mult' = [1,2]: the input resolution after downsampling (3)"));
  j = tiny_json();
  j["model"]["resolution"] = 9;
  EXPECT_THAT(config_error(j), HasSubstr("'model.resolution' = 9: not divisible by 2^dwt_levels = 2"));
  j = tiny_json();
  j["diffusion"]["loss_resolutions"] = {3};
  EXPECT_THAT(config_error(j), HasSubstr("diffusion.loss_resolutions"));
  j = tiny_json();
  j["training"] = nlohmann::json::object();
  EXPECT_THAT(config_error(j), HasSubstr("unknown key 'training'"));
  EXPECT_EQ(config_error(tiny_json()), "");
}

TEST(Config, RoundTripsThroughJson) {
  Config c = Config::load(kTiny);
  Config d = Config::from_json(c.to_json(), "round trip");
  EXPECT_EQ(c.to_json(), d.to_json());
}

TEST(Schedule, ShiftMatchesTheNotes) {
  DiffusionConfig d;
  d.schedule = "cosine";
  Schedule cos(d, 256);
  d.schedule = "shifted";
  Schedule shifted(d, 256);
  for (double t : {0.1, 0.5, 0.9}) EXPECT_NEAR(shifted.logsnr(t) - cos.logsnr(t), -2.7726, 1e-4);
  EXPECT_NEAR(cos.logsnr(0.0), 15, 1e-4);
  EXPECT_NEAR(cos.logsnr(1.0), -15, 1e-4);
}

// Loss with one scale of weight 1 is the plain eps-space loss alpha^2 * mse(v_hat, v).
TEST(Loss, OneTermMultiscaleEqualsPlainLoss) {
  Config c = Config::load(kTiny);
  c.model.dropout = 0;
  ModelSession s(c, Device::CPU, 3);
  Tensor x = Tensor::empty({4, 3, 8, 8});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = float(std::sin(0.37 * i));
  Tensor y = Tensor::from_ints({0, 1, 2, 3}, {4});
  auto loss_with = [&](std::vector<int> res, std::vector<double> w) {
    DiffusionConfig d = c.diffusion;
    d.loss_resolutions = res;
    d.loss_weights = w;
    ForwardCtx ctx;
    return diffusion_loss(*s.model, d, x, y, 0.0, 5, StepStreams(7), ctx);
  };
  LossResult plain = loss_with({}, {});
  LossResult one = loss_with({8}, {1.0});
  EXPECT_DOUBLE_EQ(plain.loss.value().item(), one.loss.value().item());
  // And by hand: mean_b alpha_b^2 * mean((v_hat - v)^2).
  ForwardCtx ctx;
  Tensor v_hat = (*s.model)(Variable(plain.z), plain.logsnr, plain.labels, ctx).value();
  Tensor alpha = run_forward("alpha_sigma", {plain.logsnr})[0];
  double total = 0;
  int64_t per = v_hat.numel() / 4;
  for (int b = 0; b < 4; ++b) {
    double m = 0;
    for (int64_t i = 0; i < per; ++i) {
      double dlt = v_hat.data<float>()[b * per + i] - plain.v_target.data<float>()[b * per + i];
      m += dlt * dlt / per;
    }
    double a = alpha.data<float>()[b];
    total += a * a * m / 4;
  }
  EXPECT_NEAR(plain.loss.value().item(), total, 1e-6 * std::max(1.0, total));
  // Two scales differ from one.
  EXPECT_NE(loss_with({4, 8}, {1.0, 1.0}).loss.value().item(), plain.loss.value().item());
}

// Data x ~ N(mu, s^2) per pixel: the optimal denoiser is E[x | z] = mu + a s^2 / (a^2 s^2 + sig^2)
// (z - a mu). Samples drawn with it must have mean mu and variance s^2 up to sampling error.
TEST(Sampler, ReproducesAGaussianWithTheAnalyticDenoiser) {
  const double mu = 0.3, sd_ = 0.5;
  DiffusionConfig d;
  d.schedule = "cosine";
  Schedule sched(d, 64);
  Denoiser f = [&](const Tensor& z, const Tensor& logsnr) {
    Tensor as = run_forward("alpha_sigma", {logsnr})[0];
    Tensor sg = run_forward("alpha_sigma", {logsnr})[1];
    Tensor v = Tensor::empty(z.shape());
    int64_t per = z.numel() / z.dim(0);
    for (int64_t b = 0; b < z.dim(0); ++b) {
      double a = as.data<float>()[b], s = sg.data<float>()[b];
      for (int64_t i = 0; i < per; ++i) {
        double zz = z.data<float>()[b * per + i];
        double xh = mu + a * sd_ * sd_ / (a * a * sd_ * sd_ + s * s) * (zz - a * mu);
        v.data<float>()[b * per + i] = float((a * zz - xh) / s);  // x_hat = a z - s v
      }
    }
    return v;
  };
  for (std::string mode : {"ddpm", "ddim"}) {
    SampleConfig sc;
    sc.steps = 200;
    sc.sampler = mode;
    sc.clip_x = false;
    Tensor x = sample(f, sched, {4000, 1, 1, 1}, Device::CPU, sc, 11);
    double m = 0, v = 0;
    for (int64_t i = 0; i < x.numel(); ++i) m += x.data<float>()[i] / x.numel();
    for (int64_t i = 0; i < x.numel(); ++i) v += std::pow(x.data<float>()[i] - m, 2) / (x.numel() - 1);
    // Standard errors with n = 4000: mean 0.008, variance ~0.0056; allow ~4 sigma.
    EXPECT_NEAR(m, mu, 0.035) << mode;
    EXPECT_NEAR(v, sd_ * sd_, 0.03) << mode;
  }
}

// A fixed batch with fixed t and noise: the model must be able to fit it.
TEST(Train, OverfitsOneBatch) {
  Config c = Config::load(kTiny);
  c.model.dropout = 0;
  ModelSession s(c, Device::CPU, 1);
  auto data = open_dataset("shapes:4", 8, 3);
  Tensor x = Tensor::empty({4, 3, 8, 8}), y = Tensor::empty({4}, DType::I32);
  for (int b = 0; b < 4; ++b) data->get(b, x.data<float>() + b * 192, y.data<int32_t>() + b);
  Tensor m = Tensor::zeros({s.ps.count()}), v = Tensor::zeros({s.ps.count()});
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    s.ps.zero_grad();
    ForwardCtx ctx;
    LossResult r = diffusion_loss(*s.model, c.diffusion, x, y, 0.0, 9, StepStreams(0), ctx);
    backward(r.loss);
    run_forward_into("adamw", {s.ps.values(), s.ps.grads(), m, v}, {s.ps.values(), m, v},
                     {{"lr", 3e-3}, {"step", step + 1}});
    (step == 0 ? first : last) = r.loss.value().item();
  }
  EXPECT_LT(last, first / 10) << "first " << first << " last " << last;
}

TEST(Checkpoint, RefusesMismatchAndCorruption) {
  fs::path dir = fs::temp_directory_path() / "simdiff_ckpt_test";
  fs::create_directories(dir);
  Config c = Config::load(kTiny);
  ModelSession s(c, Device::CPU, 1);
  TrainState st{s.ps.values().clone(), Tensor::zeros({s.ps.count()}), Tensor::zeros({s.ps.count()}), 3, 1};
  std::string path = (dir / "a.safetensors").string();
  save_checkpoint(path, c, s.ps, st);
  LoadedCheckpoint ck = read_checkpoint(path);
  EXPECT_EQ(ck.step, 3);

  Config wide = c;
  wide.model.base_channels = 16;
  ModelSession s2(wide, Device::CPU, 1);
  try {
    load_weights(ck, s2.ps, "ema.", path);
    ADD_FAILURE() << "a checkpoint of another shape was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("tensor 'ema.embed.w' has shape [8, 12, 3, 3] but the model config needs [16, 12, 3, 3]"));
  }
  // Truncated file.
  std::string cut = (dir / "cut.safetensors").string();
  {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  EXPECT_THROW(read_checkpoint(cut), Error);
  // A safetensors file that is not a checkpoint.
  std::string other = (dir / "other.safetensors").string();
  save_safetensors(other, {{"x", Tensor::zeros({2})}});
  try {
    read_checkpoint(other);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("not a simdiff checkpoint"));
  }
  fs::remove_all(dir);
}

// ---- through the command-line tool ----

TEST(Cli, TrainThenSample) {
  fs::path dir = fs::temp_directory_path() / "simdiff_cli_test";
  fs::remove_all(dir);
  ASSERT_EQ(run_simdiff_status("train --quiet --device cpu --config " + kTiny + " --steps 8 --out " + dir.string()), 0);
  EXPECT_TRUE(fs::exists(dir / "ckpt.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "loss.svg"));
  EXPECT_TRUE(fs::exists(dir / "samples" / "final.png"));
  EXPECT_EQ(metric_losses(dir / "metrics.jsonl").size(), 8u);
  std::string ck = (dir / "ckpt.safetensors").string();
  ASSERT_EQ(run_simdiff_status("sample --device cpu --ckpt " + ck + " --n 2 --steps 3 --out " + (dir / "g.png").string()), 0);
  EXPECT_TRUE(fs::exists(dir / "g.png"));
  ASSERT_EQ(run_simdiff_status("info --ckpt " + ck + " > " + (dir / "info.txt").string()), 0);
  {  // one row per module, even where a module's parameters are not declared together ("mid")
    std::ifstream info(dir / "info.txt");
    std::string line;
    while (std::getline(info, line) && line != "parameters per module:") {
    }
    std::set<std::string> seen;
    while (std::getline(info, line) && line.rfind("  ", 0) == 0) {
      std::string module = line.substr(2, line.find(' ', 2) - 2);
      EXPECT_TRUE(seen.insert(module).second) << "info lists module '" << module << "' twice";
    }
    EXPECT_TRUE(seen.count("mid") && seen.count("total")) << seen.size() << " rows";
  }
  ASSERT_EQ(run_simdiff_status("trace --config " + kTiny + " --batch 2 --out " + (dir / "t.safetensors").string()), 0);
  SafeTensors t = load_safetensors((dir / "t.safetensors").string());
  EXPECT_TRUE(t.tensors.count("grad_param.embed.w"));
  EXPECT_TRUE(t.tensors.count("act.mid.block.0"));
  EXPECT_NE(run_simdiff_status("sample --ckpt " + (dir / "missing.safetensors").string() + " 2>/dev/null"), 0);
  fs::remove_all(dir);
}

// A run killed with SIGKILL and resumed logs the same loss at every step as an uninterrupted run.
TEST(Cli, KillAndResumeIsExact) {
  fs::path base = fs::temp_directory_path() / "simdiff_resume_test";
  fs::remove_all(base);
  std::string common = "train --quiet --device cpu --config " + kTiny + " --out ";
  ASSERT_EQ(run_simdiff_status(common + (base / "full").string()), 0);
  std::vector<double> full = metric_losses(base / "full" / "metrics.jsonl");
  ASSERT_EQ(full.size(), 24u);

  // SIGKILL the run after step 10: past the checkpoint at step 8, mid-way to the next one.
  fs::path killed = base / "killed";
  std::string env = "SIMDIFF_FAULT_KILL_AT=step:10 ";
  EXPECT_NE(std::system((env + SIMDIFF_BINARY + " " + common + killed.string() + " 2>/dev/null").c_str()), 0);
  ASSERT_EQ(metric_losses(killed / "metrics.jsonl").size(), 10u);
  ASSERT_EQ(run_simdiff_status(common + killed.string() + " --resume"), 0);
  std::vector<double> resumed = metric_losses(killed / "metrics.jsonl");
  ASSERT_EQ(resumed.size(), full.size());
  for (size_t i = 0; i < full.size(); ++i) EXPECT_EQ(resumed[i], full[i]) << "step " << i + 1;
  fs::remove_all(base);
}

}  // namespace
}  // namespace sd
