// Image ops on NCHW tensors: conv2d (square kernel, stride, zero padding, optional bias),
// space_to_depth / depth_to_space (PyTorch's pixel_unshuffle / pixel_shuffle channel order),
// non-overlapping average pooling and nearest-neighbour upsampling.
//   conv2d:  y_b = W col(x_b) + b       with col(x_b) [C*k*k, Ho*Wo] the im2col matrix, W [O, C*k*k]
//            dW = sum_b g_b col(x_b)^T,  dx_b = col2im(W^T g_b),  db = sum over b, y, x of g
//            3x3 stride-1 padding-1 convolutions (all of the model's 3x3s) run Winograd F(4x4, 3x3)
//            instead (kernels/cpu/conv_winograd.cpp, 2-5x faster); im2col + GEMM stays their
//            reference (SIMDIFF_CONV3X3=reference, tests/test_conv_fast.cpp) and runs the rest.
//   space_to_depth: y[b, c*p*p + dy*p + dx, i, j] = x[b, c, i*p + dy, j*p + dx]; depth_to_space is
//            its inverse, and each one's backward is the other.
//   avg_pool2d:  y = mean of each k x k block      dx = g / k^2 spread over the block
//   upsample_nearest:  y = x repeated f x f        dx = sum of g over each f x f block
#include <cblas.h>
#include <omp.h>

#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/conv_winograd.h"

namespace sd {
namespace {

struct ConvDims {
  int64_t B, C, H, W, O, k, s, p, Ho, Wo;
  bool direct() const { return k == 1 && s == 1 && p == 0; }  // im2col would copy x unchanged
  // The model's 3x3 convolutions take the Winograd path (kernels/cpu/conv_winograd.cpp); the
  // im2col + GEMM code below is the reference it is tested against and runs everything else.
  bool winograd() const { return k == 3 && s == 1 && p == 1 && !cpu::conv3x3_reference(); }
  cpu::Conv3x3Dims dims3x3() const { return {B, C, H, W, O}; }
};

// Validates the inputs and attributes of conv2d and returns its sizes.
ConvDims conv_dims(const std::vector<Tensor>& in, const Attrs& at) {
  const Tensor &x = in[0], &w = in[1], &b = in[2];
  for (const char* a : {"stride", "padding"})
    expect_attr("conv2d", a, at[a].is_number_integer(), "an integer", at[a]);
  ConvDims d;
  d.s = at["stride"];
  d.p = at["padding"];
  expect_attr("conv2d", "stride", d.s >= 1, "an integer >= 1", at["stride"]);
  expect_attr("conv2d", "padding", d.p >= 0, "an integer >= 0", at["padding"]);
  expect_float("conv2d", "x", x);
  expect_float("conv2d", "w", w);
  expect_compatible_dtype("conv2d", "w", w, x);
  expect_ndim("conv2d", "x", x, 4);
  expect_ndim("conv2d", "w", w, 4);
  d.B = x.dim(0), d.C = x.dim(1), d.H = x.dim(2), d.W = x.dim(3);
  d.O = w.dim(0), d.k = w.dim(2);
  SD_CHECK(w.dim(1) == d.C, "conv2d: 'w' expected [O, ", d.C, ", k, k] (", d.C,
           " input channels like x ", x.desc(), "), got ", w.desc());
  SD_CHECK(w.dim(3) == d.k && d.k >= 1, "conv2d: 'w' expected a square kernel [O, C, k, k], got ",
           w.desc());
  if (b.defined()) {
    expect_compatible_dtype("conv2d", "b", b, x);
    expect_shape("conv2d", "b", b, {d.O});
  }
  SD_CHECK(d.H + 2 * d.p >= d.k && d.W + 2 * d.p >= d.k, "conv2d: kernel ", d.k, "x", d.k,
           " is larger than the padded input (x ", x.desc(), ", padding ", d.p, ")");
  d.Ho = (d.H + 2 * d.p - d.k) / d.s + 1;
  d.Wo = (d.W + 2 * d.p - d.k) / d.s + 1;
  return d;
}

// See kernels/cpu/linalg.cpp: batch-parallel loops hold the pthread OpenBLAS to one thread.

// The output columns ox whose input column ox*s - p + kx lies inside [0, W): [lo, hi).
// One span per kx, the same for every channel and kernel row.
struct ValidCols {
  int64_t lo, hi;
};
std::vector<ValidCols> valid_cols(const ConvDims& d) {
  std::vector<ValidCols> spans(size_t(d.k));
  for (int64_t kx = 0; kx < d.k; ++kx) {
    int64_t lo = 0, hi = d.Wo;
    while (lo < hi && lo * d.s - d.p + kx < 0) ++lo;
    while (hi > lo && (hi - 1) * d.s - d.p + kx >= d.W) --hi;
    spans[size_t(kx)] = {lo, hi};
  }
  return spans;
}

// col[(c*k + ky)*k + kx, oy*Wo + ox] = x[c, oy*s - p + ky, ox*s - p + kx] (0 outside): one image,
// written once in order; each x element is read k*k/s^2 times, from cache. The in-bounds span of
// each output row is found once per kx, so the inner loop has no bounds test.
template <class T>
void im2col(const T* x, const ConvDims& d, T* col) {
  int64_t hw = d.Ho * d.Wo;
  std::vector<ValidCols> spans = valid_cols(d);
  for (int64_t c = 0; c < d.C; ++c)
    for (int64_t ky = 0; ky < d.k; ++ky)
      for (int64_t kx = 0; kx < d.k; ++kx) {
        T* row = col + ((c * d.k + ky) * d.k + kx) * hw;
        auto [lo, hi] = spans[size_t(kx)];
        for (int64_t oy = 0; oy < d.Ho; ++oy) {
          int64_t iy = oy * d.s - d.p + ky;
          T* r = row + oy * d.Wo;
          if (iy < 0 || iy >= d.H) {
            std::fill(r, r + d.Wo, T(0));
            continue;
          }
          const T* xr = x + (c * d.H + iy) * d.W;
          int64_t off = kx - d.p;
          std::fill(r, r + lo, T(0));
          for (int64_t ox = lo; ox < hi; ++ox) r[ox] = xr[ox * d.s + off];
          std::fill(r + hi, r + d.Wo, T(0));
        }
      }
}

// The adjoint of im2col: dx[c, iy, ix] = sum of the dcol entries im2col copied x[c, iy, ix] to.
template <class T>
void col2im(const T* dcol, const ConvDims& d, T* dx) {
  int64_t hw = d.Ho * d.Wo;
  std::vector<ValidCols> spans = valid_cols(d);
  std::fill(dx, dx + d.C * d.H * d.W, T(0));
  for (int64_t c = 0; c < d.C; ++c)
    for (int64_t ky = 0; ky < d.k; ++ky)
      for (int64_t kx = 0; kx < d.k; ++kx) {
        const T* row = dcol + ((c * d.k + ky) * d.k + kx) * hw;
        auto [lo, hi] = spans[size_t(kx)];
        for (int64_t oy = 0; oy < d.Ho; ++oy) {
          int64_t iy = oy * d.s - d.p + ky;
          if (iy < 0 || iy >= d.H) continue;
          T* xr = dx + (c * d.H + iy) * d.W;
          int64_t off = kx - d.p;
          const T* r = row + oy * d.Wo;
          for (int64_t ox = lo; ox < hi; ++ox) xr[ox * d.s + off] += r[ox];
        }
      }
}

// Threads for the per-image loop: one image per OpenMP thread when there are enough images to go
// round, else images in order with each GEMM split over the threads by cpu::gemm. Per-image
// threading measured faster on 2 cores (forward / backward, 3x3 B32 C128 32x32: 94 / 214 ms vs
// 110 / 257 ms with each GEMM threaded).
int image_threads(int64_t B) {
  int nt = omp_get_max_threads();
  return B >= nt ? nt : 1;
}

// Forward: per image, im2col (skipped for 1x1 stride-1 unpadded kernels, where col = x) then one
// GEMM [O, Ckk] x [Ckk, HoWo] into y_b, which was first filled with the bias (beta = 1).
template <class T>
void conv_forward(OpCall& c) {
  ConvDims d = conv_dims(c.in, c.attrs);
  const T *x = c.in[0].data<T>(), *w = c.in[1].data<T>();
  const T* bias = c.in[2].defined() ? c.in[2].data<T>() : nullptr;
  T* y = c.out[0].data<T>();
  if (d.winograd()) return cpu::winograd_forward(x, w, bias, y, d.dims3x3());
  int64_t hw = d.Ho * d.Wo, ckk = d.C * d.k * d.k;
  int nt = image_threads(d.B);
#pragma omp parallel num_threads(nt)
  {
    std::vector<T> col(d.direct() ? 0 : size_t(ckk * hw));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < d.B; ++b) {
      const T* src = x + b * d.C * d.H * d.W;
      if (!d.direct()) {
        im2col(src, d, col.data());
        src = col.data();
      }
      T* yb = y + b * d.O * hw;
      if (bias)
        for (int64_t o = 0; o < d.O; ++o) std::fill(yb + o * hw, yb + (o + 1) * hw, bias[o]);
      cpu::gemm(false, false, d.O, hw, ckk, T(1), w, ckk, src, hw, bias ? T(1) : T(0), yb, hw);
    }
  }
}

// Derivation: per image y_b = W col(x_b) (+ b), a matrix product, so dW = sum_b g_b col(x_b)^T
// and d col(x_b) = W^T g_b; col() copies each input element to every (tap, position) that reads
// it, so its adjoint col2im adds those copies back: dx_b = col2im(W^T g_b). db_o = sum of g_o.
// Reference backward, per image: dW += g_b col_b^T (into a per-thread partial, summed in thread
// order afterwards so the result is deterministic), dx_b = col2im(W^T g_b).
template <class T>
void conv_backward_im2col(const ConvDims& d, const T* x, const T* w, const T* g, T* dx, T* dw) {
  int64_t hw = d.Ho * d.Wo, ckk = d.C * d.k * d.k, nw = d.O * ckk;
  int nt = image_threads(d.B);
  std::vector<T> dw_part(dw && nt > 1 ? size_t(nt * nw) : 0);
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num();
    T* dw_t = nt > 1 ? dw_part.data() + t * nw : dw;
    bool first = true;  // this thread's first image overwrites its dW partial (beta = 0)
    std::vector<T> col(dw && !d.direct() ? size_t(ckk * hw) : 0);
    std::vector<T> dcol(dx && !d.direct() ? size_t(ckk * hw) : 0);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < d.B; ++b) {
      const T* gb = g + b * d.O * hw;
      int64_t xoff = b * d.C * d.H * d.W;
      if (dw) {
        const T* src = x + xoff;
        if (!d.direct()) {
          im2col(src, d, col.data());
          src = col.data();
        }
        cpu::gemm(false, true, d.O, ckk, hw, T(1), gb, hw, src, hw, first ? T(0) : T(1), dw_t,
                  ckk);
        first = false;
      }
      if (dx) {
        T* dst = d.direct() ? dx + xoff : dcol.data();
        cpu::gemm(true, false, ckk, hw, d.O, T(1), w, ckk, gb, hw, T(0), dst, hw);
        if (!d.direct()) col2im(dcol.data(), d, dx + xoff);
      }
    }
    if (dw && first) std::fill(dw_t, dw_t + nw, T(0));  // a thread that got no image
  }
  if (dw && nt > 1) {
#pragma omp parallel for
    for (int64_t i = 0; i < nw; ++i) {
      T s = 0;
      for (int t = 0; t < nt; ++t) s += dw_part[t * nw + i];
      dw[i] = s;
    }
  }
}

// Backward: dx and dW by Winograd or the reference above, db = sums of g over batch and positions.
template <class T>
void conv_backward(GradCall& c) {
  ConvDims d = conv_dims(c.in, c.attrs);
  const T *x = c.in[0].data<T>(), *w = c.in[1].data<T>(), *g = c.grad_out[0].data<T>();
  T* dx = c.grad_in[0].defined() ? c.grad_in[0].data<T>() : nullptr;
  T* dw = c.grad_in[1].defined() ? c.grad_in[1].data<T>() : nullptr;
  T* db = c.grad_in[2].defined() ? c.grad_in[2].data<T>() : nullptr;
  if (d.winograd())
    cpu::winograd_backward(x, w, g, dx, dw, d.dims3x3());
  else if (dx || dw)
    conv_backward_im2col(d, x, w, g, dx, dw);
  if (db) {
    int64_t hw = d.Ho * d.Wo;
#pragma omp parallel for if (d.B * d.O * hw >= (1 << 18))
    for (int64_t o = 0; o < d.O; ++o) {
      T s = 0;
      for (int64_t b = 0; b < d.B; ++b) {
        const T* r = g + (b * d.O + o) * hw;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < hw; ++i) s += r[i];
      }
      db[o] = s;
    }
  }
}

// ---- rearrangements and pooling: plane-parallel loops over [B*C] ----

int64_t int_attr(const std::string& op, const Attrs& at, const char* name) {
  expect_attr(op, name, at[name].is_number_integer() && at[name].get<int64_t>() >= 1,
              "an integer >= 1", at[name]);
  return at[name];
}

void expect_image(const std::string& op, const Tensor& x) {
  expect_float(op, "x", x);
  expect_ndim(op, "x", x, 4);
}

void expect_divisible(const std::string& op, const Tensor& x, const char* attr, int64_t f) {
  SD_CHECK(x.dim(2) % f == 0 && x.dim(3) % f == 0, op, ": height ", x.dim(2), " and width ",
           x.dim(3), " of x ", x.desc(), " must be divisible by ", attr, "=", f);
}

// big [B, C, H, W] <-> small [B, C*p*p, H/p, W/p] in pixel_unshuffle order. to_small copies big
// into small, otherwise small into big. Each small channel plane reads/writes p*p strided
// positions of one big plane; every element moves exactly once.
template <class T>
void pixel_unshuffle(T* big, T* small, const Shape& bs, int64_t p, bool to_small) {
  int64_t planes = bs[0] * bs[1] * p * p, h = bs[2] / p, w = bs[3] / p, W = bs[3];
#pragma omp parallel for
  for (int64_t q = 0; q < planes; ++q) {
    int64_t dy = (q / p) % p, dx = q % p, bc = q / (p * p);
    T* sp = small + q * h * w;
    T* bp = big + bc * bs[2] * W + dy * W + dx;
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j) {
        T& s = sp[i * w + j];
        T& b = bp[i * p * W + j * p];
        if (to_small) s = b;
        else b = s;
      }
  }
}

// small[b, c, i, j] = scale * sum of big over the f x f block at (i*f, j*f). Row by row, without
// a division per element (the index arithmetic made these loops ~10x slower than memory).
template <class T>
void block_sum(const T* big, T* small, const Shape& bs, int64_t f, T scale) {
  int64_t planes = bs[0] * bs[1], H = bs[2], W = bs[3], h = H / f, w = W / f;
#pragma omp parallel for if (planes * H * W >= (1 << 17))
  for (int64_t q = 0; q < planes; ++q)
    for (int64_t i = 0; i < h; ++i) {
      T* srow = small + (q * h + i) * w;
      std::fill(srow, srow + w, T(0));
      for (int64_t r = 0; r < f; ++r) {
        const T* brow = big + (q * H + i * f + r) * W;
        for (int64_t j = 0; j < w; ++j)
          for (int64_t k = 0; k < f; ++k) srow[j] += brow[j * f + k];
      }
      for (int64_t j = 0; j < w; ++j) srow[j] *= scale;
    }
}

// big[b, c, y, x] = scale * small[b, c, y/f, x/f]: the first of each f output rows is written
// element by element, the other f - 1 are copies of it.
template <class T>
void block_spread(const T* small, T* big, const Shape& bs, int64_t f, T scale) {
  int64_t planes = bs[0] * bs[1], H = bs[2], W = bs[3], h = H / f, w = W / f;
#pragma omp parallel for if (planes * H * W >= (1 << 17))
  for (int64_t q = 0; q < planes; ++q)
    for (int64_t i = 0; i < h; ++i) {
      const T* srow = small + (q * h + i) * w;
      T* brow = big + (q * H + i * f) * W;
      for (int64_t j = 0; j < w; ++j)
        for (int64_t k = 0; k < f; ++k) brow[j * f + k] = scale * srow[j];
      for (int64_t r = 1; r < f; ++r) std::copy(brow, brow + W, brow + r * W);
    }
}

template <class F>
void for_float(const char* op, const Tensor& t, F&& f) {
  cpu::dispatch_float(op, t.dtype(), std::forward<F>(f));
}

}  // namespace

void register_conv_ops(Registry& r) {
  OpDef conv{.name = "conv2d",
             .doc = "2-D convolution, NCHW: x [B,C,H,W], w [O,C,k,k], b [O] optional -> "
                    "[B, O, (H+2p-k)/s+1, (W+2p-k)/s+1], zero padding; square kernels, no "
                    "dilation or groups. PyTorch: F.conv2d (cross-correlation, the same weight "
                    "layout).",
             .inputs = {{"x", "[B, C, H, W]"}, {"w", "kernel [O, C, k, k]"}, {"b", "bias [O]", true, true}},
             .attrs = {{"stride", "step s between output positions", 1},
                       {"padding", "zeros added on each side", 0}},
             .outputs = {{"y", "[B, O, (H+2p-k)/s+1, (W+2p-k)/s+1]"}}};
  conv.infer = [](const std::vector<Tensor>& in, const Attrs& at) -> std::vector<OutMeta> {
    ConvDims d = conv_dims(in, at);
    return {{{d.B, d.O, d.Ho, d.Wo}, in[0].dtype()}};
  };
  conv.cpu.forward = [](OpCall& c) {
    for_float("conv2d", c.in[0], [&](auto t) { conv_forward<decltype(t)>(c); });
  };
  conv.cpu.backward = [](GradCall& c) {
    for_float("conv2d", c.in[0], [&](auto t) { conv_backward<decltype(t)>(c); });
  };
  auto sp = [](int s, int p) { return Attrs{{"stride", s}, {"padding", p}}; };
  conv.tests = {{"k3 s1 p1", {{{2, 3, 7, 6}}, {{5, 3, 3, 3}}, {{5}}}, sp(1, 1)},
                {"k3 s2 p1", {{{2, 3, 7, 8}}, {{5, 3, 3, 3}}, {{5}}}, sp(2, 1)},
                {"k3 s1 p0 no bias", {{{3, 2, 6, 5}}, {{4, 2, 3, 3}}, {.absent = true}}, sp(1, 0)},
                {"k3 s2 p0", {{{2, 3, 7, 7}}, {{3, 3, 3, 3}}, {{3}}}, sp(2, 0)},
                {"k1", {{{2, 5, 4, 3}}, {{3, 5, 1, 1}}, {{3}}}, sp(1, 0)},
                {"k1 s2 p1", {{{2, 3, 5, 4}}, {{3, 3, 1, 1}}, {.absent = true}}, sp(2, 1)},
                {"k2 s2 patches", {{{3, 3, 6, 4}}, {{5, 3, 2, 2}}, {{5}}}, sp(2, 0)},
                {"k5 s1 p2", {{{1, 2, 5, 6}}, {{3, 2, 5, 5}}, {{3}}}, sp(1, 2)}};
  // The model's convolutions (configs/demo.json at batch 32: embed, the 16x16 and 8x8 levels, the
  // up path's concatenated inputs, the output, the 1x1 skips; the embed at resolution 64), larger
  // U-ViT levels, and two shapes the model does not use (stride 2, 1x1 at C256).
  auto cc = [&](std::string label, int64_t B, int64_t C, int64_t O, int64_t H, int s, int k = 3) {
    return TestCase{label, {{{B, C, H, H}}, {{O, C, k, k}}, {{O}}}, sp(s, k / 2)};
  };
  conv.bench_cases = {cc("demo 3x3 B32 C12->32 16x16", 32, 12, 32, 16, 1),
                      cc("demo 3x3 B32 C32 16x16", 32, 32, 32, 16, 1),
                      cc("demo 3x3 B32 C32->64 8x8", 32, 32, 64, 8, 1),
                      cc("demo 3x3 B32 C64 8x8", 32, 64, 64, 8, 1),
                      cc("demo 3x3 B32 C128->64 8x8", 32, 128, 64, 8, 1),
                      cc("demo 3x3 B32 C96->32 16x16", 32, 96, 32, 16, 1),
                      cc("demo 3x3 B32 C32->12 16x16", 32, 32, 12, 16, 1),
                      cc("demo 1x1 B32 C32->64 8x8", 32, 32, 64, 8, 1, 1),
                      cc("demo 1x1 B32 C128->64 8x8", 32, 128, 64, 8, 1, 1),
                      cc("demo 1x1 B32 C96->32 16x16", 32, 96, 32, 16, 1, 1),
                      cc("demo 3x3 B32 C12->32 32x32", 32, 12, 32, 32, 1),  // embed at 64x64
                      cc("3x3 B32 C128 32x32", 32, 128, 128, 32, 1),
                      cc("3x3 B32 C64 64x64", 32, 64, 64, 64, 1),
                      cc("3x3 s2 B32 C128 32x32", 32, 128, 256, 32, 2),
                      cc("1x1 B32 C256 16x16", 32, 256, 128, 16, 1, 1)};
  conv.flops = [](const std::vector<Tensor>& in, const Attrs& at) {
    ConvDims d = conv_dims(in, at);
    return 2.0 * d.B * d.O * d.C * d.k * d.k * d.Ho * d.Wo;
  };
  // TF32 GEMMs on the GPU: the bound stated for matmul in kernels/cpu/linalg.cpp; the inner
  // lengths here (C*k*k <= 50, O <= 6, B*Ho*Wo <= 84) keep sum |a b| within ~3x the largest
  // output. Truncation-emulated TF32 gives at most 8e-4 on these cases.
  conv.parity_tol = 3e-3;
  conv.saved = {"x", "w"};
  r.add(std::move(conv));

  OpDef s2d{.name = "space_to_depth",
            .doc = "[B,C,H,W] -> [B, C*p*p, H/p, W/p]; channel c*p*p + dy*p + dx holds pixel "
                   "(i*p+dy, j*p+dx) of channel c. PyTorch: F.pixel_unshuffle (the same "
                   "channel order).",
            .inputs = {{"x", "[B, C, H, W], H and W divisible by p"}},
            .attrs = {{"p", "block size"}}, .outputs = {{"y", "[B, C*p*p, H/p, W/p]"}}};
  s2d.infer = [](const std::vector<Tensor>& in, const Attrs& at) -> std::vector<OutMeta> {
    const Tensor& x = in[0];
    int64_t p = int_attr("space_to_depth", at, "p");
    expect_image("space_to_depth", x);
    expect_divisible("space_to_depth", x, "p", p);
    return {{{x.dim(0), x.dim(1) * p * p, x.dim(2) / p, x.dim(3) / p}, x.dtype()}};
  };
  s2d.cpu.forward = [](OpCall& c) {
    for_float("space_to_depth", c.in[0], [&](auto t) {
      using T = decltype(t);
      pixel_unshuffle<T>(c.in[0].data<T>(), c.out[0].data<T>(), c.in[0].shape(), c.attrs["p"], true);
    });
  };
  s2d.cpu.backward = [](GradCall& c) {
    if (!c.grad_in[0].defined()) return;
    for_float("space_to_depth", c.in[0], [&](auto t) {
      using T = decltype(t);
      pixel_unshuffle<T>(c.grad_in[0].data<T>(), c.grad_out[0].data<T>(), c.in[0].shape(),
                         c.attrs["p"], false);
    });
  };
  s2d.tests = {{"p2", {{{2, 3, 4, 6}}}, {{"p", 2}}},
               {"p4", {{{2, 3, 8, 4}}}, {{"p", 4}}},
               {"p1", {{{1, 5, 3, 3}}}, {{"p", 1}}}};
  s2d.bench_cases = {{"patchify p4 [32,3,256,256]", {{{32, 3, 256, 256}}}, {{"p", 4}}}};
  s2d.saved = {};
  r.add(std::move(s2d));

  OpDef d2s{.name = "depth_to_space",
            .doc = "[B, C*p*p, H, W] -> [B, C, H*p, W*p], the inverse of space_to_depth"
                   ". PyTorch: F.pixel_shuffle.",
            .inputs = {{"x", "[B, C*p*p, H, W]"}}, .attrs = {{"p", "block size"}},
            .outputs = {{"y", "[B, C, H*p, W*p]"}}};
  d2s.infer = [](const std::vector<Tensor>& in, const Attrs& at) -> std::vector<OutMeta> {
    const Tensor& x = in[0];
    int64_t p = int_attr("depth_to_space", at, "p");
    expect_image("depth_to_space", x);
    SD_CHECK(x.dim(1) % (p * p) == 0, "depth_to_space: channels of x ", x.desc(),
             " must be divisible by p*p=", p * p);
    return {{{x.dim(0), x.dim(1) / (p * p), x.dim(2) * p, x.dim(3) * p}, x.dtype()}};
  };
  d2s.cpu.forward = [](OpCall& c) {
    for_float("depth_to_space", c.in[0], [&](auto t) {
      using T = decltype(t);
      pixel_unshuffle<T>(c.out[0].data<T>(), c.in[0].data<T>(), c.out[0].shape(), c.attrs["p"], false);
    });
  };
  d2s.cpu.backward = [](GradCall& c) {
    if (!c.grad_in[0].defined()) return;
    for_float("depth_to_space", c.in[0], [&](auto t) {
      using T = decltype(t);
      pixel_unshuffle<T>(c.grad_out[0].data<T>(), c.grad_in[0].data<T>(), c.grad_out[0].shape(),
                         c.attrs["p"], true);
    });
  };
  d2s.tests = {{"p2", {{{2, 12, 3, 2}}}, {{"p", 2}}},
               {"p4", {{{2, 32, 2, 1}}}, {{"p", 4}}},
               {"p3", {{{1, 9, 2, 3}}}, {{"p", 3}}}};
  d2s.bench_cases = {{"unpatchify p4 [32,48,64,64]", {{{32, 48, 64, 64}}}, {{"p", 4}}}};
  d2s.saved = {};
  r.add(std::move(d2s));

  OpDef pool{.name = "avg_pool2d",
             .doc = "mean over non-overlapping k x k blocks; H and W must be divisible by k. "
                    "PyTorch: F.avg_pool2d(x, k) (stride k).",
             .inputs = {{"x", "[B, C, H, W]"}}, .attrs = {{"k", "block size"}},
             .outputs = {{"y", "[B, C, H/k, W/k]"}}};
  pool.infer = [](const std::vector<Tensor>& in, const Attrs& at) -> std::vector<OutMeta> {
    const Tensor& x = in[0];
    int64_t k = int_attr("avg_pool2d", at, "k");
    expect_image("avg_pool2d", x);
    expect_divisible("avg_pool2d", x, "k", k);
    return {{{x.dim(0), x.dim(1), x.dim(2) / k, x.dim(3) / k}, x.dtype()}};
  };
  pool.cpu.forward = [](OpCall& c) {
    for_float("avg_pool2d", c.in[0], [&](auto t) {
      using T = decltype(t);
      int64_t k = c.attrs["k"];
      block_sum<T>(c.in[0].data<T>(), c.out[0].data<T>(), c.in[0].shape(), k, T(1) / T(k * k));
    });
  };
  pool.cpu.backward = [](GradCall& c) {
    if (!c.grad_in[0].defined()) return;
    for_float("avg_pool2d", c.in[0], [&](auto t) {
      using T = decltype(t);
      int64_t k = c.attrs["k"];
      block_spread<T>(c.grad_out[0].data<T>(), c.grad_in[0].data<T>(), c.in[0].shape(), k,
                      T(1) / T(k * k));
    });
  };
  pool.tests = {{"k2", {{{2, 3, 6, 4}}}, {{"k", 2}}},
                {"k3", {{{2, 3, 6, 9}}}, {{"k", 3}}},
                {"k1", {{{1, 3, 2, 5}}}, {{"k", 1}}}};
  pool.bench_cases = {{"k2 [32,128,64,64]", {{{32, 128, 64, 64}}}, {{"k", 2}}}};
  pool.saved = {};
  r.add(std::move(pool));

  OpDef up{.name = "upsample_nearest",
           .doc = "nearest-neighbour upsampling: [B,C,H,W] -> [B, C, H*f, W*f]. PyTorch: "
                  "F.interpolate(x, scale_factor=f, mode='nearest').",
           .inputs = {{"x", "[B, C, H, W]"}}, .attrs = {{"factor", "scale factor f", 2}},
           .outputs = {{"y", "[B, C, H*f, W*f]"}}};
  up.infer = [](const std::vector<Tensor>& in, const Attrs& at) -> std::vector<OutMeta> {
    const Tensor& x = in[0];
    int64_t f = int_attr("upsample_nearest", at, "factor");
    expect_image("upsample_nearest", x);
    return {{{x.dim(0), x.dim(1), x.dim(2) * f, x.dim(3) * f}, x.dtype()}};
  };
  up.cpu.forward = [](OpCall& c) {
    for_float("upsample_nearest", c.in[0], [&](auto t) {
      using T = decltype(t);
      block_spread<T>(c.in[0].data<T>(), c.out[0].data<T>(), c.out[0].shape(), c.attrs["factor"],
                      T(1));
    });
  };
  up.cpu.backward = [](GradCall& c) {
    if (!c.grad_in[0].defined()) return;
    for_float("upsample_nearest", c.in[0], [&](auto t) {
      using T = decltype(t);
      block_sum<T>(c.grad_out[0].data<T>(), c.grad_in[0].data<T>(), c.grad_out[0].shape(),
                   c.attrs["factor"], T(1));
    });
  };
  up.tests = {{"f2", {{{2, 3, 3, 5}}}, {{"factor", 2}}},
              {"f3", {{{2, 1, 2, 3}}}, {{"factor", 3}}},
              {"f1", {{{1, 3, 2, 2}}}, {{"factor", 1}}}};
  up.bench_cases = {{"f2 [32,128,32,32]", {{{32, 128, 32, 32}}}, {{"factor", 2}}}};
  up.saved = {};
  r.add(std::move(up));
}

}  // namespace sd
