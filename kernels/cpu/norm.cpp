// Normalisation family: layer norm, group norm, and the conditioning scale/shift that follows them.
//   layer_norm:  per row r of x [..., C]:  m = mean(x_r), rs = 1/sqrt(var(x_r) + eps),
//                xh = (x - m) * rs,  y = xh * gamma + beta;  outputs y, mean [rows], rstd [rows]
//   group_norm:  the same per (b, g) over the C/G channels of the group and all spatial positions,
//                gamma/beta per channel;  outputs y, mean [B, G], rstd [B, G]
//   backward (both), with dxh = g * gamma and sums over the normalised set of n elements:
//                dx = rs * (dxh - sum(dxh)/n - xh * sum(dxh * xh)/n)
//                dgamma = sum g * xh,  dbeta = sum g   (over rows / over batch and positions)
//   scale_shift: y = x * (1 + scale[b, c]) + shift[b, c];  dx = g * (1 + scale),
//                dscale = sum g * x,  dshift = sum g   (over positions / tokens)
// The mean and rstd outputs are saved statistics (not differentiable): the backward reads them
// instead of recomputing. Statistics are two-pass (mean, then the centred sum of squares), which
// does not cancel catastrophically like E[x^2] - E[x]^2, and every sum accumulates in double so
// the CPU reference is the accurate side of the CUDA parity check; elementwise math stays in T.
#include <omp.h>

#include "kernels/cpu/common.h"
#include "kernels/cpu/norm.h"
#include "kernels/scale_shift_dims.h"

namespace sd {
namespace {

double attr_eps(const std::string& op, const Attrs& a) {
  expect_attr(op, "eps", a["eps"].is_number() && double(a["eps"]) >= 0, "a number >= 0", a["eps"]);
  return a["eps"];
}

// x floating point and non-empty; gamma and beta [C] of its dtype (f32 and bf16 may mix).
void expect_affine(const std::string& op, const std::vector<Tensor>& in, int64_t C) {
  expect_float(op, "x", in[0]);
  SD_CHECK(in[0].numel() > 0, op, ": 'x' expected at least one element, got ", in[0].desc());
  for (int k = 1; k <= 2; ++k) {
    const char* name = k == 1 ? "gamma" : "beta";
    expect_compatible_dtype(op, name, in[k], in[0]);
    expect_shape(op, name, in[k], {C});
  }
}

using cpu::GroupDims;
using cpu::group_dims;
using cpu::moments;
using cpu::zero_if_no_grad;

// ---- layer_norm ----

template <class T>
void layer_norm_forward(OpCall& c, int64_t rows, int64_t C, double eps) {
  const T *x = c.in[0].data<T>(), *gamma = c.in[1].data<T>(), *beta = c.in[2].data<T>();
  T *y = c.out[0].data<T>(), *mean = c.out[1].data<T>(), *rstd = c.out[2].data<T>();
#pragma omp parallel for
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    moments(xr, C, eps, mean[r], rstd[r]);
    T m = mean[r], rs = rstd[r];
    for (int64_t j = 0; j < C; ++j) yr[j] = (xr[j] - m) * rs * gamma[j] + beta[j];
  }
}

// Derivation (one row of n = C elements; group_norm is the same over its group's n elements):
//   xh_j = (x_j - m) rs,  rs = (var + eps)^-1/2,  dm/dx_i = 1/n,  d var/dx_i = 2 (x_i - m)/n,
//   so d xh_j / d x_i = rs (delta_ij - 1/n - xh_i xh_j / n). With dxh_j = g_j gamma_j:
//   dx_i = sum_j dxh_j d xh_j/d x_i = rs (dxh_i - mean_j dxh_j - xh_i mean_j(dxh_j xh_j)).
//   y_j = xh_j gamma_j + beta_j gives dgamma = sum over rows of g xh, dbeta = sum of g.
// The saved mean and rstd give xh without a second pass over the statistics.
// dx per row (independent); dgamma/dbeta accumulate into one double buffer per thread, summed at
// the end, so no two threads write the same element.
template <class T>
void layer_norm_backward(GradCall& c, int64_t rows, int64_t C) {
  const T *x = c.in[0].data<T>(), *gamma = c.in[1].data<T>();
  const T *mean = c.out[1].data<T>(), *rstd = c.out[2].data<T>(), *g = c.grad_out[0].data<T>();
  T* dx = c.grad_in[0].defined() ? c.grad_in[0].data<T>() : nullptr;
  bool want_affine = c.grad_in[1].defined() || c.grad_in[2].defined();
  std::vector<double> part(want_affine ? size_t(omp_get_max_threads()) * 2 * C : 0, 0.0);
#pragma omp parallel
  {
    double* acc = want_affine ? part.data() + size_t(omp_get_thread_num()) * 2 * C : nullptr;
#pragma omp for
    for (int64_t r = 0; r < rows; ++r) {
      const T *xr = x + r * C, *gr = g + r * C;
      T m = mean[r], rs = rstd[r];
      // One pass for the affine sums and the row sums of the dx formula, one for dx: the row
      // is read from memory once (the second pass finds it in L1).
      double s1 = 0, s2 = 0;
      if (acc) {
        double *ag = acc, *ab = acc + C;
#pragma omp simd reduction(+ : s1, s2)
        for (int64_t j = 0; j < C; ++j) {
          T xh = (xr[j] - m) * rs, dxh = gr[j] * gamma[j];
          ag[j] += double(gr[j]) * double(xh);
          ab[j] += gr[j];
          s1 += dxh;
          s2 += dxh * xh;
        }
      } else {
#pragma omp simd reduction(+ : s1, s2)
        for (int64_t j = 0; j < C; ++j) {
          T dxh = gr[j] * gamma[j];
          s1 += dxh;
          s2 += dxh * ((xr[j] - m) * rs);
        }
      }
      if (!dx) continue;
      T k1 = T(s1 / double(C)), k2 = T(s2 / double(C));
      T* dxr = dx + r * C;
      for (int64_t j = 0; j < C; ++j) dxr[j] = rs * (gr[j] * gamma[j] - k1 - (xr[j] - m) * rs * k2);
    }
  }
  for (int k = 1; k <= 2; ++k) {
    if (!c.grad_in[k].defined()) continue;
    T* out = c.grad_in[k].data<T>();
    int64_t off = k == 1 ? 0 : C;
    for (int64_t j = 0; j < C; ++j) {
      double s = 0;
      for (size_t t = 0; t < part.size() / size_t(2 * C); ++t) s += part[t * 2 * C + off + j];
      out[j] = T(s);
    }
  }
}

// ---- group_norm ----

template <class T>
void group_norm_forward(OpCall& c, GroupDims d, double eps) {
  const T *x = c.in[0].data<T>(), *gamma = c.in[1].data<T>(), *beta = c.in[2].data<T>();
  T *y = c.out[0].data<T>(), *mean = c.out[1].data<T>(), *rstd = c.out[2].data<T>();
  int64_t Cg = d.C / d.G, n = Cg * d.S;
#pragma omp parallel for
  for (int64_t bg = 0; bg < d.B * d.G; ++bg) {
    const T* xs = x + bg * n;
    T* ys = y + bg * n;
    moments(xs, n, eps, mean[bg], rstd[bg]);
    T m = mean[bg], rs = rstd[bg];
    for (int64_t ci = 0; ci < Cg; ++ci) {
      int64_t ch = (bg % d.G) * Cg + ci;
      T a = rs * gamma[ch], sh = beta[ch];
      for (int64_t s = ci * d.S; s < (ci + 1) * d.S; ++s) ys[s] = (xs[s] - m) * a + sh;
    }
  }
}

// Per (b, channel): A = sum_s g * xh and Bsum = sum_s g. They give dgamma/dbeta (summed over b)
// and the group sums of the dx formula: sum dxh = sum_c gamma_c Bsum_c, sum dxh*xh likewise.
template <class T>
void group_norm_backward(GradCall& c, GroupDims d) {
  const T *x = c.in[0].data<T>(), *gamma = c.in[1].data<T>();
  const T *mean = c.out[1].data<T>(), *rstd = c.out[2].data<T>(), *g = c.grad_out[0].data<T>();
  T* dx = c.grad_in[0].defined() ? c.grad_in[0].data<T>() : nullptr;
  int64_t Cg = d.C / d.G, n = Cg * d.S;
  std::vector<double> A(size_t(d.B * d.C)), Bs(size_t(d.B * d.C));
#pragma omp parallel for
  for (int64_t bg = 0; bg < d.B * d.G; ++bg) {
    const T *xs = x + bg * n, *gs = g + bg * n;
    T m = mean[bg], rs = rstd[bg];
    int64_t ch0 = (bg % d.G) * Cg;
    double s1 = 0, s2 = 0;
    for (int64_t ci = 0; ci < Cg; ++ci) {
      double a = 0, b = 0;
      const T *xc = xs + ci * d.S, *gc = gs + ci * d.S;
#pragma omp simd reduction(+ : a, b)
      for (int64_t s = 0; s < d.S; ++s) {
        a += double(gc[s]) * double((xc[s] - m) * rs);
        b += gc[s];
      }
      int64_t idx = (bg / d.G) * d.C + ch0 + ci;
      A[idx] = a;
      Bs[idx] = b;
      s1 += double(gamma[ch0 + ci]) * b;
      s2 += double(gamma[ch0 + ci]) * a;
    }
    if (!dx) continue;
    T k1 = T(s1 / double(n)), k2 = T(s2 / double(n));
    for (int64_t ci = 0; ci < Cg; ++ci) {
      T gm = gamma[ch0 + ci];
      for (int64_t s = ci * d.S; s < (ci + 1) * d.S; ++s)
        dx[bg * n + s] = rs * (gs[s] * gm - k1 - (xs[s] - m) * rs * k2);
    }
  }
  for (int k = 1; k <= 2; ++k) {
    if (!c.grad_in[k].defined()) continue;
    const std::vector<double>& src = k == 1 ? A : Bs;
    T* out = c.grad_in[k].data<T>();
    for (int64_t ch = 0; ch < d.C; ++ch) {
      double s = 0;
      for (int64_t b = 0; b < d.B; ++b) s += src[size_t(b * d.C + ch)];
      out[ch] = T(s);
    }
  }
}

// ---- scale_shift ----


template <class T>
void scale_shift_forward(OpCall& c, ScaleShiftDims d) {
  const T *x = c.in[0].data<T>(), *sc = c.in[1].data<T>(), *sh = c.in[2].data<T>();
  T* y = c.out[0].data<T>();
  if (!d.nlc) {
#pragma omp parallel for
    for (int64_t bc = 0; bc < d.B * d.C; ++bc) {
      T a = T(1) + sc[bc], b = sh[bc];
      for (int64_t s = bc * d.inner; s < (bc + 1) * d.inner; ++s) y[s] = x[s] * a + b;
    }
    return;
  }
#pragma omp parallel for
  for (int64_t bn = 0; bn < d.B * d.inner; ++bn) {
    const T *scb = sc + (bn / d.inner) * d.C, *shb = sh + (bn / d.inner) * d.C;
    for (int64_t ch = 0; ch < d.C; ++ch)
      y[bn * d.C + ch] = x[bn * d.C + ch] * (T(1) + scb[ch]) + shb[ch];
  }
}

template <class T>
void scale_shift_backward(GradCall& c, ScaleShiftDims d) {
  const T *x = c.in[0].data<T>(), *sc = c.in[1].data<T>(), *g = c.grad_out[0].data<T>();
  T* dx = c.grad_in[0].defined() ? c.grad_in[0].data<T>() : nullptr;
  T* dsc = c.grad_in[1].defined() ? c.grad_in[1].data<T>() : nullptr;
  T* dsh = c.grad_in[2].defined() ? c.grad_in[2].data<T>() : nullptr;
  if (!d.nlc) {
#pragma omp parallel for
    for (int64_t bc = 0; bc < d.B * d.C; ++bc) {
      int64_t lo = bc * d.inner, hi = lo + d.inner;
      double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
      for (int64_t s = lo; s < hi; ++s) {
        a += double(g[s]) * double(x[s]);
        b += g[s];
      }
      if (dsc) dsc[bc] = T(a);
      if (dsh) dsh[bc] = T(b);
      if (dx)
        for (int64_t s = lo; s < hi; ++s) dx[s] = g[s] * (T(1) + sc[bc]);
    }
    return;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < d.B; ++b) {
    std::vector<double> acc(size_t(2 * d.C), 0.0);
    for (int64_t nn = 0; nn < d.inner; ++nn) {
      int64_t row = (b * d.inner + nn) * d.C;
      for (int64_t ch = 0; ch < d.C; ++ch) {
        acc[ch] += double(g[row + ch]) * double(x[row + ch]);
        acc[d.C + ch] += g[row + ch];
        if (dx) dx[row + ch] = g[row + ch] * (T(1) + sc[b * d.C + ch]);
      }
    }
    for (int64_t ch = 0; ch < d.C; ++ch) {
      if (dsc) dsc[b * d.C + ch] = T(acc[ch]);
      if (dsh) dsh[b * d.C + ch] = T(acc[d.C + ch]);
    }
  }
}

}  // namespace

namespace cpu {

std::vector<OutMeta> infer_layer_norm(const std::string& op, const std::vector<Tensor>& in,
                                      const Attrs& a) {
  attr_eps(op, a);
  SD_CHECK(in[0].ndim() >= 1, op, ": 'x' expected at least 1 dimension, got ", in[0].desc());
  expect_affine(op, in, in[0].dim(-1));
  int64_t rows = in[0].numel() / in[0].dim(-1);
  DType dt = in[0].dtype(), st = statistic_dtype(dt);
  return {{in[0].shape(), dt}, {{rows}, st}, {{rows}, st}};
}

std::vector<OutMeta> infer_group_norm(const std::string& op, const std::vector<Tensor>& in,
                                      const Attrs& a) {
  attr_eps(op, a);
  expect_attr(op, "groups", a["groups"].is_number_integer() && int64_t(a["groups"]) >= 1,
              "an integer >= 1", a["groups"]);
  const Tensor& x = in[0];
  SD_CHECK(x.ndim() >= 2, op, ": 'x' expected [B, C, *spatial] (at least 2 dimensions), got ",
           x.desc());
  int64_t C = x.dim(1), G = a["groups"];
  SD_CHECK(C % G == 0, op, ": channels C = ", C, " are not divisible by groups = ", G, " (x ",
           x.desc(), ")");
  expect_affine(op, in, C);
  DType st = statistic_dtype(x.dtype());
  return {{x.shape(), x.dtype()}, {{x.dim(0), G}, st}, {{x.dim(0), G}, st}};
}

bool zero_if_no_grad(GradCall& c) {
  if (c.grad_out[0].defined()) return false;
  for (auto& t : c.grad_in)
    if (t.defined()) t.zero_();
  return true;
}

}  // namespace cpu

void register_norm_ops(Registry& r) {
  OpDef ln{
      .name = "layer_norm",
      .doc = "normalise over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta, "
             "biased variance; also returns the per-row mean and rstd. PyTorch: "
             "F.layer_norm(x, (C,), gamma, beta, eps), whose eps default is 1e-5, not 1e-6.",
      .inputs = {{"x", "[..., C]"}, {"gamma", "[C] scale"}, {"beta", "[C] shift"}},
      .attrs = {{"eps", "added to the variance", 1e-6}},
      .outputs = {{"y", "x's shape"},
                  {"mean", "[rows] per-row mean (saved for the backward)", false},
                  {"rstd", "[rows] per-row 1/sqrt(var + eps) (saved for the backward)", false}}};
  ln.infer = [](const std::vector<Tensor>& in, const Attrs& a) {
    return cpu::infer_layer_norm("layer_norm", in, a);
  };
  ln.cpu.forward = [](OpCall& c) {
    int64_t C = c.in[0].dim(-1);
    cpu::dispatch_float("layer_norm", c.in[0].dtype(), [&](auto t) {
      layer_norm_forward<decltype(t)>(c, c.in[0].numel() / C, C, c.attrs["eps"]);
    });
  };
  ln.cpu.backward = [](GradCall& c) {
    if (zero_if_no_grad(c)) return;
    int64_t C = c.in[0].dim(-1);
    cpu::dispatch_float("layer_norm", c.in[0].dtype(), [&](auto t) {
      layer_norm_backward<decltype(t)>(c, c.in[0].numel() / C, C);
    });
  };
  // Odd C (3, 5, 37) for tails; C % 4 == 0 for the CUDA float4 path; C = 3500 exceeds the CUDA
  // forward's shared-memory row cache, C = 6500 and 6501 its shared dgamma/dbeta accumulator.
  // The long rows take small gamma and beta: the rounding noise of the gradient check's loss
  // grows with the size of the outputs it sums and would otherwise exceed the tolerance.
  ln.tests = {
      {"C=3", {{{4, 3}, false, -2, 2}, {{3}}, {{3}}}},
      {"C=5 3-D", {{{2, 3, 5}, false, -2, 2}, {{5}}, {{5}}}},
      {"C=37", {{{5, 37}, false, -2, 2}, {{37}}, {{37}}}},
      {"C=64 eps=1e-3", {{{3, 64}, false, -2, 2}, {{64}}, {{64}}}, {{"eps", 1e-3}}},
      {"C=3500", {{{2, 3500}, false, -2, 2}, {{3500}, false, -.1, .1}, {{3500}, false, -.1, .1}}},
      {"C=6500", {{{1, 6500}, false, -2, 2}, {{6500}, false, -.1, .1}, {{6500}, false, -.1, .1}}},
      {"C=6501", {{{1, 6501}, false, -2, 2}, {{6501}, false, -.1, .1}, {{6501}, false, -.1, .1}}}};
  ln.bench_cases = {{"65536x1024", {{{65536, 1024}}, {{1024}}, {{1024}}}}};
  // fp32 statistics reduced in another order (warp trees vs sequential double), rsqrtf, and
  // dgamma/dbeta summed over every row in a different order: a few ulp of the largest value.
  ln.parity_tol = 1e-4;
  ln.saved = {"x", "gamma", "mean", "rstd"};
  r.add(std::move(ln));

  OpDef gn{.name = "group_norm",
           .doc =
               "normalise x [B, C, *spatial] over each group of C/groups channels and all "
               "positions, then per-channel gamma, beta; also returns the per-group mean and "
               "rstd. PyTorch: F.group_norm(x, groups, gamma, beta, eps) (the same eps "
               "default).",
           .inputs = {{"x", "[B, C, *spatial]"}, {"gamma", "[C] scale"}, {"beta", "[C] shift"}},
           .attrs = {{"groups", "number of channel groups (divides C)"},
                     {"eps", "added to the variance", 1e-5}},
           .outputs = {{"y", "x's shape"},
                       {"mean", "[B, groups] per-group mean (saved for the backward)", false},
                       {"rstd", "[B, groups] per-group 1/sqrt(var + eps) (saved)", false}}};
  gn.infer = [](const std::vector<Tensor>& in, const Attrs& a) {
    return cpu::infer_group_norm("group_norm", in, a);
  };
  gn.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("group_norm", c.in[0].dtype(), [&](auto t) {
      group_norm_forward<decltype(t)>(c, group_dims(c.in[0], c.attrs), c.attrs["eps"]);
    });
  };
  gn.cpu.backward = [](GradCall& c) {
    if (zero_if_no_grad(c)) return;
    cpu::dispatch_float("group_norm", c.in[0].dtype(), [&](auto t) {
      group_norm_backward<decltype(t)>(c, group_dims(c.in[0], c.attrs));
    });
  };
  // Large groups take gamma, beta in [-0.1, 0.1]: as for long layer_norm rows, the finite
  // difference of a loss summed over ~18k outputs otherwise carries ~5e-7 of rounding noise.
  auto gcase = [](std::string label, Shape x, int64_t groups) {
    int64_t C = x[1];
    double a = shape_numel(x) / x[0] / groups > 4096 ? 0.1 : 1.0;
    return TestCase{label, {{x, false, -2, 2}, {{C}, false, -a, a}, {{C}, false, -a, a}},
                    {{"groups", groups}}};
  };
  // groups 1, C and in between; odd spatial sizes; 1-D and 3-D spatial; S % 4 == 0 for the CUDA
  // float4 path; groups of 2*96*96 and 2*95*97 values exceed the CUDA shared-memory cache.
  gn.tests = {gcase("G=1", {2, 6, 3, 5}, 1),           gcase("G=2 eps=1e-3", {2, 6, 3, 5}, 2),
              gcase("G=3", {2, 6, 3, 5}, 3),           gcase("G=C", {2, 6, 3, 5}, 6),
              gcase("C=5 G=5 1-D", {3, 5, 7}, 5),      gcase("3-D spatial", {2, 3, 2, 3, 2}, 3),
              gcase("S=16", {2, 8, 4, 4}, 4),          gcase("no spatial", {4, 6}, 2),
              gcase("large group", {1, 2, 96, 96}, 1), gcase("large odd group", {1, 2, 95, 97}, 1)};
  gn.tests[1].attrs["eps"] = 1e-3;
  gn.bench_cases = {gcase("B=32 C=256 32x32 G=32", {32, 256, 32, 32}, 32)};
  // As layer_norm: fp32 block reductions in another order, rsqrtf, dgamma summed over the batch.
  gn.parity_tol = 1e-4;
  gn.saved = {"x", "gamma", "mean", "rstd"};
  r.add(std::move(gn));

  OpDef ss{
      .name = "scale_shift",
      .doc =
          "x * (1 + scale) + shift with scale, shift [B, C]; channels on axis 1 (nchw) or "
          "last (nlc). PyTorch has no op: x * (1 + scale[:, :, None, None]) + shift[:, :, None, "
          "None] (DiT's adaLN modulate).",
      .inputs = {{"x", "[B, C, *spatial] (nchw) or [B, N, C] (nlc)"},
                 {"scale", "[B, C]"},
                 {"shift", "[B, C]"}},
      .attrs = {{"layout", "\"nchw\" (channels on axis 1) or \"nlc\" (channels last)", "nchw"}},
      .outputs = {{"y", "x's shape"}}};
  ss.infer = [](const std::vector<Tensor>& in, const Attrs& a) {
    const std::string op = "scale_shift";
    expect_attr(op, "layout", a["layout"] == "nchw" || a["layout"] == "nlc", "\"nchw\" or \"nlc\"",
                a["layout"]);
    const Tensor& x = in[0];
    expect_float(op, "x", x);
    if (a["layout"] == "nlc")
      expect_ndim(op, "x", x, 3);
    else
      SD_CHECK(x.ndim() >= 2, op, ": 'x' expected [B, C, *spatial] for layout nchw, got ",
               x.desc());
    SD_CHECK(x.numel() > 0, op, ": 'x' expected at least one element, got ", x.desc());
    ScaleShiftDims d = scale_shift_dims(x, a);
    for (int k = 1; k <= 2; ++k) {
      const char* name = k == 1 ? "scale" : "shift";
      expect_compatible_dtype(op, name, in[k], x);
      expect_shape(op, name, in[k], {d.B, d.C});
    }
    return std::vector<OutMeta>{{x.shape(), x.dtype()}};
  };
  ss.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("scale_shift", c.in[0].dtype(), [&](auto t) {
      scale_shift_forward<decltype(t)>(c, scale_shift_dims(c.in[0], c.attrs));
    });
  };
  ss.cpu.backward = [](GradCall& c) {
    if (zero_if_no_grad(c)) return;
    cpu::dispatch_float("scale_shift", c.in[0].dtype(), [&](auto t) {
      scale_shift_backward<decltype(t)>(c, scale_shift_dims(c.in[0], c.attrs));
    });
  };
  auto scase = [](std::string label, Shape x, std::string layout) {
    int64_t C = layout == "nlc" ? x[2] : x[1];
    return TestCase{label, {{x, false, -2, 2}, {{x[0], C}}, {{x[0], C}}}, {{"layout", layout}}};
  };
  // Odd channels and positions; S % 4 == 0 and C % 4 == 0 for the CUDA float4 paths; 300 tokens
  // so the CUDA nlc reduction splits the token axis.
  ss.tests = {scase("nchw 1-D", {2, 3, 5}, "nchw"),    scase("nchw 3x3", {2, 5, 3, 3}, "nchw"),
              scase("nchw S=8", {2, 4, 2, 4}, "nchw"), scase("nlc C=5", {2, 7, 5}, "nlc"),
              scase("nlc C=8", {3, 5, 8}, "nlc"),      scase("nlc N=300", {1, 300, 5}, "nlc")};
  ss.bench_cases = {scase("nchw 32x256x32x32", {32, 256, 32, 32}, "nchw"),
                    scase("nlc 32x256x1024", {32, 256, 1024}, "nlc")};
  // dscale/dshift sum over positions in another order (sequential double vs fp32 trees).
  ss.parity_tol = 2e-5;
  ss.saved = {"x", "scale"};
  r.add(std::move(ss));
}

}  // namespace sd
