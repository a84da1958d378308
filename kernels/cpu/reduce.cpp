// Reductions to scalars and per-sample losses.
//   sum(x):  y = sum_i x_i          (shape [])       dx_i = g
//   mean(x): y = sum_i x_i / n      (shape [])       dx_i = g / n
//   mse(a, b) for a, b [B, ...]:  y_b = (1/n) sum_j (a_bj - b_bj)^2,  n = numel / B
//       da_bj = (2/n) g_b (a_bj - b_bj),  db = -da
// Accumulation is in double on both backends, so the f32 results agree however the terms are
// ordered (one pass over memory; the reduction is bandwidth-bound either way).
#include <algorithm>

#include "kernels/cpu/common.h"

namespace sd {
namespace {

// sum_{i < n} term(i) in double with 8 independent accumulators: the compiler vectorises them,
// where one running sum would serialise on the latency of the add.
template <class F>
double sum_run(int64_t n, F term) {
  double lane[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lane[k] += term(i + k);
  double s = 0;
  for (; i < n; ++i) s += term(i);
  for (int k = 0; k < 8; ++k) s += lane[k];
  return s;
}

template <class T>
double sum_double(const T* x, int64_t n) {
  constexpr int64_t kChunk = 1 << 16;
  int64_t chunks = (n + kChunk - 1) / kChunk;
  double acc = 0;
#pragma omp parallel for reduction(+ : acc)
  for (int64_t c = 0; c < chunks; ++c) {
    const T* p = x + c * kChunk;
    acc += sum_run(std::min(kChunk, n - c * kChunk), [p](int64_t i) { return double(p[i]); });
  }
  return acc;
}

// divisor 1 for sum, n for mean.
void total_forward(OpCall& c, bool mean) {
  cpu::dispatch_float("sum", c.in[0].dtype(), [&](auto t) {
    using T = decltype(t);
    int64_t n = c.in[0].numel();
    double s = sum_double(c.in[0].data<T>(), n);
    c.out[0].data<T>()[0] = T(mean ? s / double(n) : s);
  });
}

void total_backward(GradCall& c, bool mean) {
  if (!c.grad_in[0].defined()) return;
  cpu::dispatch_float("sum", c.in[0].dtype(), [&](auto t) {
    using T = decltype(t);
    int64_t n = c.in[0].numel();
    T g = c.grad_out[0].data<T>()[0];
    T v = mean ? g / T(n) : g;
    T* dx = c.grad_in[0].data<T>();
    std::fill(dx, dx + n, v);
  });
}

OpDef total_def(const std::string& name, const std::string& doc, bool mean) {
  OpDef d{.name = name, .doc = doc, .inputs = {{"x", "any shape, non-empty"}},
          .outputs = {{"y", "shape [] (one element); f32 for a bf16 x"}}};
  d.infer = [name](const std::vector<Tensor>& in, const Attrs&) {
    expect_float(name, "x", in[0]);
    SD_CHECK(in[0].numel() > 0, name, ": 'x' must have at least one element, got ", in[0].desc());
    return std::vector<OutMeta>{{Shape{}, statistic_dtype(in[0].dtype())}};  // bf16 x: an f32 total
  };
  d.cpu.forward = [mean](OpCall& c) { total_forward(c, mean); };
  d.cpu.backward = [mean](GradCall& c) { total_backward(c, mean); };
  d.saved = {};
  // [5000]: more than one block's share (4096) of the CUDA kernel, so its partials are added
  d.tests = {{"[3,5,7]", {{{3, 5, 7}}}}, {"[13]", {{{13}}}}, {"scalar", {{Shape{}}}},
             {"[2,3,1,9]", {{{2, 3, 1, 9}}}}, {"[5000]", {{{5000}}}}};
  d.bench_cases = {{"64M floats", {{{64 * 1024 * 1024}}}}};
  return d;
}

}  // namespace

void register_reduce_ops(Registry& r) {
  r.add(total_def("sum", "sum of all elements -> shape [], accumulated in double. PyTorch: x.sum().",
                  false));
  r.add(total_def("mean", "mean of all elements -> shape [], accumulated in double. PyTorch: "
                          "x.mean().", true));

  OpDef mse{.name = "mse",
            .doc = "per-sample mean squared error: [B, ...] x [B, ...] -> [B], mean over dims 1.. "
                   "(the diffusion loss weights each sample before averaging). PyTorch: "
                   "F.mse_loss(a, b, reduction='none').flatten(1).mean(1); F.mse_loss's default "
                   "reduction returns one scalar instead.",
            .inputs = {{"a", "[B, ...]"}, {"b", "same shape as a"}},
            .outputs = {{"y", "[B]; f32 for bf16 inputs (the loss)"}}};
  mse.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    expect_float("mse", "a", in[0]);
    expect_compatible_dtype("mse", "b", in[1], in[0]);
    SD_CHECK(in[0].ndim() >= 1 && in[0].numel() > 0,
             "mse: 'a' expected a non-empty tensor [B, ...], got ", in[0].desc());
    expect_shape("mse", "b", in[1], in[0].shape());
    return std::vector<OutMeta>{{{in[0].shape()[0]}, statistic_dtype(in[0].dtype())}};  // the loss: f32
  };
  mse.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("mse", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const T* a = c.in[0].data<T>();
      const T* b = c.in[1].data<T>();
      T* y = c.out[0].data<T>();
      int64_t B = c.in[0].shape()[0], n = c.in[0].numel() / B;
#pragma omp parallel for
      for (int64_t s = 0; s < B; ++s) {
        const T *pa = a + s * n, *pb = b + s * n;
        double acc = sum_run(n, [pa, pb](int64_t j) {
          double d = double(pa[j]) - double(pb[j]);
          return d * d;
        });
        y[s] = T(acc / double(n));
      }
    });
  };
  // y_b = (1/n) sum_j (a_bj - b_bj)^2, so dy_b/da_bj = 2 (a_bj - b_bj) / n and db = -da: the
  // per-sample output gradient g_b scales its sample's differences.
  mse.cpu.backward = [](GradCall& c) {
    cpu::dispatch_float("mse", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      const T* a = c.in[0].data<T>();
      const T* b = c.in[1].data<T>();
      const T* g = c.grad_out[0].data<T>();
      T* da = c.grad_in[0].defined() ? c.grad_in[0].data<T>() : nullptr;
      T* db = c.grad_in[1].defined() ? c.grad_in[1].data<T>() : nullptr;
      int64_t B = c.in[0].shape()[0], n = c.in[0].numel() / B;
      const T two_over_n = T(2.0 / double(n));
#pragma omp parallel for
      for (int64_t j = 0; j < B * n; ++j) {
        T v = two_over_n * g[j / n] * (a[j] - b[j]);
        if (da) da[j] = v;
        if (db) db[j] = -v;
      }
    });
  };
  mse.tests = {{"B=3 [3,5,7]", {{{3, 5, 7}}, {{3, 5, 7}}}},
               {"B=3 [3,2,3,3]", {{{3, 2, 3, 3}}, {{3, 2, 3, 3}}}},
               {"1-D [5]", {{{5}}, {{5}}}},
               // rows of whole 8-element packs: the CUDA forward's 16-byte path
               {"B=2 [2,4,8,8]", {{{2, 4, 8, 8}}, {{2, 4, 8, 8}}}}};
  mse.bench_cases = {{"[64,3,64,64]", {{{64, 3, 64, 64}}, {{64, 3, 64, 64}}}}};
  mse.saved = {"a", "b"};
  r.add(std::move(mse));
}

}  // namespace sd
