// Elementwise ops: add and mul with broadcasting, scale by a constant, SiLU, GELU (exact erf).
//   add:   y = a + b                 da = sum_bcast(g),       db = sum_bcast(g)
//   mul:   y = a * b                 da = sum_bcast(g * b),   db = sum_bcast(g * a)
//   scale: y = s * x                 dx = s * g
//   silu:  y = x * sig(x)            dx = g * sig(x) * (1 + x * (1 - sig(x)))
//   gelu:  y = x * Phi(x)            dx = g * (Phi(x) + x * phi(x)),  Phi(x) = (1 + erf(x/sqrt2))/2
#include <cmath>

#include "kernels/broadcast.h"
#include "kernels/cpu/common.h"
#include "kernels/cpu/vmath.h"

namespace sd {
namespace {

// Below this many elements a loop runs on one thread: an OpenMP region costs more than the work,
// and a training step has hundreds of small ones (gradient accumulation into each parameter).
// With OMP_WAIT_POLICY=passive a region wakes the sleeping threads (tens of microseconds), about
// what one core takes to add 2^17 floats.
constexpr int64_t kParallelMin = 1 << 17;

std::vector<OutMeta> infer_binary(const std::string& op, const std::vector<Tensor>& in) {
  expect_float(op, "a", in[0]);
  expect_float(op, "b", in[1]);
  expect_compatible_dtype(op, "b", in[1], in[0]);
  return {{broadcast_shape(make_broadcast(op, in[0].shape(), in[1].shape())), in[0].dtype()}};
}

std::vector<OutMeta> infer_unary(const std::string& op, const std::vector<Tensor>& in) {
  expect_float(op, "x", in[0]);
  return {{in[0].shape(), in[0].dtype()}};
}

template <class T, class F>
void binary_forward(const Tensor& a, const Tensor& b, const Tensor& y, F f) {
  Broadcast bc = make_broadcast("", a.shape(), b.shape());
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* py = y.data<T>();
  if (bc.same) {  // the common case (and gradient accumulation): one vectorised pass
#pragma omp parallel for simd if (bc.numel >= kParallelMin)
    for (int64_t i = 0; i < bc.numel; ++i) py[i] = f(pa[i], pb[i]);
    return;
  }
#pragma omp parallel for if (bc.numel >= kParallelMin)
  for (int64_t i = 0; i < bc.numel; ++i) {
    int64_t ia = i, ib = i;
    if (!bc.same) bc.offsets(i, ia, ib);
    py[i] = f(pa[ia], pb[ib]);
  }
}

// True when operand `for_a`'s elements, in order, are the last `n` of the output's: its shape is
// the output's trailing dimensions (leading ones broadcast), so element i of the output maps to
// element i % n of it.
inline bool suffix_operand(const Broadcast& bc, bool for_a, int64_t n) {
  const int64_t* st = for_a ? bc.a_stride : bc.b_stride;
  int64_t expect = 1, covered = 1;
  int d = bc.ndim - 1;
  for (; d >= 0 && covered < n; --d) {
    if (st[d] != expect) return false;
    expect *= bc.out_shape[d];
    covered *= bc.out_shape[d];
  }
  if (covered != n) return false;
  for (; d >= 0; --d)
    if (st[d] != 0) return false;
  return true;
}

// True when the other operand (not `for_a`) is itself broadcast (not the output's full size).
inline bool po_broadcast(const Broadcast& bc, bool for_a) {
  const int64_t* st = for_a ? bc.b_stride : bc.a_stride;
  int64_t expect = 1;
  for (int d = bc.ndim - 1; d >= 0; --d) {
    if (bc.out_shape[d] != 1 && st[d] != expect) return true;
    expect *= bc.out_shape[d];
  }
  return false;
}

// Broadcasting repeats an operand's element over the output elements that read it, so its
// gradient is the sum over those elements (the adjoint of a copy is a sum): for add g itself,
// for mul g times the other operand.
// grad of one operand: ga[ia] = sum over output elements mapped to ia of g[i] * other[ib].
// `mul_other` false gives the add case. When the operand has the output shape, every ga element
// gets exactly one term and the loop runs in parallel; otherwise it accumulates serially.
template <class T>
void binary_grad(const Broadcast& bc, bool for_a, const Tensor& g, const Tensor* other,
                 const Tensor& ga) {
  const T* pg = g.data<T>();
  const T* po = other ? other->data<T>() : nullptr;
  T* out = ga.data<T>();
  bool full = ga.numel() == bc.numel;
  if (full && !po) {  // add, operand of the output's size: its gradient is g
    std::copy(pg, pg + bc.numel, out);
    return;
  }
  if (full && bc.same) {  // mul without broadcasting: one product per element
#pragma omp parallel for simd if (bc.numel >= kParallelMin)
    for (int64_t i = 0; i < bc.numel; ++i) out[i] = pg[i] * po[i];
    return;
  }
  // The operand repeated over leading dimensions (a position table added to every image of a
  // batch) and the other operand, if any, full size: sums over the repeats, one pass, in order.
  if (!full && (!po || !po_broadcast(bc, for_a)) && suffix_operand(bc, for_a, ga.numel())) {
    int64_t inner = ga.numel(), outer = bc.numel / inner;
    std::fill(out, out + inner, T(0));
    for (int64_t o = 0; o < outer; ++o) {
      const T* gr = pg + o * inner;
      const T* orow = po ? po + o * inner : nullptr;
      if (orow)
        for (int64_t j = 0; j < inner; ++j) out[j] += gr[j] * orow[j];
      else
        for (int64_t j = 0; j < inner; ++j) out[j] += gr[j];
    }
    return;
  }
  if (!full) std::fill(out, out + ga.numel(), T(0));
#pragma omp parallel for if (full && bc.numel >= kParallelMin)
  for (int64_t i = 0; i < bc.numel; ++i) {
    int64_t ia = i, ib = i;
    if (!bc.same) bc.offsets(i, ia, ib);
    int64_t self = for_a ? ia : ib, oth = for_a ? ib : ia;
    T v = po ? pg[i] * po[oth] : pg[i];
    if (full) out[self] = v;
    else out[self] += v;
  }
}

void binary_backward(GradCall& c, bool is_mul) {
  Broadcast bc = make_broadcast("", c.in[0].shape(), c.in[1].shape());
  cpu::dispatch_float("binary", c.in[0].dtype(), [&](auto t) {
    using T = decltype(t);
    if (c.grad_in[0].defined()) binary_grad<T>(bc, true, c.grad_out[0], is_mul ? &c.in[1] : nullptr, c.grad_in[0]);
    if (c.grad_in[1].defined()) binary_grad<T>(bc, false, c.grad_out[0], is_mul ? &c.in[0] : nullptr, c.grad_in[1]);
  });
}

template <class F>
void unary_forward(OpCall& c, F f) {
  cpu::dispatch_float("unary", c.in[0].dtype(), [&](auto t) {
    using T = decltype(t);
    const T* x = c.in[0].data<T>();
    T* y = c.out[0].data<T>();
    int64_t n = c.in[0].numel();
#pragma omp parallel for simd if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
  });
}

// dfdx(x) is the local derivative; dx = g * dfdx(x).
template <class F>
void unary_backward(GradCall& c, F dfdx) {
  if (!c.grad_in[0].defined()) return;
  cpu::dispatch_float("unary", c.in[0].dtype(), [&](auto t) {
    using T = decltype(t);
    const T* x = c.in[0].data<T>();
    const T* g = c.grad_out[0].data<T>();
    T* dx = c.grad_in[0].data<T>();
    int64_t n = c.in[0].numel();
#pragma omp parallel for simd if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) dx[i] = g[i] * dfdx(x[i]);
  });
}

// exp and erf from kernels/cpu/vmath.h (vectorisable; libm in double).
template <class T> T sigmoid(T x) { return cpu::vsigmoid(x); }
template <class T> T gelu_cdf(T x) { return T(0.5) * (T(1) + cpu::verf(x * T(M_SQRT1_2))); }
template <class T> T gelu_pdf(T x) { return cpu::vexp(T(-0.5) * x * x) * T(0.3989422804014327); }

std::vector<TestCase> binary_tests() {
  return {{"same", {{{2, 3, 4}}, {{2, 3, 4}}}},
          {"bias", {{{2, 3, 4}}, {{4}}}},
          {"per-channel", {{{2, 3, 2, 2}}, {{2, 3, 1, 1}}}},
          {"both", {{{3, 1}}, {{1, 4}}}},
          // Long enough for the CUDA kernels' 16-byte packs of 8, with a tail (505 = 63 * 8 + 1).
          {"same 505", {{{5, 101}}, {{5, 101}}}},
          {"bias 5x101", {{{5, 101}}, {{101}}}}};
}

}  // namespace

void register_elementwise_ops(Registry& r) {
  OpDef add{.name = "add",
            .doc = "a + b with NumPy broadcasting (the output has the broadcast shape; the "
                   "gradient of a broadcast operand is summed over the repeated axes). "
                   "PyTorch: a + b.",
            .inputs = {{"a", "any shape"}, {"b", "a shape that broadcasts with a's"}},
            .outputs = {{"y", "the broadcast shape"}}};
  add.infer = [](auto& in, auto&) { return infer_binary("add", in); };
  add.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("add", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      binary_forward<T>(c.in[0], c.in[1], c.out[0], [](T a, T b) { return a + b; });
    });
  };
  add.cpu.backward = [](GradCall& c) { binary_backward(c, false); };
  add.tests = binary_tests();
  add.saved = {};
  r.add(std::move(add));

  OpDef mul{.name = "mul", .doc = "a * b with NumPy broadcasting. PyTorch: a * b.",
            .inputs = {{"a", "any shape"}, {"b", "a shape that broadcasts with a's"}},
            .outputs = {{"y", "the broadcast shape"}}};
  mul.infer = [](auto& in, auto&) { return infer_binary("mul", in); };
  mul.cpu.forward = [](OpCall& c) {
    cpu::dispatch_float("mul", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      binary_forward<T>(c.in[0], c.in[1], c.out[0], [](T a, T b) { return a * b; });
    });
  };
  mul.cpu.backward = [](GradCall& c) { binary_backward(c, true); };
  mul.tests = binary_tests();
  mul.saved = {"a", "b"};
  r.add(std::move(mul));

  OpDef scale{.name = "scale", .doc = "s * x for a constant s. PyTorch: s * x.",
              .inputs = {{"x", "any shape"}}, .attrs = {{"s", "the constant factor"}},
              .outputs = {{"y", "x's shape"}}};
  scale.infer = [](auto& in, const Attrs& a) {
    expect_attr("scale", "s", a["s"].is_number(), "a number", a["s"]);
    return infer_unary("scale", in);
  };
  scale.cpu.forward = [](OpCall& c) {
    double s = c.attrs["s"];
    unary_forward(c, [s](auto x) { return decltype(x)(s) * x; });
  };
  scale.cpu.backward = [](GradCall& c) {
    double s = c.attrs["s"];
    unary_backward(c, [s](auto x) { return decltype(x)(s); });
  };
  scale.tests = {{"s=-1.7", {{{3, 5}}}, {{"s", -1.7}}}, {"[3,131]", {{{3, 131}}}, {{"s", 0.3}}}};
  scale.saved = {"x"};
  r.add(std::move(scale));

  OpDef silu{.name = "silu", .doc = "x * sigmoid(x). PyTorch: F.silu.",
             .inputs = {{"x", "any shape"}}, .outputs = {{"y", "x's shape"}}};
  silu.infer = [](auto& in, auto&) { return infer_unary("silu", in); };
  silu.cpu.forward = [](OpCall& c) { unary_forward(c, [](auto x) { return x * sigmoid(x); }); };
  silu.cpu.backward = [](GradCall& c) {
    unary_backward(c, [](auto x) {
      auto s = sigmoid(x);
      return s * (decltype(x)(1) + x * (decltype(x)(1) - s));
    });
  };
  silu.tests = {{"", {{{4, 7}, false, -4, 4}}}, {"[3,131]", {{{3, 131}, false, -4, 4}}}};
  silu.saved = {"x"};
  r.add(std::move(silu));

  OpDef gelu{.name = "gelu",
             .doc = "x * Phi(x), Phi the standard normal CDF (exact erf form, not the tanh "
                    "approximation). PyTorch: F.gelu (approximate='none', its default).",
             .inputs = {{"x", "any shape"}}, .outputs = {{"y", "x's shape"}}};
  gelu.infer = [](auto& in, auto&) { return infer_unary("gelu", in); };
  gelu.cpu.forward = [](OpCall& c) { unary_forward(c, [](auto x) { return x * gelu_cdf(x); }); };
  gelu.cpu.backward = [](GradCall& c) {
    unary_backward(c, [](auto x) { return gelu_cdf(x) + x * gelu_pdf(x); });
  };
  gelu.tests = {{"", {{{4, 7}, false, -4, 4}}}, {"[3,131]", {{{3, 131}, false, -4, 4}}}};
  gelu.saved = {"x"};
  r.add(std::move(gelu));
}

}  // namespace sd
