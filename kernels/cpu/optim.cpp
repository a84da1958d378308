// Optimizer ops over flat parameter arenas: every parameter is a view into one contiguous buffer
// (likewise the gradients and the Adam moments), so each op is one fused pass over all of them.
// Not differentiable: forward kernels only.
//
//   adamw (torch.optim.AdamW, same order of operations):
//     g = grad_scale * grad                        (global-norm clipping without another pass)
//     p = p (1 - lr wd)                            (decoupled weight decay, on the old p)
//     m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
//     p = p - (lr / (1 - b1^step)) m / (sqrt(v) / sqrt(1 - b2^step) + eps)
//   ema:       e = decay e + (1 - decay) p
//   grad_norm: sqrt(sum g^2)
// adamw reads p, g, m, v and writes p, m, v: 28 bytes per parameter in f32, the minimum. Each
// element reads all its inputs before writing, so the outputs may alias the inputs (in place).
#include <cmath>

#include "kernels/cpu/common.h"

namespace sd {
namespace {

void expect_arena(const std::string& op, const std::string& arg, const Tensor& t,
                  const std::string& ref_name, const Tensor& ref) {
  expect_float(op, arg, t);
  expect_same_dtype(op, arg, t, ref);
  SD_CHECK(t.shape() == ref.shape(), op, ": '", arg, "' expected the shape of '", ref_name, "' ",
           shape_str(ref.shape()), ", got ", shape_str(t.shape()), " (", t.desc(), ")");
}

bool number_in(const nlohmann::json& j, double lo, double hi) {
  return j.is_number() && double(j) >= lo && double(j) <= hi;
}

std::vector<OutMeta> infer_adamw(const std::vector<Tensor>& in, const Attrs& a) {
  const char* op = "adamw";
  expect_attr(op, "lr", number_in(a["lr"], 0, INFINITY), "a number >= 0", a["lr"]);
  expect_attr(op, "beta1", number_in(a["beta1"], 0, 1) && double(a["beta1"]) < 1,
              "a number in [0, 1)", a["beta1"]);
  expect_attr(op, "beta2", number_in(a["beta2"], 0, 1) && double(a["beta2"]) < 1,
              "a number in [0, 1)", a["beta2"]);
  expect_attr(op, "eps", number_in(a["eps"], 0, INFINITY), "a number >= 0", a["eps"]);
  expect_attr(op, "weight_decay", number_in(a["weight_decay"], 0, INFINITY), "a number >= 0",
              a["weight_decay"]);
  expect_attr(op, "grad_scale",
              a["grad_scale"].is_number() && std::isfinite(double(a["grad_scale"])),
              "a finite number", a["grad_scale"]);
  const auto& st = a["step"];
  expect_attr(op, "step",
              st.is_number() && double(st) >= 1 && double(st) == std::floor(double(st)),
              "an integer >= 1 (the 1-based step count, for bias correction)", st);
  expect_float(op, "param", in[0]);
  expect_arena(op, "grad", in[1], "param", in[0]);
  expect_arena(op, "m", in[2], "param", in[0]);
  expect_arena(op, "v", in[3], "param", in[0]);
  OutMeta o{in[0].shape(), in[0].dtype()};
  return {o, o, o};
}

template <class T>
void adamw_kernel(OpCall& c) {
  const Attrs& a = c.attrs;
  double lr = a["lr"], b1 = a["beta1"], b2 = a["beta2"], step = a["step"];
  const T decay = T(1 - lr * double(a["weight_decay"])), gs = T(double(a["grad_scale"]));
  const T beta1 = T(b1), beta2 = T(b2), one_b1 = T(1 - b1), one_b2 = T(1 - b2);
  const T step_size = T(lr / (1 - std::pow(b1, step)));
  const T bc2_sqrt = T(std::sqrt(1 - std::pow(b2, step))), eps = T(double(a["eps"]));
  const T* p = c.in[0].data<T>();
  const T* g = c.in[1].data<T>();
  const T* m = c.in[2].data<T>();
  const T* v = c.in[3].data<T>();
  T* po = c.out[0].data<T>();
  T* mo = c.out[1].data<T>();
  T* vo = c.out[2].data<T>();
  int64_t n = c.in[0].numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T gi = g[i] * gs;
    T pi = p[i] * decay;
    T mi = m[i] * beta1 + one_b1 * gi;
    T vi = v[i] * beta2 + one_b2 * gi * gi;
    T denom = std::sqrt(vi) / bc2_sqrt + eps;
    mo[i] = mi;
    vo[i] = vi;
    po[i] = pi + -step_size * mi / denom;
  }
}

template <class T>
void ema_kernel(OpCall& c) {
  double d = c.attrs["decay"];
  const T keep = T(d), take = T(1 - d);
  const T* e = c.in[0].data<T>();
  const T* p = c.in[1].data<T>();
  T* out = c.out[0].data<T>();
  int64_t n = c.in[0].numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = keep * e[i] + take * p[i];
}

// Sum of squares in double: the gradient norm decides the clipping factor, so the reference
// should not lose digits over millions of terms.
template <class T>
void grad_norm_kernel(OpCall& c) {
  const T* g = c.in[0].data<T>();
  int64_t n = c.in[0].numel();
  double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
  for (int64_t i = 0; i < n; ++i) s += double(g[i]) * double(g[i]);
  c.out[0].data<T>()[0] = T(std::sqrt(s));
}

std::vector<TestCase> adamw_tests() {
  auto arena = [](Shape s) {
    // v >= 0 like a real second moment.
    return std::vector<TestInput>{
        {s}, {s, false, -2, 2}, {s, false, -0.1, 0.1}, {s, false, 0, 0.01}};
  };
  return {{"step 1", arena({37}), {{"lr", 1e-3}, {"step", 1}}},
          {"step 2, wd", arena({3, 5, 7}), {{"lr", 1e-2}, {"step", 2}, {"weight_decay", 0.05}}},
          {"step 1000, scaled", arena({129}),
           {{"lr", 3e-4}, {"step", 1000}, {"grad_scale", 0.37}, {"weight_decay", 0.1}}},
          {"betas", arena({5, 13}),
           {{"lr", 0.1}, {"step", 7}, {"beta1", 0.8}, {"beta2", 0.99}, {"eps", 1e-6}}}};
}

}  // namespace

void register_optim_ops(Registry& r) {
  OpDef adamw{.name = "adamw",
              .doc = "one AdamW step (torch.optim.AdamW math) over a flat parameter arena; the "
                     "outputs may alias param, m, v (in-place update). PyTorch: "
                     "torch.optim.AdamW, whose weight_decay default is 0.01, not 0; grad_scale "
                     "has no equivalent there (clip_grad_norm_ scales the gradients instead).",
              .inputs = {{"param", "parameters (flat arena)", false},
                         {"grad", "gradients, shape of param", false},
                         {"m", "first moment, shape of param", false},
                         {"v", "second moment, shape of param", false}},
              .attrs = {{"lr", "learning rate"},
                        {"beta1", "first-moment decay", 0.9},
                        {"beta2", "second-moment decay", 0.999},
                        {"eps", "added to the bias-corrected sqrt(v)", 1e-8},
                        {"weight_decay", "decoupled weight decay (p -= lr wd p)", 0.0},
                        {"step", "1-based step count, for bias correction"},
                        {"grad_scale", "multiplies the gradient first (global-norm clipping)",
                         1.0}},
              .outputs = {{"param_out", "updated parameters", false},
                          {"m_out", "updated first moment", false},
                          {"v_out", "updated second moment", false}}};
  adamw.infer = infer_adamw;
  adamw.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("adamw", c.in[0].dtype(), [&](auto t) { adamw_kernel<decltype(t)>(c); });
  };
  adamw.tests = adamw_tests();
  Shape big{16 << 20};
  adamw.bench_cases = {{"16M", {{big}, {big}, {big, false, -0.1, 0.1}, {big, false, 0, 0.01}},
                        {{"lr", 1e-4}, {"step", 10}, {"weight_decay", 0.01}}}};
  r.add(std::move(adamw));

  OpDef ema{.name = "ema",
            .doc = "exponential moving average of parameters: decay * ema + (1 - decay) * param; "
                   "the output may alias ema (in place). PyTorch: ema.lerp_(param, 1 - decay).",
            .inputs = {{"ema", "averaged parameters (flat arena)", false},
                       {"param", "current parameters, shape of ema", false}},
            .attrs = {{"decay", "weight of the old average, in [0, 1]"}},
            .outputs = {{"ema_out", "updated average", false}}};
  ema.infer = [](const std::vector<Tensor>& in, const Attrs& a) -> std::vector<OutMeta> {
    expect_attr("ema", "decay", number_in(a["decay"], 0, 1), "a number in [0, 1]", a["decay"]);
    expect_float("ema", "ema", in[0]);
    expect_arena("ema", "param", in[1], "ema", in[0]);
    return {{in[0].shape(), in[0].dtype()}};
  };
  ema.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("ema", c.in[0].dtype(), [&](auto t) { ema_kernel<decltype(t)>(c); });
  };
  ema.tests = {{"0.999", {{{37}}, {{37}}}, {{"decay", 0.999}}},
               {"0.5", {{{3, 5, 7}}, {{3, 5, 7}}}, {{"decay", 0.5}}},
               {"0 (copy)", {{{13}}, {{13}}}, {{"decay", 0.0}}}};
  ema.bench_cases = {{"16M", {{big}, {big}}, {{"decay", 0.9999}}}};
  r.add(std::move(ema));

  OpDef norm{.name = "grad_norm",
             .doc = "global L2 norm sqrt(sum g^2) of a flat gradient arena, as a scalar [], "
                    "accumulated in double. PyTorch: the value clip_grad_norm_ returns.",
             .inputs = {{"g", "gradients (flat arena, any shape)", false}},
             .outputs = {{"norm", "scalar []; f32 for bf16 gradients", false}}};
  norm.infer = [](const std::vector<Tensor>& in, const Attrs&) -> std::vector<OutMeta> {
    expect_float("grad_norm", "g", in[0]);
    return {{{}, statistic_dtype(in[0].dtype())}};
  };
  norm.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("grad_norm", c.in[0].dtype(),
                        [&](auto t) { grad_norm_kernel<decltype(t)>(c); });
  };
  norm.tests = {{"one", {{{1}}}}, {"odd", {{{3, 5, 7}, false, -3, 3}}}, {"long", {{{70001}}}}};
  // A tree sum in f32 on the GPU against a double sum on the CPU: relative error ~ log2(n) ulp.
  norm.parity_tol = 1e-5;
  norm.bench_cases = {{"16M", {{big}}}};
  r.add(std::move(norm));
}

}  // namespace sd
