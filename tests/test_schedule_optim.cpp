// Known values and bad-input messages for the diffusion ops (logSNR schedules, alpha/sigma,
// noising, sampler step) and the optimizer ops (adamw, ema, grad_norm). CPU reference; the parity
// loop checks the CUDA kernels against these.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/error_of.h"
#include "kernels/registry.h"

using namespace sd;
using ::testing::HasSubstr;

namespace {

Tensor f64(const std::vector<double>& v) {
  Tensor t = Tensor::empty({int64_t(v.size())}, DType::F64);
  for (size_t i = 0; i < v.size(); ++i) t.data<double>()[i] = v[i];
  return t;
}

std::vector<double> values(const Tensor& t) {
  Tensor d = t.to(DType::F64);
  return std::vector<double>(d.data<double>(), d.data<double>() + d.numel());
}

std::vector<double> schedule(const std::vector<double>& t, const Attrs& attrs) {
  return values(run_forward("logsnr_schedule", {f64(t)}, attrs)[0]);
}

// The clipped cosine schedule written out from the paper, section 1.
double cosine_by_hand(double t) {
  double t_min = std::atan(std::exp(-7.5)), t_max = std::atan(std::exp(7.5));
  return -2 * std::log(std::tan(t_min + t * (t_max - t_min)));
}

// ---------------- schedules ----------------

TEST(Schedule, CosineEndpointsAreTheClippingBounds) {
  std::vector<double> l = schedule({0.0, 1.0}, {{"kind", "cosine"}});
  EXPECT_NEAR(l[0], 15.0, 1e-9);
  EXPECT_NEAR(l[1], -15.0, 1e-9);
  // Clipping happens before the shift: the shifted endpoints are 15 + shift and -15 + shift.
  l = schedule({0.0, 1.0}, {{"kind", "shifted"}, {"image_d", 256}});
  EXPECT_NEAR(l[0], 15.0 + 2 * std::log(0.25), 1e-9);
  EXPECT_NEAR(l[1], -15.0 + 2 * std::log(0.25), 1e-9);
}

TEST(Schedule, ShiftIsTwoLogBaseOverResolution) {
  std::vector<double> t{0.0, 0.1, 0.37, 0.5, 0.9, 1.0};
  std::vector<double> cos = schedule(t, {{"kind", "cosine"}});
  for (auto [d, expected] : {std::pair{128, -1.386}, {256, -2.7726}, {512, -4.159}}) {
    std::vector<double> sh = schedule(t, {{"kind", "shifted"}, {"image_d", d}});
    for (size_t i = 0; i < t.size(); ++i) {
      EXPECT_NEAR(sh[i] - cos[i], 2 * std::log(64.0 / d), 1e-9) << "d = " << d;
      EXPECT_NEAR(sh[i] - cos[i], expected, 1e-3) << "d = " << d;
    }
  }
  // noise_d is the base: image_d == noise_d means no shift.
  std::vector<double> same = schedule(t, {{"kind", "shifted"}, {"noise_d", 128}, {"image_d", 128}});
  for (size_t i = 0; i < t.size(); ++i) EXPECT_NEAR(same[i], cos[i], 1e-12);
}

TEST(Schedule, HandComputedAtOneHalf) {
  double c = cosine_by_hand(0.5);
  EXPECT_NEAR(c, 0.0, 1e-9);  // the clipping range is symmetric: t = 0.5 is logSNR 0
  EXPECT_NEAR(schedule({0.5}, {{"kind", "cosine"}})[0], c, 1e-12);
  EXPECT_NEAR(schedule({0.5}, {{"kind", "shifted"}, {"image_d", 256}})[0],
              c + 2 * std::log(64.0 / 256), 1e-12);
  // interpolated, paper form: 0.5 (c + 2 log(32/256)) + 0.5 (c + 2 log(256/256))
  EXPECT_NEAR(schedule({0.5}, {{"kind", "interpolated"}, {"image_d", 256}})[0],
              0.5 * (c + 2 * std::log(32.0 / 256)) + 0.5 * c, 1e-12);
  // Asymmetric clipping moves the midpoint.
  double t_min = std::atan(std::exp(-6.0)), t_max = std::atan(std::exp(5.0));
  double by_hand = -2 * std::log(std::tan(t_min + 0.3 * (t_max - t_min)));
  EXPECT_NEAR(schedule({0.3}, {{"kind", "cosine"}, {"logsnr_min", -10}, {"logsnr_max", 12}})[0],
              by_hand, 1e-12);
  // f32 input: computed in double, rounded once.
  Tensor l32 = run_forward("logsnr_schedule", {Tensor::from_floats({0.25f}, {1})},
                           {{"kind", "shifted"}, {"image_d", 128}})[0];
  EXPECT_EQ(l32.data<float>()[0], float(cosine_by_hand(0.25) + 2 * std::log(0.5)));
}

TEST(Schedule, InterpolatedEndsAreTheTwoShifts) {
  for (int d : {64, 256, 512}) {
    // t = 0: the shift with base high_d; t = 1: the shift with base low_d.
    Attrs interp{{"kind", "interpolated"}, {"image_d", d}, {"low_d", 32}, {"high_d", 128}};
    std::vector<double> l = schedule({0.0, 1.0}, interp);
    std::vector<double> high =
        schedule({0.0, 1.0}, {{"kind", "shifted"}, {"noise_d", 128}, {"image_d", d}});
    std::vector<double> low =
        schedule({0.0, 1.0}, {{"kind", "shifted"}, {"noise_d", 32}, {"image_d", d}});
    EXPECT_NEAR(l[0], high[0], 1e-12) << d;
    EXPECT_NEAR(l[1], low[1], 1e-12) << d;
    // Defaults: high_d = image_d (no shift at t = 0), low_d = 32 (the stronger shift at t = 1).
    l = schedule({0.0, 1.0}, {{"kind", "interpolated"}, {"image_d", d}});
    EXPECT_NEAR(l[0], 15.0, 1e-9) << d;
    EXPECT_NEAR(l[1], -15.0 + 2 * std::log(32.0 / d), 1e-9) << d;
  }
}

TEST(Schedule, IsDecreasingInT) {
  std::vector<double> t;
  for (int i = 0; i <= 100; ++i) t.push_back(i / 100.0);
  for (const char* kind : {"cosine", "shifted", "interpolated"}) {
    std::vector<double> l = schedule(t, {{"kind", kind}, {"image_d", 256}});
    for (size_t i = 1; i < l.size(); ++i) EXPECT_LT(l[i], l[i - 1]) << kind << " at t = " << t[i];
  }
}

TEST(Schedule, BadInputs) {
  EXPECT_THAT(error_of([] { schedule({0.5}, {{"kind", "sigmoid"}}); }),
              AllOf(HasSubstr("logsnr_schedule"), HasSubstr("kind"), HasSubstr("sigmoid")));
  EXPECT_THAT(error_of([] { schedule({0.2, 1.5}, {}); }),
              AllOf(HasSubstr("'t'"), HasSubstr("[0, 1]"), HasSubstr("1.5"), HasSubstr("index 1")));
  EXPECT_THAT(error_of([] { schedule({-0.01}, {}); }), HasSubstr("[0, 1]"));
  EXPECT_THAT(error_of([] { schedule({NAN}, {}); }), HasSubstr("[0, 1]"));
  EXPECT_THAT(error_of([] { schedule({0.5}, {{"image_d", 0}}); }), HasSubstr("image_d"));
  EXPECT_THAT(error_of([] { schedule({0.5}, {{"logsnr_min", 5}, {"logsnr_max", 5}}); }),
              HasSubstr("logsnr_min"));
  EXPECT_THAT(error_of([] { schedule({0.5}, {{"shift", 2}}); }), HasSubstr("unknown attribute"));
}

// ---------------- alpha, sigma, noising ----------------

TEST(AlphaSigma, VariancePreservingAndStable) {
  std::vector<double> l{-30, -20, -15, -3, -0.5, 0, 0.5, 3, 15, 20, 30};
  auto out = run_forward("alpha_sigma", {f64(l)});
  std::vector<double> a = values(out[0]), s = values(out[1]);
  for (size_t i = 0; i < l.size(); ++i) {
    EXPECT_NEAR(a[i] * a[i] + s[i] * s[i], 1.0, 1e-14) << l[i];
    EXPECT_NEAR(std::log(a[i] * a[i] / (s[i] * s[i])), l[i], 1e-9) << l[i];
    EXPECT_GT(a[i], 0) << l[i];
    EXPECT_GT(s[i], 0) << l[i];
  }
  EXPECT_DOUBLE_EQ(a[5], std::sqrt(0.5));
  // f32: alpha^2 + sigma^2 = 1 to rounding, and nothing underflows to 0 at |logsnr| = 30.
  auto o32 = run_forward("alpha_sigma", {f64(l).to(DType::F32)});
  for (size_t i = 0; i < l.size(); ++i) {
    double a32 = o32[0].data<float>()[i], s32 = o32[1].data<float>()[i];
    EXPECT_NEAR(a32 * a32 + s32 * s32, 1.0, 1e-6) << l[i];
    EXPECT_NEAR(a32, a[i], 1e-7 * a[i]) << l[i];
    EXPECT_NEAR(s32, s[i], 1e-7 * s[i]) << l[i];
  }
}

TEST(Noising, VTargetAndRecovery) {
  Tensor x = Tensor::empty({2, 3, 5}, DType::F64), eps = Tensor::empty({2, 3, 5}, DType::F64);
  for (int i = 0; i < 30; ++i) {
    x.data<double>()[i] = std::sin(0.3 * i);
    eps.data<double>()[i] = std::cos(1.7 * i + 0.2);
  }
  Tensor l = f64({-4.0, 2.5});
  auto out = run_forward("noising", {x, eps, l});
  auto as = run_forward("alpha_sigma", {l});
  for (int i = 0; i < 30; ++i) {
    int b = i / 15;
    double a = as[0].data<double>()[b], s = as[1].data<double>()[b];
    double xi = x.data<double>()[i], ei = eps.data<double>()[i];
    double z = out[0].data<double>()[i], v = out[1].data<double>()[i];
    EXPECT_NEAR(z, a * xi + s * ei, 1e-14);
    EXPECT_NEAR(v, a * ei - s * xi, 1e-14);
    EXPECT_NEAR(a * z - s * v, xi, 1e-14);  // x^ from the true v is x
    EXPECT_NEAR(s * z + a * v, ei, 1e-14);  // eps^ from the true v is eps
  }
}

TEST(Noising, InPlace) {
  Tensor x = Tensor::from_floats({1, 2, 3, 4}, {2, 2});
  Tensor eps = Tensor::from_floats({0.5f, -1, 0.25f, 2}, {2, 2});
  Tensor l = Tensor::from_floats({0, 1}, {2});
  auto ref = run_forward("noising", {x, eps, l});
  Tensor xc = x.clone(), ec = eps.clone();
  run_forward_into("noising", {xc, ec, l}, {xc, ec});  // z over x, v over eps
  EXPECT_EQ(xc.to_floats(), ref[0].to_floats());
  EXPECT_EQ(ec.to_floats(), ref[1].to_floats());
}

TEST(Noising, BadInputs) {
  Tensor x = Tensor::zeros({2, 3, 4}), l = Tensor::zeros({2});
  EXPECT_THAT(error_of([&] { run_forward("noising", {x, Tensor::zeros({2, 3, 5}), l}); }),
              AllOf(HasSubstr("noising"), HasSubstr("'eps'"), HasSubstr("[2, 3, 4]"),
                    HasSubstr("[2, 3, 5]")));
  EXPECT_THAT(error_of([&] { run_forward("noising", {x, x, Tensor::zeros({3})}); }),
              AllOf(HasSubstr("'logsnr'"), HasSubstr("[2]"), HasSubstr("f32[3]")));
  EXPECT_THAT(error_of([&] { run_forward("noising", {x, x.to(DType::F64), l}); }),
              AllOf(HasSubstr("'eps'"), HasSubstr("dtype")));
}

// ---------------- sampler step ----------------

struct StepData {
  Tensor x, eps, z, v, lt, ls, noise;
  std::vector<double> at, st, as, ss;
};

// Two samples of 7 values, noised at logsnr_t; the step goes to logsnr_s.
StepData step_data(double x_scale = 0.8) {
  StepData d;
  std::vector<double> lt{-3.0, 1.0}, ls{-1.0, 4.0};
  d.x = Tensor::empty({2, 7}, DType::F64);
  d.eps = Tensor::empty({2, 7}, DType::F64);
  d.noise = Tensor::empty({2, 7}, DType::F64);
  for (int i = 0; i < 14; ++i) {
    d.x.data<double>()[i] = x_scale * std::sin(1.1 * i);
    d.eps.data<double>()[i] = std::cos(0.9 * i + 0.4);
    d.noise.data<double>()[i] = std::sin(2.3 * i + 1.0);
  }
  d.lt = f64(lt);
  d.ls = f64(ls);
  auto zv = run_forward("noising", {d.x, d.eps, d.lt});
  d.z = zv[0];
  d.v = zv[1];
  for (int b = 0; b < 2; ++b) {
    d.at.push_back(std::sqrt(1 / (1 + std::exp(-lt[b]))));
    d.st.push_back(std::sqrt(1 / (1 + std::exp(lt[b]))));
    d.as.push_back(std::sqrt(1 / (1 + std::exp(-ls[b]))));
    d.ss.push_back(std::sqrt(1 / (1 + std::exp(ls[b]))));
  }
  return d;
}

std::vector<double> step(const StepData& d, const Tensor& v_hat, const Attrs& attrs) {
  return values(run_forward("sampler_step", {d.z, v_hat, d.lt, d.ls, d.noise}, attrs)[0]);
}

TEST(SamplerStep, DdimWithTheTrueVIsExact) {
  StepData d = step_data();
  std::vector<double> zs = step(d, d.v, {{"mode", "ddim"}});
  for (int i = 0; i < 14; ++i) {
    int b = i / 7;
    EXPECT_NEAR(zs[i], d.as[b] * d.x.data<double>()[i] + d.ss[b] * d.eps.data<double>()[i], 1e-13);
  }
  // Clipping changes nothing when x is inside [-1, 1].
  std::vector<double> clipped = step(d, d.v, {{"mode", "ddim"}, {"clip_x", true}});
  for (int i = 0; i < 14; ++i) EXPECT_NEAR(clipped[i], zs[i], 1e-12);
}

TEST(SamplerStep, LastReturnsXHat) {
  StepData d = step_data(3.0);  // x outside [-1, 1] so that clipping shows
  Tensor v_hat = d.v.clone();
  for (int i = 0; i < 14; ++i) v_hat.data<double>()[i] += 0.1 * std::cos(0.5 * i);
  for (const char* mode : {"ddpm", "ddim"}) {
    std::vector<double> xh = step(d, v_hat, {{"mode", mode}, {"last", true}});
    std::vector<double> xc = step(d, v_hat, {{"mode", mode}, {"last", true}, {"clip_x", true}});
    for (int i = 0; i < 14; ++i) {
      int b = i / 7;
      double want = d.at[b] * d.z.data<double>()[i] - d.st[b] * v_hat.data<double>()[i];
      EXPECT_NEAR(xh[i], want, 1e-13) << mode;
      EXPECT_NEAR(xc[i], std::clamp(want, -1.0, 1.0), 1e-13) << mode;
    }
  }
}

TEST(SamplerStep, DdpmMeanAndVarianceByHand) {
  StepData d = step_data(2.0);
  Tensor v_hat = d.v.clone();
  for (int i = 0; i < 14; ++i) v_hat.data<double>()[i] -= 0.2 * std::sin(0.7 * i);
  std::vector<double> lt = values(d.lt), ls = values(d.ls);
  for (bool clip : {false, true}) {
    std::vector<double> zs = step(d, v_hat, {{"mode", "ddpm"}, {"clip_x", clip}});
    for (int i = 0; i < 14; ++i) {
      int b = i / 7;
      double z = d.z.data<double>()[i];
      double xh = d.at[b] * z - d.st[b] * v_hat.data<double>()[i];
      if (clip) xh = std::clamp(xh, -1.0, 1.0);
      double c = 1 - std::exp(lt[b] - ls[b]);
      double mean = d.as[b] * ((1 - c) * z / d.at[b] + c * xh);
      double var = d.ss[b] * d.ss[b] * c;
      EXPECT_NEAR(zs[i], mean + std::sqrt(var) * d.noise.data<double>()[i], 1e-12);
    }
  }
  // DDIM after clipping uses eps^ = (z - alpha_t x^) / sigma_t.
  std::vector<double> zs = step(d, v_hat, {{"mode", "ddim"}, {"clip_x", true}});
  for (int i = 0; i < 14; ++i) {
    int b = i / 7;
    double z = d.z.data<double>()[i];
    double xh = std::clamp(d.at[b] * z - d.st[b] * v_hat.data<double>()[i], -1.0, 1.0);
    double eh = (z - d.at[b] * xh) / d.st[b];
    EXPECT_NEAR(zs[i], d.as[b] * xh + d.ss[b] * eh, 1e-12);
  }
}

TEST(SamplerStep, BadInputs) {
  StepData d = step_data();
  EXPECT_THAT(error_of([&] { step(d, d.v, {{"mode", "euler"}}); }),
              AllOf(HasSubstr("sampler_step"), HasSubstr("mode"), HasSubstr("euler")));
  EXPECT_THAT(error_of([&] {
                run_forward("sampler_step", {d.z, d.v, d.ls, d.lt, d.noise}, {{"mode", "ddpm"}});
              }),
              AllOf(HasSubstr("logsnr_s >= logsnr_t"), HasSubstr("sample 0")));
  EXPECT_THAT(error_of([&] {
                Tensor bad = Tensor::zeros({2, 6}, DType::F64);
                run_forward("sampler_step", {d.z, d.v, d.lt, d.ls, bad});
              }),
              AllOf(HasSubstr("'noise'"), HasSubstr("[2, 7]"), HasSubstr("[2, 6]")));
}

// ---------------- optimizers ----------------

double grad_at(int i, int k) { return std::sin(1.0 + i + 0.7 * k); }

TEST(AdamW, MatchesTorch) {
  // Reference values from torch 1.13 (Debian python3-torch), f32:
  //   p = torch.tensor([0.5, -1.0, 2.0, 0.0, 3.0], requires_grad=True)
  //   opt = torch.optim.AdamW([p], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
  //   for k in 1..5: p.grad = torch.tensor([sin(1 + i + 0.7 k) for i in range(5)]); opt.step()
  const float p_ref[] = {0.468278259f, -0.987742245f, 2.03624034f, 0.0325147845f, 2.98457432f};
  const float m_ref[] = {-0.0351478048f, -0.217077851f, -0.1994275f, 0.0015755489f, 0.201130062f};
  const float v_ref[] = {0.00276564108f, 0.0024044076f, 0.00229977351f, 0.0027480931f,
                         0.0024795935f};
  Tensor p = Tensor::from_floats({0.5f, -1.0f, 2.0f, 0.0f, 3.0f}, {5});
  Tensor m = Tensor::zeros({5}), v = Tensor::zeros({5}), g = Tensor::empty({5});
  for (int k = 1; k <= 5; ++k) {
    for (int i = 0; i < 5; ++i) g.data<float>()[i] = float(grad_at(i, k));
    run_forward_into("adamw", {p, g, m, v}, {p, m, v},
                     {{"lr", 0.01}, {"weight_decay", 0.1}, {"step", k}});
  }
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(p.data<float>()[i], p_ref[i], 2e-6) << i;
    EXPECT_NEAR(m.data<float>()[i], m_ref[i], 1e-7) << i;
    EXPECT_NEAR(v.data<float>()[i], v_ref[i], 1e-9) << i;
  }
}

TEST(AdamW, MatchesReferenceLoopInDouble) {
  const int n = 7;
  double lr = 0.003, b1 = 0.8, b2 = 0.95, eps = 1e-6, wd = 0.02, gs = 0.5;
  std::vector<double> rp(n), rm(n, 0.0), rv(n, 0.0);
  Tensor p = Tensor::empty({n}, DType::F64), m = Tensor::zeros({n}, DType::F64),
         v = Tensor::zeros({n}, DType::F64), g = Tensor::empty({n}, DType::F64);
  for (int i = 0; i < n; ++i) p.data<double>()[i] = rp[i] = std::cos(0.3 * i) - 0.5;
  for (int k = 1; k <= 6; ++k) {
    for (int i = 0; i < n; ++i) {
      double gi = gs * grad_at(i, k);
      rp[i] -= lr * wd * rp[i];
      rm[i] = b1 * rm[i] + (1 - b1) * gi;
      rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
      double m_hat = rm[i] / (1 - std::pow(b1, k)), v_hat = rv[i] / (1 - std::pow(b2, k));
      rp[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
      g.data<double>()[i] = grad_at(i, k);
    }
    // Out of place: fresh outputs, inputs untouched.
    Tensor p_before = p.clone();
    auto out = run_forward("adamw", {p, g, m, v},
                           {{"lr", lr}, {"beta1", b1}, {"beta2", b2}, {"eps", eps},
                            {"weight_decay", wd}, {"step", k}, {"grad_scale", gs}});
    EXPECT_EQ(values(p), values(p_before));
    p = out[0], m = out[1], v = out[2];
  }
  for (int i = 0; i < n; ++i) {
    EXPECT_NEAR(p.data<double>()[i], rp[i], 1e-14) << i;
    EXPECT_NEAR(m.data<double>()[i], rm[i], 1e-15) << i;
    EXPECT_NEAR(v.data<double>()[i], rv[i], 1e-15) << i;
  }
}

TEST(AdamW, InPlaceEqualsOutOfPlace) {
  Tensor p = Tensor::from_floats({0.3f, -0.7f, 1.1f}, {3});
  Tensor g = Tensor::from_floats({0.2f, 0.1f, -0.4f}, {3});
  Tensor m = Tensor::from_floats({0.01f, -0.02f, 0.03f}, {3});
  Tensor v = Tensor::from_floats({1e-4f, 2e-4f, 3e-5f}, {3});
  Attrs a{{"lr", 0.05}, {"step", 3}, {"weight_decay", 0.01}};
  auto ref = run_forward("adamw", {p, g, m, v}, a);
  run_forward_into("adamw", {p, g, m, v}, {p, m, v}, a);
  EXPECT_EQ(p.to_floats(), ref[0].to_floats());
  EXPECT_EQ(m.to_floats(), ref[1].to_floats());
  EXPECT_EQ(v.to_floats(), ref[2].to_floats());
}

TEST(AdamW, BadInputs) {
  Tensor p = Tensor::zeros({4});
  EXPECT_THAT(error_of([&] { run_forward("adamw", {p, p, p, p}, {{"lr", 0.1}}); }),
              AllOf(HasSubstr("adamw"), HasSubstr("step")));
  EXPECT_THAT(error_of([&] { run_forward("adamw", {p, p, p, p}, {{"lr", 0.1}, {"step", 0}}); }),
              AllOf(HasSubstr("step"), HasSubstr(">= 1")));
  EXPECT_THAT(error_of([&] {
                run_forward("adamw", {p, Tensor::zeros({5}), p, p}, {{"lr", 0.1}, {"step", 1}});
              }),
              AllOf(HasSubstr("'grad'"), HasSubstr("[4]"), HasSubstr("[5]")));
  EXPECT_THAT(error_of([&] {
                run_forward("adamw", {p, p, p, p}, {{"lr", 0.1}, {"step", 1}, {"beta2", 1.0}});
              }),
              HasSubstr("beta2"));
}

TEST(Ema, InPlaceUpdate) {
  Tensor e = Tensor::from_floats({1, 2, 3}, {3}), p = Tensor::from_floats({3, 2, -1}, {3});
  run_forward_into("ema", {e, p}, {e}, {{"decay", 0.75}});
  EXPECT_EQ(e.to_floats(), (std::vector<float>{1.5f, 2.0f, 2.0f}));
  run_forward_into("ema", {e, p}, {e}, {{"decay", 0.0}});
  EXPECT_EQ(e.to_floats(), p.to_floats());
  EXPECT_THAT(error_of([&] { run_forward("ema", {e, p}, {{"decay", 1.5}}); }), HasSubstr("decay"));
  EXPECT_THAT(error_of([&] { run_forward("ema", {e, p}); }), HasSubstr("decay"));
}

TEST(GradNorm, KnownValues) {
  Tensor g = Tensor::from_floats({3, -4, 0, 12}, {2, 2});
  Tensor n = run_forward("grad_norm", {g})[0];
  EXPECT_EQ(n.ndim(), 0);
  EXPECT_EQ(n.item(), 13.0);
  // 10^6 values of 1e-3: sqrt(1e6 * 1e-6) = 1, summed in double.
  Tensor many = Tensor::full({1000000}, 1e-3);
  EXPECT_NEAR(run_forward("grad_norm", {many})[0].item(), 1.0, 1e-6);
}

}  // namespace
