// Fused elementwise chains of the model: a norm followed by the conditioning scale/shift (and
// SiLU), and a bias followed by GELU. Each replaces 2-3 ops that would each read and write the
// whole activation, and the tape saves the op's input and output instead of every intermediate.
//   group_norm_mod:  x [B, C, *spatial], statistics as group_norm (per (b, group)),
//                    n = xh * gamma + beta,  u = n * (1 + scale[b, c]) + shift[b, c],
//                    y = act(u), act = SiLU (attr silu, default on) or the identity
//   layer_norm_mod:  x [B, N, C], statistics as layer_norm (per token row), the same n, u, y with
//                    scale/shift [B, C] broadcast over the tokens (silu default off)
//   backward (both), recomputing u from x, mean, rstd: gu = g * act'(u), with per (b, c) sums
//                    over the positions / tokens P = sum gu * xh, Q = sum gu:
//                    dshift = Q,  dscale = gamma * P + beta * Q,
//                    dgamma = sum_b (1 + scale) P,  dbeta = sum_b (1 + scale) Q,
//                    dx = the norm's dx with dxh = gu * (1 + scale) * gamma
//   bias_gelu:       y = gelu(x + b) (exact erf form), b [C] on the last axis of x;
//                    dx = g * gelu'(x + b),  db = sum over rows of dx
// Conventions (validation messages, eps defaults, two-pass statistics, double accumulation) are
// the norm family's: kernels/cpu/norm.h.
#include <omp.h>

#include <cmath>

#include "kernels/cpu/common.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/vmath.h"

namespace sd {
namespace {

// Below this many elements bias_gelu runs on one thread (as the elementwise family).
constexpr int64_t kParallelMin = 1 << 15;

// exp and erf from kernels/cpu/vmath.h, so the per-element loops vectorise.
template <class T> T act(T u, bool silu) { return silu ? u * cpu::vsigmoid(u) : u; }
template <class T> T act_grad(T u, bool silu) {
  if (!silu) return T(1);
  T s = cpu::vsigmoid(u);
  return s * (T(1) + u * (T(1) - s));
}
template <class T> T gelu_cdf(T x) { return T(0.5) * (T(1) + cpu::verf(x * T(M_SQRT1_2))); }
template <class T> T gelu_pdf(T x) { return cpu::vexp(T(-0.5) * x * x) * T(0.3989422804014327); }

// silu a JSON boolean; scale and shift [B, C] of x's dtype (f32 and bf16 may mix).
void expect_mod(const std::string& op, const std::vector<Tensor>& in, const Attrs& a, int64_t B,
                int64_t C) {
  expect_attr(op, "silu", a["silu"].is_boolean(), "true or false", a["silu"]);
  for (int k = 3; k <= 4; ++k) {
    const char* name = k == 3 ? "scale" : "shift";
    expect_compatible_dtype(op, name, in[k], in[0]);
    expect_shape(op, name, in[k], {B, C});
  }
}

// dgamma, dbeta, dscale, dshift from the per (b, c) sums P, Q (see the header comment).
template <class T>
void affine_grads(GradCall& c, int64_t B, int64_t C, const std::vector<double>& P,
                  const std::vector<double>& Q) {
  const T *gamma = c.in[1].data<T>(), *beta = c.in[2].data<T>(), *sc = c.in[3].data<T>();
  T* dgamma = c.grad_in[1].defined() ? c.grad_in[1].data<T>() : nullptr;
  T* dbeta = c.grad_in[2].defined() ? c.grad_in[2].data<T>() : nullptr;
  T* dsc = c.grad_in[3].defined() ? c.grad_in[3].data<T>() : nullptr;
  T* dsh = c.grad_in[4].defined() ? c.grad_in[4].data<T>() : nullptr;
  for (int64_t ch = 0; ch < C; ++ch) {
    double dg = 0, db = 0;
    for (int64_t b = 0; b < B; ++b) {
      size_t i = size_t(b * C + ch);
      double k = 1.0 + double(sc[i]);
      dg += k * P[i];
      db += k * Q[i];
      if (dsc) dsc[i] = T(double(gamma[ch]) * P[i] + double(beta[ch]) * Q[i]);
      if (dsh) dsh[i] = T(Q[i]);
    }
    if (dgamma) dgamma[ch] = T(dg);
    if (dbeta) dbeta[ch] = T(db);
  }
}

// ---- group_norm_mod ----

// One (b, group) per iteration: its Cg * S values are contiguous. Statistics read x twice (two
// passes, as group_norm), the output pass reads it once more and writes y once; the per-channel
// coefficients are hoisted out of the position loop.
template <class T>
void group_norm_mod_forward(OpCall& c, cpu::GroupDims d, double eps, bool silu) {
  const T *x = c.in[0].data<T>(), *gamma = c.in[1].data<T>(), *beta = c.in[2].data<T>();
  const T *sc = c.in[3].data<T>(), *sh = c.in[4].data<T>();
  T *y = c.out[0].data<T>(), *mean = c.out[1].data<T>(), *rstd = c.out[2].data<T>();
  int64_t Cg = d.C / d.G, n = Cg * d.S;
#pragma omp parallel for
  for (int64_t bg = 0; bg < d.B * d.G; ++bg) {
    const T* xs = x + bg * n;
    T* ys = y + bg * n;
    cpu::moments(xs, n, eps, mean[bg], rstd[bg]);
    T m = mean[bg], rs = rstd[bg];
    for (int64_t ci = 0; ci < Cg; ++ci) {
      int64_t ch = (bg % d.G) * Cg + ci, bc = (bg / d.G) * d.C + ch;
      T a = rs * gamma[ch], bt = beta[ch], k = T(1) + sc[bc], t = sh[bc];
      for (int64_t s = ci * d.S; s < (ci + 1) * d.S; ++s)
        ys[s] = act(((xs[s] - m) * a + bt) * k + t, silu);
    }
  }
}

// Derivation: y = act(u), u = n (1 + scale) + shift, n = xh gamma + beta. The chain rule through
// act gives gu = g act'(u); through u: dshift = sum gu, dscale = sum gu n = gamma P + beta Q
// (P = sum gu xh, Q = sum gu over the channel's positions), dn = gu (1 + scale); through n:
// dgamma = sum_b (1 + scale) P, dbeta = sum_b (1 + scale) Q, dxh = dn gamma; and dxh goes
// through the norm's backward (norm.cpp) unchanged.
// Per (b, group): pass 1 recomputes u, forms gu, and takes the per-channel sums P, Q (which also
// give the group sums of the dx formula); dx holds gu meanwhile, so pass 2 reads it back instead
// of re-evaluating the activation.
template <class T>
void group_norm_mod_backward(GradCall& c, cpu::GroupDims d, bool silu) {
  const T *x = c.in[0].data<T>(), *gamma = c.in[1].data<T>(), *beta = c.in[2].data<T>();
  const T *sc = c.in[3].data<T>(), *sh = c.in[4].data<T>();
  const T *mean = c.out[1].data<T>(), *rstd = c.out[2].data<T>(), *g = c.grad_out[0].data<T>();
  T* dx = c.grad_in[0].defined() ? c.grad_in[0].data<T>() : nullptr;
  int64_t Cg = d.C / d.G, n = Cg * d.S;
  std::vector<double> P(size_t(d.B * d.C)), Q(size_t(d.B * d.C));
#pragma omp parallel for
  for (int64_t bg = 0; bg < d.B * d.G; ++bg) {
    const T *xs = x + bg * n, *gs = g + bg * n;
    T* dxs = dx ? dx + bg * n : nullptr;
    T m = mean[bg], rs = rstd[bg];
    int64_t ch0 = (bg % d.G) * Cg, bc0 = (bg / d.G) * d.C + ch0;
    double s1 = 0, s2 = 0;
    for (int64_t ci = 0; ci < Cg; ++ci) {
      T a = rs * gamma[ch0 + ci], bt = beta[ch0 + ci], k = T(1) + sc[bc0 + ci], t = sh[bc0 + ci];
      double p = 0, q = 0;
#pragma omp simd reduction(+ : p, q)
      for (int64_t s = ci * d.S; s < (ci + 1) * d.S; ++s) {
        T gu = gs[s] * act_grad(((xs[s] - m) * a + bt) * k + t, silu);
        p += double(gu) * double((xs[s] - m) * rs);
        q += gu;
        if (dxs) dxs[s] = gu;
      }
      P[size_t(bc0 + ci)] = p;
      Q[size_t(bc0 + ci)] = q;
      double kg = double(k) * double(gamma[ch0 + ci]);
      s1 += kg * q;
      s2 += kg * p;
    }
    if (!dxs) continue;
    T k1 = T(s1 / double(n)), k2 = T(s2 / double(n));
    for (int64_t ci = 0; ci < Cg; ++ci) {
      T kg = (T(1) + sc[bc0 + ci]) * gamma[ch0 + ci];
      for (int64_t s = ci * d.S; s < (ci + 1) * d.S; ++s)
        dxs[s] = rs * (dxs[s] * kg - k1 - (xs[s] - m) * rs * k2);
    }
  }
  affine_grads<T>(c, d.B, d.C, P, Q);
}

// ---- layer_norm_mod ----

// One token row per iteration: two statistics passes and one output pass over the row.
template <class T>
void layer_norm_mod_forward(OpCall& c, int64_t B, int64_t N, int64_t C, double eps, bool silu) {
  const T *x = c.in[0].data<T>(), *gamma = c.in[1].data<T>(), *beta = c.in[2].data<T>();
  const T *sc = c.in[3].data<T>(), *sh = c.in[4].data<T>();
  T *y = c.out[0].data<T>(), *mean = c.out[1].data<T>(), *rstd = c.out[2].data<T>();
#pragma omp parallel for
  for (int64_t r = 0; r < B * N; ++r) {
    const T *xr = x + r * C, *scb = sc + (r / N) * C, *shb = sh + (r / N) * C;
    T* yr = y + r * C;
    cpu::moments(xr, C, eps, mean[r], rstd[r]);
    T m = mean[r], rs = rstd[r];
    for (int64_t j = 0; j < C; ++j)
      yr[j] = act(((xr[j] - m) * rs * gamma[j] + beta[j]) * (T(1) + scb[j]) + shb[j], silu);
  }
}

// Rows are independent for dx; P and Q (per (b, c), summed over tokens) accumulate into one
// double buffer per thread, added up at the end, so no two threads write the same element.
template <class T>
void layer_norm_mod_backward(GradCall& c, int64_t B, int64_t N, int64_t C, bool silu) {
  const T *x = c.in[0].data<T>(), *gamma = c.in[1].data<T>(), *beta = c.in[2].data<T>();
  const T *sc = c.in[3].data<T>(), *sh = c.in[4].data<T>();
  const T *mean = c.out[1].data<T>(), *rstd = c.out[2].data<T>(), *g = c.grad_out[0].data<T>();
  T* dx = c.grad_in[0].defined() ? c.grad_in[0].data<T>() : nullptr;
  size_t BC = size_t(B * C);
  std::vector<double> part(size_t(omp_get_max_threads()) * 2 * BC, 0.0);
#pragma omp parallel
  {
    double* acc = part.data() + size_t(omp_get_thread_num()) * 2 * BC;
#pragma omp for
    for (int64_t r = 0; r < B * N; ++r) {
      const T *xr = x + r * C, *gr = g + r * C;
      const T *scb = sc + (r / N) * C, *shb = sh + (r / N) * C;
      double *pr = acc + (r / N) * C, *qr = acc + BC + (r / N) * C;
      T* dxr = dx ? dx + r * C : nullptr;
      T m = mean[r], rs = rstd[r];
      double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
      for (int64_t j = 0; j < C; ++j) {
        T xh = (xr[j] - m) * rs, k = T(1) + scb[j];
        T gu = gr[j] * act_grad((xh * gamma[j] + beta[j]) * k + shb[j], silu);
        pr[j] += double(gu) * double(xh);
        qr[j] += gu;
        T dxh = gu * k * gamma[j];
        s1 += dxh;
        s2 += double(dxh) * double(xh);
        if (dxr) dxr[j] = gu;
      }
      if (!dxr) continue;
      T k1 = T(s1 / double(C)), k2 = T(s2 / double(C));
      for (int64_t j = 0; j < C; ++j)
        dxr[j] = rs * (dxr[j] * (T(1) + scb[j]) * gamma[j] - k1 - (xr[j] - m) * rs * k2);
    }
  }
  size_t threads = part.size() / (2 * BC);
  std::vector<double> P(BC, 0.0), Q(BC, 0.0);
  for (size_t t = 0; t < threads; ++t)
    for (size_t i = 0; i < BC; ++i) {
      P[i] += part[t * 2 * BC + i];
      Q[i] += part[t * 2 * BC + BC + i];
    }
  affine_grads<T>(c, B, C, P, Q);
}

// ---- bias_gelu ----

template <class T>
void bias_gelu_forward(OpCall& c, int64_t rows, int64_t C) {
  const T *x = c.in[0].data<T>(), *b = c.in[1].data<T>();
  T* y = c.out[0].data<T>();
#pragma omp parallel for if (rows * C >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < C; ++j) {
      T v = x[r * C + j] + b[j];
      y[r * C + j] = v * gelu_cdf(v);
    }
}

// dx per element; db sums dx over rows into one double buffer per thread.
template <class T>
void bias_gelu_backward(GradCall& c, int64_t rows, int64_t C) {
  const T *x = c.in[0].data<T>(), *b = c.in[1].data<T>(), *g = c.grad_out[0].data<T>();
  T* dx = c.grad_in[0].defined() ? c.grad_in[0].data<T>() : nullptr;
  T* db = c.grad_in[1].defined() ? c.grad_in[1].data<T>() : nullptr;
  bool par = rows * C >= kParallelMin;
  std::vector<double> part(size_t(par ? omp_get_max_threads() : 1) * C, 0.0);
#pragma omp parallel if (par)
  {
    double* acc = part.data() + size_t(omp_get_thread_num()) * C;
#pragma omp for
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < C; ++j) {
        T v = x[r * C + j] + b[j];
        T d = g[r * C + j] * (gelu_cdf(v) + v * gelu_pdf(v));
        if (dx) dx[r * C + j] = d;
        acc[j] += d;
      }
  }
  if (!db) return;
  for (int64_t j = 0; j < C; ++j) {
    double s = 0;
    for (size_t t = 0; t < part.size() / size_t(C); ++t) s += part[t * C + j];
    db[j] = T(s);
  }
}

}  // namespace

void register_fused_ops(Registry& r) {
  const std::vector<InputSpec> mod_inputs = {
      {"gamma", "[C] norm scale"},
      {"beta", "[C] norm shift"},
      {"scale", "[B, C] conditioning scale (multiplies by 1 + scale)"},
      {"shift", "[B, C] conditioning shift"}};

  OpDef gn{.name = "group_norm_mod",
           .doc =
               "act((group_norm(x) * gamma + beta) * (1 + scale) + shift) on x [B, C, *spatial], "
               "act = SiLU or identity: group_norm, scale_shift and silu in one pass. PyTorch: "
               "F.silu(F.group_norm(x, groups, gamma, beta, eps) * (1 + scale[:, :, None, None]) "
               "+ shift[:, :, None, None]).",
           .inputs = {{"x", "[B, C, *spatial]"}},
           .attrs = {{"groups", "number of channel groups (divides C)"},
                     {"eps", "added to the variance", 1e-5},
                     {"silu", "apply SiLU to the result", true}},
           .outputs = {{"y", "x's shape"},
                       {"mean", "[B, groups] per-group mean (saved for the backward)", false},
                       {"rstd", "[B, groups] per-group 1/sqrt(var + eps) (saved)", false}}};
  gn.inputs.insert(gn.inputs.end(), mod_inputs.begin(), mod_inputs.end());
  gn.infer = [](const std::vector<Tensor>& in, const Attrs& a) {
    std::vector<OutMeta> out = cpu::infer_group_norm("group_norm_mod", in, a);
    expect_mod("group_norm_mod", in, a, in[0].dim(0), in[0].dim(1));
    return out;
  };
  gn.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("group_norm_mod", c.in[0].dtype(), [&](auto t) {
      group_norm_mod_forward<decltype(t)>(c, cpu::group_dims(c.in[0], c.attrs), c.attrs["eps"],
                                          c.attrs["silu"]);
    });
  };
  gn.cpu.backward = [](GradCall& c) {
    if (cpu::zero_if_no_grad(c)) return;
    cpu::dispatch_float("group_norm_mod", c.in[0].dtype(), [&](auto t) {
      group_norm_mod_backward<decltype(t)>(c, cpu::group_dims(c.in[0], c.attrs), c.attrs["silu"]);
    });
  };
  // Groups of more than 4096 values take gamma, beta, scale, shift in [-0.1, 0.1], as in
  // group_norm's cases: the finite difference of a loss summed over many outputs is noisier.
  auto gcase = [](std::string label, Shape x, int64_t groups, bool silu) {
    int64_t B = x[0], C = x[1];
    double a = shape_numel(x) / B / groups > 4096 ? 0.1 : 1.0;
    return TestCase{label,
                    {{x, false, -2, 2},
                     {{C}, false, -a, a},
                     {{C}, false, -a, a},
                     {{B, C}, false, -a, a},
                     {{B, C}, false, -a, a}},
                    {{"groups", groups}, {"silu", silu}}};
  };
  // Odd channels per group and positions (not multiples of 4/8/32), silu on and off, groups 1
  // and C, 1-D and no spatial axes; a group of 2*64*72 values exceeds the CUDA shared cache.
  gn.tests = {gcase("C=6 G=3 5x5 silu", {2, 6, 5, 5}, 3, true),
              gcase("C=6 G=3 5x5 no silu", {2, 6, 5, 5}, 3, false),
              gcase("G=1 eps=1e-3", {2, 6, 3, 5}, 1, true),
              gcase("G=C", {3, 5, 3, 3}, 5, true),
              gcase("C=4 G=2 1-D", {2, 4, 7}, 2, false),
              gcase("no spatial", {4, 6}, 2, true),
              gcase("large group", {1, 2, 64, 72}, 1, true),
              gcase("S=16 (16-byte accesses)", {2, 8, 4, 4}, 4, true)};
  gn.tests[2].attrs["eps"] = 1e-3;
  gn.bench_cases = {gcase("B=32 C=64 32x32 G=32", {32, 64, 32, 32}, 32, true)};
  // As group_norm: fp32 block reductions in another order, rsqrtf, sums over the batch.
  gn.parity_tol = 1e-4;
  gn.saved = {"x", "gamma", "beta", "scale", "shift", "mean", "rstd"};
  r.add(std::move(gn));

  OpDef ln{.name = "layer_norm_mod",
           .doc =
               "act((layer_norm(x) * gamma + beta) * (1 + scale) + shift) on tokens x [B, N, C], "
               "act = SiLU or identity: layer_norm and scale_shift (nlc) in one pass. PyTorch: "
               "F.layer_norm(x, (C,), gamma, beta, eps) * (1 + scale[:, None]) + shift[:, None], "
               "eps 1e-6 as layer_norm's.",
           .inputs = {{"x", "[B, N, C]"}},
           .attrs = {{"eps", "added to the variance", 1e-6},
                     {"silu", "apply SiLU to the result", false}},
           .outputs = {{"y", "x's shape"},
                       {"mean", "[B, N] per-token mean (saved for the backward)", false},
                       {"rstd", "[B, N] per-token 1/sqrt(var + eps) (saved)", false}}};
  ln.inputs.insert(ln.inputs.end(), mod_inputs.begin(), mod_inputs.end());
  ln.infer = [](const std::vector<Tensor>& in, const Attrs& a) {
    expect_ndim("layer_norm_mod", "x", in[0], 3);
    std::vector<OutMeta> out = cpu::infer_layer_norm("layer_norm_mod", in, a);
    expect_mod("layer_norm_mod", in, a, in[0].dim(0), in[0].dim(2));
    out[1].shape = out[2].shape = {in[0].dim(0), in[0].dim(1)};
    return out;
  };
  ln.cpu.forward = [](OpCall& c) {
    const Tensor& x = c.in[0];
    cpu::dispatch_float("layer_norm_mod", x.dtype(), [&](auto t) {
      layer_norm_mod_forward<decltype(t)>(c, x.dim(0), x.dim(1), x.dim(2), c.attrs["eps"],
                                          c.attrs["silu"]);
    });
  };
  ln.cpu.backward = [](GradCall& c) {
    if (cpu::zero_if_no_grad(c)) return;
    const Tensor& x = c.in[0];
    cpu::dispatch_float("layer_norm_mod", x.dtype(), [&](auto t) {
      layer_norm_mod_backward<decltype(t)>(c, x.dim(0), x.dim(1), x.dim(2), c.attrs["silu"]);
    });
  };
  auto lcase = [](std::string label, Shape x, bool silu, double a = 1.0) {
    int64_t B = x[0], C = x[2];
    return TestCase{label,
                    {{x, false, -2, 2},
                     {{C}, false, -a, a},
                     {{C}, false, -a, a},
                     {{B, C}, false, -a, a},
                     {{B, C}, false, -a, a}},
                    {{"silu", silu}}};
  };
  // Odd C and N; 300 tokens of one batch so the CUDA backward splits the tokens over blocks;
  // C = 3500 exceeds the CUDA forward's shared row cache, C = 6500 the backward's shared
  // accumulators (long rows take small affine parameters, as in layer_norm's cases).
  ln.tests = {lcase("N=7 C=10", {2, 7, 10}, false),
              lcase("N=7 C=10 silu", {2, 7, 10}, true),
              lcase("C=3", {3, 4, 3}, false),
              lcase("C=37 eps=1e-3 silu", {2, 5, 37}, true),
              lcase("B=1 N=300 C=5", {1, 300, 5}, false),
              lcase("C=3500 silu", {1, 2, 3500}, true, 0.1),
              lcase("C=6500", {1, 2, 6500}, false, 0.1),
              lcase("C=64 silu (16-byte accesses)", {2, 5, 64}, true)};
  ln.tests[3].attrs["eps"] = 1e-3;
  ln.bench_cases = {lcase("32x256x512", {32, 256, 512}, false)};
  // As layer_norm: fp32 warp reductions, rsqrtf, dgamma/dbeta and dscale/dshift summed over
  // tokens in another order.
  ln.parity_tol = 1e-4;
  ln.saved = {"x", "gamma", "beta", "scale", "shift", "mean", "rstd"};
  r.add(std::move(ln));

  OpDef bg{.name = "bias_gelu",
           .doc = "gelu(x + b) with b [C] on the last axis, exact erf GELU: a linear layer's "
                  "bias and activation in one pass. PyTorch: F.gelu(x + b).",
           .inputs = {{"x", "[..., C]"}, {"b", "[C] bias"}},
           .outputs = {{"y", "x's shape"}}};
  bg.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    const std::string op = "bias_gelu";
    const Tensor& x = in[0];
    expect_float(op, "x", x);
    SD_CHECK(x.ndim() >= 1 && x.numel() > 0, op,
             ": 'x' expected at least 1 dimension and one element, got ", x.desc());
    expect_compatible_dtype(op, "b", in[1], x);
    expect_shape(op, "b", in[1], {x.dim(-1)});
    return std::vector<OutMeta>{{x.shape(), x.dtype()}};
  };
  bg.cpu.forward = [](OpCall& c) {
    int64_t C = c.in[0].dim(-1);
    cpu::dispatch_float("bias_gelu", c.in[0].dtype(), [&](auto t) {
      bias_gelu_forward<decltype(t)>(c, c.in[0].numel() / C, C);
    });
  };
  bg.cpu.backward = [](GradCall& c) {
    if (cpu::zero_if_no_grad(c)) return;
    int64_t C = c.in[0].dim(-1);
    cpu::dispatch_float("bias_gelu", c.in[0].dtype(), [&](auto t) {
      bias_gelu_backward<decltype(t)>(c, c.in[0].numel() / C, C);
    });
  };
  auto bcase = [](std::string label, Shape x) {
    return TestCase{label, {{x, false, -3, 3}, {{x.back()}}}};
  };
  // 1-D, 2-D and 3-D x; C = 33 leaves a partial 32-channel CUDA tile; 300 rows split over blocks.
  bg.tests = {bcase("1-D C=6", {6}), bcase("2-D C=10", {7, 10}), bcase("3-D C=5", {2, 7, 5}),
              bcase("3-D C=33", {2, 3, 33}), bcase("300 rows", {300, 3}),
              bcase("C=64 (16-byte accesses)", {9, 64})};
  bg.bench_cases = {bcase("32x256x2048", {32, 256, 2048})};
  // db sums over rows in another order (sequential double vs fp32 trees); erff vs std::erf.
  bg.parity_tol = 2e-5;
  bg.saved = {"x", "b"};
  r.add(std::move(bg));
}

}  // namespace sd
