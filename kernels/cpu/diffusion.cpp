// Diffusion ops (paper sections 1, 2, 7, 8): the logSNR schedule, alpha/sigma, forward noising with
// the v target, and one reverse sampler step. None is differentiable: they act on the data and on
// the network's output, never inside the graph, so they have forward kernels only.
//
//   cosine(t)       = -2 log tan(t_min + t (t_max - t_min)),   t_min = atan(e^(-lmax/2)),
//                                                              t_max = atan(e^(-lmin/2))
//   shifted(t)      = cosine(t) + 2 log(noise_d / image_d)
//   interpolated(t) = t (cosine(t) + 2 log(low_d / image_d))
//                     + (1 - t) (cosine(t) + 2 log(high_d / image_d))
//     (the paper's pseudocode: low_d / high_d replace the base resolution noise_d, so with the
//      defaults 32 and image_d the high-noise end t -> 1 gets the stronger shift)
//   all three are  cosine(t) + s0 + t (s1 - s0)  with the shift s0 at t = 0 and s1 at t = 1.
//   alpha = sqrt(sigmoid(l)) = 1 / sqrt(1 + e^-l),  sigma = 1 / sqrt(1 + e^l)   (no cancellation)
//   noising:  z = alpha x + sigma eps,  v = alpha eps - sigma x
//   sampler:  x^ = alpha_t z - sigma_t v^ (clipped to [-1, 1] on request)
//             eps^ = sigma_t z + alpha_t v^ (= (z - alpha_t x^) / sigma_t after clipping)
//     ddpm: c = -expm1(l_t - l_s),
//           z_s = alpha_s ((1 - c) z / alpha_t + c x^) + sigma_s sqrt(c) noise
//     ddim: z_s = alpha_s x^ + sigma_s eps^;   last: z_s = x^
// Per-sample coefficients are computed once per sample in double and rounded once; the per-element
// passes then read each input once and write each output once (memory bound).
#include <algorithm>
#include <cmath>

#include "kernels/cpu/common.h"

namespace sd {
namespace {

Tensor on_host(const Tensor& t) { return t.is_cpu() ? t : t.to(Device::CPU); }

// Index of the first element of `t` (f32 or f64, any device) for which ok(value) fails, or -1.
// CUDA inputs are copied to the host: these checks guard inputs of [B] elements.
template <class Ok>
int64_t first_bad(const Tensor& t, Ok ok, double& bad_value) {
  Tensor h = on_host(t);
  if (h.dtype() == DType::BF16) h = h.to(DType::F32);  // a cuda input: its kernel judges the dtype
  int64_t bad = -1;
  cpu::dispatch_float("check", h.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = h.data<T>();
    for (int64_t i = 0; i < h.numel() && bad < 0; ++i)
      if (!ok(double(p[i]))) bad = i, bad_value = double(p[i]);
  });
  return bad;
}

bool positive_number(const nlohmann::json& j) { return j.is_number() && double(j) > 0; }

// ---------------- logsnr_schedule ----------------

struct Schedule {
  double t_min, t_max, s0, s1;  // cosine clipping range; shift at t = 0 and at t = 1
};

Schedule parse_schedule(const Attrs& a) {
  const char* op = "logsnr_schedule";
  std::string kind = a["kind"].is_string() ? a["kind"].get<std::string>() : "";
  expect_attr(op, "kind", kind == "cosine" || kind == "shifted" || kind == "interpolated",
              "one of \"cosine\", \"shifted\", \"interpolated\"", a["kind"]);
  for (const char* k : {"logsnr_min", "logsnr_max"})
    expect_attr(op, k, a[k].is_number(), "a number", a[k]);
  double lmin = a["logsnr_min"], lmax = a["logsnr_max"];
  SD_CHECK(lmin < lmax, op, ": attribute 'logsnr_min' expected < logsnr_max (", lmax, "), got ",
           lmin);
  for (const char* k : {"noise_d", "image_d", "low_d"})
    expect_attr(op, k, positive_number(a[k]), "a positive number (a resolution)", a[k]);
  expect_attr(op, "high_d", a["high_d"].is_number() && double(a["high_d"]) >= 0,
              "a resolution, or 0 for image_d", a["high_d"]);
  double image_d = a["image_d"], high_d = a["high_d"];
  if (high_d == 0) high_d = image_d;
  Schedule s{std::atan(std::exp(-0.5 * lmax)), std::atan(std::exp(-0.5 * lmin)), 0, 0};
  if (kind == "shifted") s.s0 = s.s1 = 2 * std::log(double(a["noise_d"]) / image_d);
  if (kind == "interpolated") {
    s.s0 = 2 * std::log(high_d / image_d);
    s.s1 = 2 * std::log(double(a["low_d"]) / image_d);
  }
  return s;
}

double schedule_at(const Schedule& s, double t) {
  return -2 * std::log(std::tan(s.t_min + t * (s.t_max - s.t_min))) + s.s0 + t * (s.s1 - s.s0);
}

void schedule_forward(OpCall& c) {
  Schedule s = parse_schedule(c.attrs);
  cpu::dispatch_float("logsnr_schedule", c.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* t = c.in[0].data<T>();
    T* l = c.out[0].data<T>();
    for (int64_t i = 0; i < c.in[0].numel(); ++i) l[i] = T(schedule_at(s, double(t[i])));
  });
}

// ---------------- alpha_sigma ----------------

double alpha_of(double l) { return 1 / std::sqrt(1 + std::exp(-l)); }
double sigma_of(double l) { return 1 / std::sqrt(1 + std::exp(l)); }

void alpha_sigma_forward(OpCall& c) {
  cpu::dispatch_float("alpha_sigma", c.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* l = c.in[0].data<T>();
    T* a = c.out[0].data<T>();
    T* s = c.out[1].data<T>();
    for (int64_t i = 0; i < c.in[0].numel(); ++i) {
      double li = l[i];
      a[i] = T(alpha_of(li));
      s[i] = T(sigma_of(li));
    }
  });
}

// ---------------- per-sample loops ----------------

// f(b, lo, hi) over [B, inner] in chunks: coefficients are loaded once per chunk, the inner loop
// vectorises, and a small batch still splits across threads.
template <class F>
void per_sample_chunks(int64_t B, int64_t inner, F f) {
  const int64_t chunk = 8192;
  int64_t nc = (inner + chunk - 1) / chunk;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < nc; ++k) f(b, k * chunk, std::min(inner, (k + 1) * chunk));
}

// [B, ...] with a per-sample [B] companion: checks and returns the batch shape's inner size.
void expect_batch(const std::string& op, const std::string& arg, const Tensor& l,
                  const Tensor& x, const std::string& xname) {
  expect_float(op, arg, l);
  expect_same_dtype(op, arg, l, x);
  SD_CHECK(l.ndim() == 1 && l.dim(0) == x.dim(0), op, ": '", arg, "' expected shape [",
           x.dim(0), "] (one value per sample of '", xname, "' ", shape_str(x.shape()), "), got ",
           l.desc());
}

void expect_like(const std::string& op, const std::string& arg, const Tensor& t,
                 const std::string& ref_name, const Tensor& ref) {
  expect_float(op, arg, t);
  expect_same_dtype(op, arg, t, ref);
  SD_CHECK(t.shape() == ref.shape(), op, ": '", arg, "' expected the shape of '", ref_name, "' ",
           shape_str(ref.shape()), ", got ", shape_str(t.shape()), " (", t.desc(), ")");
}

// ---------------- noising ----------------

std::vector<OutMeta> infer_noising(const std::vector<Tensor>& in) {
  const char* op = "noising";
  expect_float(op, "x", in[0]);
  SD_CHECK(in[0].ndim() >= 1, op, ": 'x' expected a batch [B, ...], got ", in[0].desc());
  expect_like(op, "eps", in[1], "x", in[0]);
  expect_batch(op, "logsnr", in[2], in[0], "x");
  return {{in[0].shape(), in[0].dtype()}, {in[0].shape(), in[0].dtype()}};
}

void noising_forward(OpCall& c) {
  cpu::dispatch_float("noising", c.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    int64_t B = c.in[0].dim(0), inner = B ? c.in[0].numel() / B : 0;
    const T* x = c.in[0].data<T>();
    const T* e = c.in[1].data<T>();
    const T* l = c.in[2].data<T>();
    T* z = c.out[0].data<T>();
    T* v = c.out[1].data<T>();
    std::vector<T> alpha(B), sigma(B);
    for (int64_t b = 0; b < B; ++b) alpha[b] = T(alpha_of(l[b])), sigma[b] = T(sigma_of(l[b]));
    per_sample_chunks(B, inner, [&](int64_t b, int64_t lo, int64_t hi) {
      T a = alpha[b], s = sigma[b];
      int64_t o = b * inner;
      for (int64_t i = o + lo; i < o + hi; ++i) {
        T xi = x[i], ei = e[i];  // both read before writing: z or v may alias x or eps
        z[i] = a * xi + s * ei;
        v[i] = a * ei - s * xi;
      }
    });
  });
}

// ---------------- sampler_step ----------------

enum SamplerMode { kLast, kDdpm, kDdim };

template <class T>
struct StepCoef {
  T at, st, inv_st;  // alpha_t, sigma_t, 1 / sigma_t
  T kz, kx, kn;      // ddpm: z_s = kz z + kx x^ + kn noise
  T as, ss;          // ddim: z_s = as x^ + ss eps^
};

template <class T>
StepCoef<T> step_coef(double lt, double ls) {
  double at = alpha_of(lt), st = sigma_of(lt), as = alpha_of(ls), ss = sigma_of(ls);
  double c = -std::expm1(lt - ls);
  return {T(at), T(st), T(1 / st), T(as * std::exp(lt - ls) / at), T(as * c),
          T(ss * std::sqrt(c)), T(as), T(ss)};
}

// The mode and clipping are template parameters so that the inner loop has no branches.
template <class T, int Mode, bool Clip>
void sampler_pass(const std::vector<StepCoef<T>>& coef, int64_t inner, const T* z, const T* vh,
                  const T* nz, T* out) {
  per_sample_chunks(int64_t(coef.size()), inner, [&](int64_t b, int64_t lo, int64_t hi) {
    const StepCoef<T>& k = coef[b];
    for (int64_t i = b * inner + lo; i < b * inner + hi; ++i) {
      T zi = z[i], vi = vh[i];
      T xh = k.at * zi - k.st * vi;
      if (Clip) xh = std::min(T(1), std::max(T(-1), xh));
      if (Mode == kLast) {
        out[i] = xh;
      } else if (Mode == kDdpm) {
        out[i] = k.kz * zi + k.kx * xh + k.kn * nz[i];
      } else {
        T eh = Clip ? (zi - k.at * xh) * k.inv_st : k.st * zi + k.at * vi;
        out[i] = k.as * xh + k.ss * eh;
      }
    }
  });
}

template <class T, int Mode>
auto sampler_pick(bool clip) {
  return clip ? sampler_pass<T, Mode, true> : sampler_pass<T, Mode, false>;
}

int sampler_mode(const Attrs& a) {
  if (a["last"].get<bool>()) return kLast;
  return a["mode"] == "ddpm" ? kDdpm : kDdim;
}

std::vector<OutMeta> infer_sampler(const std::vector<Tensor>& in, const Attrs& a) {
  const char* op = "sampler_step";
  expect_attr(op, "mode", a["mode"] == "ddpm" || a["mode"] == "ddim", "\"ddpm\" or \"ddim\"",
              a["mode"]);
  expect_attr(op, "clip_x", a["clip_x"].is_boolean(), "true or false", a["clip_x"]);
  expect_attr(op, "last", a["last"].is_boolean(), "true or false", a["last"]);
  expect_float(op, "z", in[0]);
  SD_CHECK(in[0].ndim() >= 1, op, ": 'z' expected a batch [B, ...], got ", in[0].desc());
  expect_like(op, "v_hat", in[1], "z", in[0]);
  expect_batch(op, "logsnr_t", in[2], in[0], "z");
  expect_batch(op, "logsnr_s", in[3], in[0], "z");
  expect_like(op, "noise", in[4], "z", in[0]);
  if (sampler_mode(a) == kDdpm) {
    // c = 1 - e^(l_t - l_s) is a variance fraction: it needs l_s >= l_t (s less noisy than t).
    Tensor lt = on_host(in[2]).to(DType::F64), ls = on_host(in[3]).to(DType::F64);
    for (int64_t b = 0; b < lt.numel(); ++b) {
      double t = lt.data<double>()[b], s = ls.data<double>()[b];
      SD_CHECK(s >= t, op, ": ddpm step expects logsnr_s >= logsnr_t (s less noisy than t), got ",
               "logsnr_t ", t, " and logsnr_s ", s, " for sample ", b);
    }
  }
  return {{in[0].shape(), in[0].dtype()}};
}

void sampler_forward(OpCall& c) {
  int mode = sampler_mode(c.attrs);
  bool clip = c.attrs["clip_x"];
  cpu::dispatch_float("sampler_step", c.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    int64_t B = c.in[0].dim(0), inner = B ? c.in[0].numel() / B : 0;
    const T* lt = c.in[2].data<T>();
    const T* ls = c.in[3].data<T>();
    std::vector<StepCoef<T>> coef(B);
    for (int64_t b = 0; b < B; ++b) coef[b] = step_coef<T>(lt[b], ls[b]);
    auto pass = mode == kLast   ? sampler_pick<T, kLast>(clip)
                : mode == kDdpm ? sampler_pick<T, kDdpm>(clip)
                                : sampler_pick<T, kDdim>(clip);
    pass(coef, inner, c.in[0].data<T>(), c.in[1].data<T>(), c.in[4].data<T>(), c.out[0].data<T>());
  });
}

// ---------------- test cases ----------------

std::vector<TestCase> schedule_tests() {
  std::vector<TestCase> v;
  TestInput mid{{37}, false, 0.01, 0.99};
  v.push_back({"cosine", {mid}, {{"kind", "cosine"}}});
  for (const char* kind : {"shifted", "interpolated"})
    for (int d : {32, 128, 256})
      v.push_back({std::string(kind) + " d=" + std::to_string(d), {mid},
                   {{"kind", kind}, {"image_d", d}}});
  v.push_back({"interpolated 256, 16..128", {mid},
               {{"kind", "interpolated"}, {"image_d", 256}, {"low_d", 16}, {"high_d", 128}}});
  v.push_back({"clip -10..12", {mid},
               {{"kind", "shifted"}, {"logsnr_min", -10}, {"logsnr_max", 12}}});
  Attrs interp{{"kind", "interpolated"}, {"image_d", 128}};
  v.push_back({"t = 0 exactly", {{{5}, false, 0, 0}}, interp});
  v.push_back({"t = 1 exactly", {{{5}, false, 1, 1}}, interp});
  v.push_back({"t over [0, 1]", {{{129}, false, 0, 1}}, {{"kind", "shifted"}, {"image_d", 256}}});
  return v;
}

std::vector<TestCase> sampler_tests() {
  std::vector<TestCase> v;
  Shape x{3, 3, 5, 7};
  for (const char* mode : {"ddpm", "ddim"})
    for (bool clip : {false, true})
      for (bool last : {false, true})
        v.push_back({std::string(mode) + (clip ? " clip" : "") + (last ? " last" : ""),
                     {{x, false, -3, 3}, {x, false, -2, 2}, {{3}, false, -15, 0},
                      {{3}, false, 0.5, 15}, {x, false, -3, 3}},
                     {{"mode", mode}, {"clip_x", clip}, {"last", last}}});
  // Late in sampling: little noise left at t and s.
  v.push_back({"ddim clip late", {{{2, 37}, false, -2, 2}, {{2, 37}}, {{2}, false, 4, 6},
                                  {{2}, false, 7, 10}, {{2, 37}}},
               {{"mode", "ddim"}, {"clip_x", true}}});
  v.push_back({"ddpm late", {{{2, 37}, false, -2, 2}, {{2, 37}}, {{2}, false, 4, 6},
                             {{2}, false, 7, 10}, {{2, 37}}},
               {{"mode", "ddpm"}}});
  return v;
}

}  // namespace

void register_diffusion_ops(Registry& r) {
  OpDef sched{.name = "logsnr_schedule",
              .doc = "logSNR(t) of the clipped cosine schedule, optionally shifted by "
                     "2 log(noise_d / image_d) or interpolated between two shifts; computed in "
                     "double, rounded once. The op's defaults are the unshifted cosine; "
                     "the model's configs set kind, noise_d and image_d.",
              .inputs = {{"t", "times in [0, 1], [B]", false}},
              .attrs = {{"kind", "\"cosine\", \"shifted\" or \"interpolated\"", "cosine"},
                        {"logsnr_min", "clipping: logSNR at t = 1 before the shift", -15.0},
                        {"logsnr_max", "clipping: logSNR at t = 0 before the shift", 15.0},
                        {"noise_d", "base resolution the cosine schedule is tuned for", 64},
                        {"image_d", "the model's resolution", 64},
                        {"low_d", "interpolated: base resolution of the shift at t = 1", 32},
                        {"high_d", "interpolated: base resolution of the shift at t = 0 "
                                   "(0: image_d)", 0}},
              .outputs = {{"logsnr", "[B]", false}}};
  sched.infer = [](const std::vector<Tensor>& in, const Attrs& a) -> std::vector<OutMeta> {
    const char* op = "logsnr_schedule";
    parse_schedule(a);
    expect_float(op, "t", in[0]);
    expect_ndim(op, "t", in[0], 1);
    double bad_value = 0;
    int64_t bad = first_bad(in[0], [](double t) { return t >= 0 && t <= 1; }, bad_value);
    SD_CHECK(bad < 0, op, ": 't' expected values in [0, 1], got ", bad_value, " at index ", bad,
             " of ", in[0].desc());
    return {{in[0].shape(), in[0].dtype()}};
  };
  sched.cpu.forward = schedule_forward;
  sched.tests = schedule_tests();
  r.add(std::move(sched));

  OpDef as{.name = "alpha_sigma",
           .doc = "alpha = sqrt(sigmoid(logsnr)), sigma = sqrt(sigmoid(-logsnr)), elementwise "
                  "(variance preserving: alpha^2 + sigma^2 = 1)",
           .inputs = {{"logsnr", "[B]", false}},
           .outputs = {{"alpha", "[B]", false}, {"sigma", "[B]", false}}};
  as.infer = [](const std::vector<Tensor>& in, const Attrs&) -> std::vector<OutMeta> {
    expect_float("alpha_sigma", "logsnr", in[0]);
    return {{in[0].shape(), in[0].dtype()}, {in[0].shape(), in[0].dtype()}};
  };
  as.cpu.forward = alpha_sigma_forward;
  as.tests = {{"wide", {{{41}, false, -25, 25}}}, {"near 0", {{{3, 5}}}}};
  r.add(std::move(as));

  OpDef noise{.name = "noising",
              .doc = "z = alpha x + sigma eps and the v target alpha eps - sigma x, per-sample "
                     "alpha, sigma from logsnr; one fused pass",
              .inputs = {{"x", "clean data [B, ...]", false},
                         {"eps", "noise, shape of x", false},
                         {"logsnr", "[B]", false}},
              .outputs = {{"z", "noisy data, shape of x", false},
                          {"v", "v-prediction target, shape of x", false}}};
  noise.infer = [](const std::vector<Tensor>& in, const Attrs&) { return infer_noising(in); };
  noise.cpu.forward = noising_forward;
  noise.tests = {{"images", {{{3, 3, 5, 7}}, {{3, 3, 5, 7}, false, -3, 3}, {{3}, false, -15, 15}}},
                 {"flat", {{{5, 37}}, {{5, 37}, false, -3, 3}, {{5}, false, -20, 20}}},
                 {"B=1", {{{1, 1000}}, {{1, 1000}}, {{1}, false, -2, 2}}}};
  noise.bench_cases = {{"32x3x256x256", {{{32, 3, 256, 256}}, {{32, 3, 256, 256}},
                                         {{32}, false, -15, 15}}}};
  r.add(std::move(noise));

  OpDef step{.name = "sampler_step",
             .doc = "one reverse step t -> s (logsnr_s > logsnr_t) from the v prediction: "
                    "ancestral ddpm or deterministic ddim; last returns x_hat. x_hat = "
                    "alpha_t z - sigma_t v_hat; with clip_x, x_hat is clipped to [-1, 1] and "
                    "eps_hat recomputed from it, (z - alpha_t x_hat) / sigma_t (diffusers' DDIM "
                    "does so only with use_clipped_model_output=True). The op's clip_x default "
                    "is off; sample.clip_x in a config is on by default.",
             .inputs = {{"z", "z_t [B, ...]", false},
                        {"v_hat", "the model's v prediction, shape of z", false},
                        {"logsnr_t", "[B]", false},
                        {"logsnr_s", "[B]", false},
                        {"noise", "standard normal, shape of z (ignored by ddim and last)", false}},
             .attrs = {{"mode", "\"ddpm\" (ancestral) or \"ddim\" (deterministic)", "ddpm"},
                       {"clip_x", "clip x_hat to [-1, 1]", false},
                       {"last", "final step: return x_hat", false}},
             .outputs = {{"z_s", "shape of z", false}}};
  step.infer = infer_sampler;
  step.cpu.forward = sampler_forward;
  step.tests = sampler_tests();
  Shape img{32, 3, 256, 256};
  step.bench_cases = {{"ddpm 32x3x256x256", {{img}, {img}, {{32}, false, -15, 0},
                                             {{32}, false, 0.5, 15}, {img}}}};
  r.add(std::move(step));
}

}  // namespace sd
