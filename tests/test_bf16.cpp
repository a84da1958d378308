// Mixed precision on the CPU (bf16 storage, f32 compute; kernels/registry.h, model/uvit.h):
//   Bf16Cast       the cast op: round to nearest even, ties to even, NaN stays NaN, overflow to
//                  inf, bf16 -> f32 exact; its gradient converted back;
//   Bf16Adapter    a bf16 call is the f32 kernel on widened inputs with each bf16 result rounded
//                  once (bitwise), f32 parameters beside bf16 activations, statistics in f32,
//                  an output aliasing its input, f64 refused next to bf16;
//   Bf16Registry   every op with a float input, forward and backward, within the accuracy rule
//                  of tests/bf16_rule.h (2x one bf16 rounding of the f64 result);
//   Bf16Model      a bf16 forward + backward: bf16 activations, f32 prediction and loss, f32
//                  parameter gradients close to the f32 run's;
//   Bf16Train      `simdiff train` in bf16 against f32 (CI-sized): the losses track, the
//                  checkpoint stays f32, and sampling and tracing run in bf16.
//   Bf16Train.Demo500Steps  the evidence run, not for CI (minutes): configs/demo.json for 500
//                  steps in each precision, recorded in bench/RESULTS.md; runs when
//                  SIMDIFF_BF16_DEMO_OUT names a directory (the runs, the plot bf16_vs_f32.svg).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "runtime/allocator.h"
#include "runtime/safetensors.h"
#include "tests/bf16_rule.h"
#include "tests/error_of.h"
#include "tests/run_simdiff.h"
#include "tests/temp_dir.h"
#include "tools/data/dataset.h"
#include "tools/plot.h"
#include "tools/session.h"

namespace sd {
namespace {

float f32_of_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The bf16 bit patterns of cast(x, bf16) on the CPU.
std::vector<uint16_t> cast_bits(const std::vector<float>& x) {
  Tensor t = Tensor::from_floats(x, {int64_t(x.size())});
  Tensor y = run_forward("cast", {t}, {{"dtype", "bf16"}})[0];
  EXPECT_EQ(y.dtype(), DType::BF16);
  return std::vector<uint16_t>(y.data<uint16_t>(), y.data<uint16_t>() + y.numel());
}

TEST(Bf16Cast, RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1); 1 + 3 * 2^-8 is
  // halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
  std::vector<float> x = {f32_of_bits(0x3F808000), f32_of_bits(0x3F818000),
                          f32_of_bits(0x3F808001), f32_of_bits(0x3F807FFF),
                          f32_of_bits(0xBF818000), INFINITY, -INFINITY,
                          f32_of_bits(0x7F7FFFFF),  // FLT_MAX rounds up, past bf16's largest: inf
                          f32_of_bits(0x00010000),  // a subnormal that bf16 holds exactly
                          0.0f, -0.0f};
  std::vector<uint16_t> want = {0x3F80, 0x3F82, 0x3F81, 0x3F80, 0xBF82, 0x7F80,
                                0xFF80, 0x7F80, 0x0001, 0x0000, 0x8000};
  std::vector<uint16_t> got = cast_bits(x);
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_EQ(got[i], want[i]) << "cast of f32 bits 0x" << std::hex << [&] {
      uint32_t u;
      std::memcpy(&u, &x[i], 4);
      return u;
    }();
}

TEST(Bf16Cast, NanStaysNan) {
  // Truncating a NaN whose payload sits in the low 16 bits would give inf (0x7F80): it must not.
  for (uint32_t bits : {0x7FC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu}) {
    uint16_t h = cast_bits({f32_of_bits(bits)})[0];
    EXPECT_TRUE(std::isnan(bf16_to_f32(h))) << std::hex << bits << " -> " << h;
  }
}

TEST(Bf16Cast, WideningIsExactAndRoundTrips) {
  Tensor all = Tensor::empty({1 << 16}, DType::BF16);
  for (int i = 0; i < (1 << 16); ++i) all.data<uint16_t>()[i] = uint16_t(i);
  Tensor wide = run_forward("cast", {all}, {{"dtype", "f32"}})[0];
  Tensor back = run_forward("cast", {wide}, {{"dtype", "bf16"}})[0];
  for (int i = 0; i < (1 << 16); ++i) {
    uint32_t u;
    float f = wide.data<float>()[i];
    std::memcpy(&u, &f, 4);
    if (std::isnan(f)) continue;  // NaNs come back quiet
    ASSERT_EQ(u, uint32_t(i) << 16) << "bf16 0x" << std::hex << i;
    ASSERT_EQ(back.data<uint16_t>()[i], uint16_t(i)) << "bf16 0x" << std::hex << i;
  }
}

TEST(Bf16Cast, GradientIsConvertedBack) {
  Tensor x = random_uniform_tensor({4, 5}, 3, 0);
  Tensor y = run_forward("cast", {x}, {{"dtype", "bf16"}})[0];
  Tensor g = random_uniform_tensor({4, 5}, 3, 1, DType::BF16);
  Tensor gx = run_backward("cast", {x}, {y}, {g}, {true}, {{"dtype", "bf16"}})[0];
  ASSERT_EQ(gx.dtype(), DType::F32);
  EXPECT_EQ(gx.to_floats(), g.to_floats());  // bf16 -> f32 is exact
  // The other way the gradient is rounded, once.
  Tensor g32 = random_uniform_tensor({4, 5}, 3, 2);
  Tensor gy = run_backward("cast", {y}, {x}, {g32}, {true}, {{"dtype", "f32"}})[0];
  ASSERT_EQ(gy.dtype(), DType::BF16);
  EXPECT_EQ(gy.to_floats(), g32.to(DType::BF16).to_floats());
}

TEST(Bf16Cast, RefusesAnUnknownDtype) {
  expect_error_containing([] { run_forward("cast", {Tensor::zeros({2})}, {{"dtype", "fp8"}}); },
                          "cast: attribute 'dtype'");
}

// ---- the adapter ----

std::vector<float> floats(const Tensor& t) { return t.to_floats(); }

TEST(Bf16Adapter, LinearIsTheF32KernelRoundedOnce) {
  Tensor x = random_uniform_tensor({5, 7}, 11, 0, DType::BF16);
  Tensor w = random_uniform_tensor({3, 7}, 11, 1, DType::BF16);
  Tensor b = random_uniform_tensor({3}, 11, 2);  // an f32 bias beside bf16 activations
  Tensor y = run_forward("linear", {x, w, b})[0];
  ASSERT_EQ(y.dtype(), DType::BF16);
  Tensor y32 = run_forward("linear", {x.to(DType::F32), w.to(DType::F32), b})[0];
  EXPECT_EQ(floats(y), floats(y32.to(DType::BF16)));

  Tensor g = random_uniform_tensor({5, 3}, 11, 3, DType::BF16);
  auto grads = run_backward("linear", {x, w, b}, {y}, {g}, {true, true, true});
  auto grads32 = run_backward("linear", {x.to(DType::F32), w.to(DType::F32), b},
                              {y.to(DType::F32)}, {g.to(DType::F32)}, {true, true, true});
  ASSERT_EQ(grads[0].dtype(), DType::BF16);
  ASSERT_EQ(grads[1].dtype(), DType::BF16);
  ASSERT_EQ(grads[2].dtype(), DType::F32);  // the f32 parameter's gradient is not rounded
  EXPECT_EQ(floats(grads[0]), floats(grads32[0].to(DType::BF16)));
  EXPECT_EQ(floats(grads[1]), floats(grads32[1].to(DType::BF16)));
  EXPECT_EQ(floats(grads[2]), floats(grads32[2]));
}

TEST(Bf16Adapter, StatisticsStayF32) {
  Tensor x = random_uniform_tensor({6, 16}, 12, 0, DType::BF16);
  Tensor g = random_uniform_tensor({16}, 12, 1), b = random_uniform_tensor({16}, 12, 2);
  auto out = run_forward("layer_norm", {x, g, b});
  auto out32 = run_forward("layer_norm", {x.to(DType::F32), g, b});
  ASSERT_EQ(out[0].dtype(), DType::BF16);
  for (size_t j = 1; j < out.size(); ++j) {
    ASSERT_EQ(out[j].dtype(), DType::F32) << "statistic " << j;
    EXPECT_EQ(floats(out[j]), floats(out32[j])) << "statistic " << j;
  }
  Tensor q = random_uniform_tensor({1, 2, 9, 8}, 12, 3, DType::BF16);
  auto att = run_forward("attention", {q, q, q});
  ASSERT_EQ(att.size(), 2u);
  EXPECT_EQ(att[0].dtype(), DType::BF16);
  EXPECT_EQ(att[1].dtype(), DType::F32) << "attention's log-sum-exp";
}

TEST(Bf16Adapter, InPlaceAliasReadsTheInputBeforeWriting) {
  Tensor a = random_uniform_tensor({1000}, 13, 0, DType::BF16);
  Tensor b = random_uniform_tensor({1000}, 13, 1, DType::BF16);
  Tensor want = run_forward("add", {a.to(DType::F32), b.to(DType::F32)})[0].to(DType::BF16);
  run_forward_into("add", {a, b}, {a});
  EXPECT_EQ(floats(a), floats(want));
  // An f32 accumulator taking a bf16 addend in place stays f32 and unrounded.
  Tensor acc = random_uniform_tensor({1000}, 13, 2);
  Tensor want32 = run_forward("add", {acc, b.to(DType::F32)})[0];
  run_forward_into("add", {acc, b}, {acc});
  EXPECT_EQ(floats(acc), floats(want32));
}

TEST(Bf16Adapter, RefusesF64BesideBf16) {
  Tensor x = Tensor::zeros({2, 3}, DType::F64), w = Tensor::zeros({4, 3}, DType::BF16);
  expect_error_containing([&] { run_forward("linear", {x, w, Tensor()}); },
                          "linear: 'w' expected dtype F64 like the first input");
  Tensor q = Tensor::zeros({1, 1, 4, 8}, DType::BF16), k = Tensor::zeros({1, 1, 4, 8});
  expect_error_containing([&] { run_forward("attention", {q, k, k}); }, "attention: 'k'");
}

// ---- every op ----

TEST(Bf16Registry, EveryOpWithinTwiceOneRounding) {
  set_alloc_poison(true);  // an unwritten element is NaN and fails the rule
  int ops = 0;
  for (const OpDef* def : Registry::get().all()) {
    uint64_t seed = 4242;
    bool checked = false;
    for (const TestCase& tc : def->tests) {
      try {
        checked |= bf16_rule::check_case(*def, tc, seed++, Device::CPU);
      } catch (const Error& e) {
        ADD_FAILURE() << def->name << " [" << tc.label << "] refused bf16: " << e.what();
      }
    }
    ops += checked;
  }
  set_alloc_poison(false);
  EXPECT_GT(ops, 30);
}

// The rule can fail: a sum accumulated in bf16 (rounded after every addition, as a kernel with a
// bf16 accumulator would) is far outside it, while the f32 accumulation the adapter does meets it.
TEST(Bf16Registry, TheRuleCatchesABf16Accumulator) {
  std::vector<float> v = random_uniform_tensor({4096}, 21, 0).to_floats();
  for (float& f : v) f = std::abs(f);  // positive: the total grows past where bf16 steps are 1
  Tensor x = Tensor::from_floats(v, {4096}).to(DType::BF16);
  Tensor ref = run_forward("sum", {x.to(DType::F64)})[0];
  float acc = 0;
  for (float v : x.to_floats()) acc = bf16_to_f32(f32_to_bf16(acc + v));
  Tensor bad = Tensor::full({}, acc, DType::BF16);
  bf16_rule::Errors e = bf16_rule::errors(bad, ref);
  EXPECT_GT(e.err, 2 * e.floor) << "bf16 accumulation: " << acc << ", f64: " << ref.item();
  Tensor good = Tensor::full({}, run_forward("sum", {x})[0].item(), DType::BF16);
  e = bf16_rule::errors(good, ref);
  EXPECT_LE(e.err, 2 * e.floor);
}

// ---- the model ----

const std::string kTiny = std::string(SIMDIFF_SOURCE_DIR) + "/tests/data/tiny.json";

struct StepResult {
  double loss;
  std::vector<float> grads;
  std::map<std::string, DType> act;  // traced activations' dtypes
};

StepResult one_step(const std::string& precision) {
  Config c = Config::load(kTiny);
  c.model.dropout = 0;
  c.train.precision = precision;
  ModelSession s(c, Device::CPU, 1);
  auto data = open_dataset("shapes:8", 8, 3);
  Tensor x = Tensor::empty({8, 3, 8, 8}), y = Tensor::empty({8}, DType::I32);
  for (int b = 0; b < 8; ++b) data->get(b, x.data<float>() + b * 192, y.data<int32_t>() + b);
  s.ps.zero_grad();
  std::vector<Variable> trace;
  ForwardCtx ctx;
  ctx.trace = &trace;
  LossResult r = diffusion_loss(*s.model, c.diffusion, x, y, 0.0, 5, StepStreams(0), ctx);
  backward(r.loss);
  StepResult out{r.loss.value().item(), s.ps.grads().to_floats(), {}};
  EXPECT_EQ(r.loss.value().dtype(), DType::F32);
  EXPECT_EQ(s.ps.grads().dtype(), DType::F32);
  for (auto& v : trace) out.act[v.name()] = v.dtype();
  return out;
}

TEST(Bf16Model, ForwardBackwardCloseToF32) {
  StepResult f = one_step("f32"), h = one_step("bf16");
  // Where the activations live: bf16 from the first convolution to the last, the conditioning
  // path and the prediction in f32.
  ASSERT_FALSE(h.act.empty());
  for (auto& [name, dt] : h.act) {
    bool f32_part = name == "cond" || name == "v_hat";
    EXPECT_EQ(dt, f32_part ? DType::F32 : DType::BF16) << name;
    EXPECT_EQ(f.act.at(name), DType::F32) << name;
  }
  EXPECT_NEAR(h.loss, f.loss, 0.005 * f.loss);  // measured: equal to 6 digits
  // Parameter gradients: relative L2 error against the f32 run (bf16 carries 8 bits: up to 0.4%
  // per rounding; measured 0.64%).
  double num = 0, den = 0;
  for (size_t i = 0; i < f.grads.size(); ++i) {
    ASSERT_TRUE(std::isfinite(h.grads[i])) << i;
    num += (double(h.grads[i]) - f.grads[i]) * (double(h.grads[i]) - f.grads[i]);
    den += double(f.grads[i]) * f.grads[i];
  }
  ASSERT_GT(den, 0);
  EXPECT_LT(std::sqrt(num / den), 0.03) << "relative L2 error of the parameter gradients";
}

TEST(Bf16Model, RefusesAnUnknownPrecision) {
  nlohmann::json j;
  {
    std::ifstream f(kTiny);
    j = nlohmann::json::parse(f);
  }
  j["train"]["precision"] = "fp16";
  expect_error_containing([&] { Config::from_json(j, "t.json"); }, "'train.precision' = \"fp16\"");
}

// ---- training through the CLI ----

// 48 steps of the tiny config in each precision, same seed, same batches: the bf16 losses track
// the f32 ones. Tolerance: the mean over each 16 steps within 1% (measured: 0.005%, every step
// within 0.03%; bench/RESULTS.md "bf16 vs f32 on the CPU" has the demo-sized run).
TEST(Bf16Train, LossTracksF32) {
  TempDir dir;
  nlohmann::json j;
  {
    std::ifstream f(kTiny);
    j = nlohmann::json::parse(f);
  }
  j["model"]["dropout"] = 0.0;
  j["train"]["steps"] = 48;
  j["train"]["ckpt_every"] = 48;
  std::map<std::string, std::vector<double>> loss;
  for (const char* p : {"f32", "bf16"}) {
    j["train"]["precision"] = p;
    std::string cfg = dir / (std::string(p) + ".json");
    std::ofstream(cfg) << j.dump();
    ASSERT_EQ(run_simdiff_status("train --quiet --device cpu --config " + cfg + " --out " + (dir / p)), 0) << p;
    loss[p] = metric_losses(dir / p + "/metrics.jsonl");
    ASSERT_EQ(loss[p].size(), 48u) << p;
  }
  for (int w = 0; w < 3; ++w) {
    double a = 0, b = 0;
    for (int i = 16 * w; i < 16 * (w + 1); ++i) a += loss["f32"][i], b += loss["bf16"][i];
    EXPECT_NEAR(b / a, 1.0, 0.01) << "steps " << 16 * w << ".." << 16 * (w + 1) - 1 << ": f32 mean "
                                  << a / 16 << ", bf16 mean " << b / 16;
  }
  // The checkpoint holds the f32 master weights, EMA and moments; sampling and tracing from it
  // run in its precision.
  std::string ck = dir / "bf16/ckpt.safetensors";
  SafeTensors st = load_safetensors(ck);
  for (auto& [name, t] : st.tensors) {
    if (is_float(t.dtype())) {
      EXPECT_EQ(t.dtype(), DType::F32) << name;
    }
  }
  ASSERT_EQ(run_simdiff_status("sample --device cpu --ckpt " + ck + " --n 2 --steps 3 --out " +
                (dir / "g.png") + " > /dev/null"),
            0);
  std::string cfg = dir / "bf16.json";
  ASSERT_EQ(run_simdiff_status("trace --config " + cfg + " --batch 2 --out " + (dir / "t.safetensors") +
                " > /dev/null"),
            0);
  SafeTensors t = load_safetensors(dir / "t.safetensors");
  ASSERT_TRUE(t.tensors.count("act.mid.block.0"));
  EXPECT_EQ(t.tensors.at("act.mid.block.0").dtype(), DType::BF16);
}

// The means of `loss` over consecutive windows of `w` steps.
std::vector<double> window_means(const std::vector<double>& loss, size_t w) {
  std::vector<double> m;
  for (size_t i = 0; i + w <= loss.size(); i += w) {
    double s = 0;
    for (size_t k = i; k < i + w; ++k) s += loss[k];
    m.push_back(s / double(w));
  }
  return m;
}

// configs/demo.json, 500 steps (cosine decay over the 500), same seed, in f32 and in bf16. The
// tolerance: each 50-step mean of the bf16 losses within 3% of the f32 one. The two runs draw the
// same batches, t and noise, so the per-step losses differ only by where the weights have drifted;
// the loss's own step-to-step spread (per-step t) is far larger than 3%.
TEST(Bf16Train, Demo500Steps) {
  const char* out = std::getenv("SIMDIFF_BF16_DEMO_OUT");
  if (!out || !*out) GTEST_SKIP() << "set SIMDIFF_BF16_DEMO_OUT=DIR to run (minutes)";
  std::filesystem::path dir(out);
  std::filesystem::create_directories(dir);
  nlohmann::json j;
  {
    std::ifstream f(std::string(SIMDIFF_SOURCE_DIR) + "/configs/demo.json");
    j = nlohmann::json::parse(f);
  }
  j["train"]["steps"] = 500;
  j["train"]["sample_every"] = 0;
  std::map<std::string, std::vector<double>> loss;
  std::vector<Series> series;
  for (const char* p : {"f32", "bf16"}) {
    j["train"]["precision"] = p;
    std::string cfg = (dir / (std::string("demo_") + p + ".json")).string();
    std::ofstream(cfg) << j.dump(2);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(run_simdiff_status("train --quiet --overwrite --device cpu --config " + cfg + " --out " +
                  (dir / p).string()),
              0)
        << p;
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    loss[p] = metric_losses((dir / p / "metrics.jsonl").string());
    ASSERT_EQ(loss[p].size(), 500u) << p;
    std::printf("%s: 500 steps in %.1f s, final loss %.5f\n", p, sec, loss[p].back());
    Series s{p, {}};
    for (size_t i = 0; i < loss[p].size(); ++i) s.points.push_back({int64_t(i + 1), loss[p][i]});
    series.push_back(s);
  }
  PlotOptions opt;
  opt.log_y = true;
  write_loss_svg((dir / "bf16_vs_f32.svg").string(), series,
                 "configs/demo.json on the CPU, 500 steps: bf16 vs f32", opt);
  std::vector<double> a = window_means(loss["f32"], 50), b = window_means(loss["bf16"], 50);
  double worst = 0;
  for (size_t w = 0; w < a.size(); ++w) {
    double rel = b[w] / a[w] - 1;
    worst = std::max(worst, std::abs(rel));
    std::printf("steps %3zu-%3zu: f32 %.5f bf16 %.5f (%+.2f%%)\n", 50 * w + 1, 50 * w + 50, a[w],
                b[w], 100 * rel);
    EXPECT_NEAR(b[w] / a[w], 1.0, 0.03) << "steps " << 50 * w + 1 << ".." << 50 * w + 50;
  }
  std::printf("largest difference of a 50-step mean: %.2f%%\n", 100 * worst);
}

}  // namespace
}  // namespace sd
