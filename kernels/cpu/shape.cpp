// Shape ops: pure data movement, no arithmetic.
//   concat(a, b, axis):  y = [a | b] along axis          da, db = the two parts of g
//   split(x, first, axis): a = x[.., :first, ..], b = the rest     dx = [ga | gb] (absent = 0)
//   permute(x, perm):    y.shape[i] = x.shape[perm[i]]    dx = permute(g, inverse(perm))
// Concat and split view both tensors as [outer, size(axis) * inner] rows: row o of the joined
// tensor is row o of a followed by row o of b, so each is one contiguous copy per row.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/common.h"
#include "kernels/concat_rows.h"
#include "kernels/permute.h"

namespace sd {
namespace {

int norm_axis(const std::string& op, const Attrs& attrs, int ndim) {
  const auto& a = attrs["axis"];
  expect_attr(op, "axis", a.is_number_integer(), "an integer", a);
  int64_t ax = a.get<int64_t>();
  expect_attr(op, "axis", ax >= -ndim && ax < ndim,
              "an axis in [" + std::to_string(-ndim) + ", " + std::to_string(ndim) + ")", a);
  return axis_attr(attrs, ndim);
}

// y row = [a row | b row]; an absent part (nullptr) reads as zeros.
template <class T>
void join_rows(const Rows& r, const T* a, const T* b, T* y) {
#pragma omp parallel for if (r.outer > 1)
  for (int64_t o = 0; o < r.outer; ++o) {
    T* dst = y + o * (r.ra + r.rb);
    if (a) std::copy(a + o * r.ra, a + (o + 1) * r.ra, dst);
    else std::fill(dst, dst + r.ra, T(0));
    if (b) std::copy(b + o * r.rb, b + (o + 1) * r.rb, dst + r.ra);
    else std::fill(dst + r.ra, dst + r.ra + r.rb, T(0));
  }
}

// The inverse: x row -> [a row | b row]; a part that is not wanted (nullptr) is skipped.
template <class T>
void part_rows(const Rows& r, const T* x, T* a, T* b) {
#pragma omp parallel for if (r.outer > 1)
  for (int64_t o = 0; o < r.outer; ++o) {
    const T* src = x + o * (r.ra + r.rb);
    if (a) std::copy(src, src + r.ra, a + o * r.ra);
    if (b) std::copy(src + r.ra, src + r.ra + r.rb, b + o * r.rb);
  }
}

template <class T>
const T* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }
template <class T>
T* mut_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

std::vector<int64_t> read_perm(const Attrs& attrs) { return attrs["perm"].get<std::vector<int64_t>>(); }

std::vector<int64_t> inverse_perm(const std::vector<int64_t>& p) {
  std::vector<int64_t> inv(p.size());
  for (size_t i = 0; i < p.size(); ++i) inv[p[i]] = int64_t(i);
  return inv;
}

// Contiguous case (k == n-1): every output row of length L is one contiguous input run.
// Transpose case: tiles of kTile x kTile between output axis k (input-contiguous) and output axis
// n-1 (output-contiguous); a tile's reads and writes both stay within ~2 * kTile cache lines.
constexpr int64_t kTile = 32;

template <class T>
void permute_cpu(const PermutePlan& p, const T* x, T* y) {
  if (p.numel == 0) return;
  int last = p.n - 1;
  if (p.k == last) {
    int64_t L = p.shape[last], rows = p.numel / L;
#pragma omp parallel for
    for (int64_t r = 0; r < rows; ++r) {
      int64_t in_off, out_off;
      p.offsets(r, last, last, in_off, out_off);
      std::copy(x + in_off, x + in_off + L, y + out_off);
    }
    return;
  }
  int64_t A = p.shape[p.k], B = p.shape[last];
  int64_t sb = p.in_stride[last], oa = p.out_stride[p.k];
  int64_t ta = (A + kTile - 1) / kTile, tb = (B + kTile - 1) / kTile;
  int64_t tasks = p.numel / (A * B) * ta * tb;
#pragma omp parallel for
  for (int64_t t = 0; t < tasks; ++t) {
    int64_t bi = t / (ta * tb), a0 = (t / tb) % ta * kTile, b0 = t % tb * kTile;
    int64_t in_off, out_off;
    p.offsets(bi, p.k, last, in_off, out_off);
    int64_t a1 = std::min(A, a0 + kTile), b1 = std::min(B, b0 + kTile);
    for (int64_t a = a0; a < a1; ++a)
      for (int64_t b = b0; b < b1; ++b) y[out_off + a * oa + b] = x[in_off + a + b * sb];
  }
}

}  // namespace

void register_shape_ops(Registry& r) {
  OpDef concat{.name = "concat",
               .doc = "joins a and b along an axis; all other dims must match. PyTorch: "
                      "torch.cat((a, b), dim=axis), whose default dim is 0, not 1.",
               .inputs = {{"a", "[..., n_a, ...]"}, {"b", "[..., n_b, ...], a's shape elsewhere"}},
               .attrs = {{"axis", "the axis to join along (negative counts from the end)", 1}},
               .outputs = {{"y", "[..., n_a + n_b, ...]"}}};
  concat.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    const Tensor &a = in[0], &b = in[1];
    expect_float("concat", "a", a);
    expect_float("concat", "b", b);
    expect_same_dtype("concat", "b", b, a);
    SD_CHECK(a.ndim() == b.ndim() && a.ndim() > 0, "concat: 'a' ", a.desc(), " and 'b' ",
             b.desc(), " must have the same number (>= 1) of dimensions");
    int ax = norm_axis("concat", attrs, a.ndim());
    Shape y = a.shape();
    for (int d = 0; d < a.ndim(); ++d)
      SD_CHECK(d == ax || a.shape()[d] == b.shape()[d], "concat: 'b' shape ",
               shape_str(b.shape()), " must match 'a' shape ", shape_str(a.shape()),
               " in every dimension except axis ", ax, " (differs in dimension ", d, ")");
    y[ax] += b.shape()[ax];
    return std::vector<OutMeta>{{y, a.dtype()}};
  };
  concat.cpu.forward = [](OpCall& c) {
    int ax = norm_axis("concat", c.attrs, c.in[0].ndim());
    Rows rw = rows_of(c.out[0].shape(), ax, c.in[0].shape()[ax]);
    cpu::dispatch_float("concat", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      join_rows<T>(rw, c.in[0].data<T>(), c.in[1].data<T>(), c.out[0].data<T>());
    });
  };
  concat.cpu.backward = [](GradCall& c) {
    int ax = norm_axis("concat", c.attrs, c.in[0].ndim());
    Rows rw = rows_of(c.out[0].shape(), ax, c.in[0].shape()[ax]);
    cpu::dispatch_float("concat", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      part_rows<T>(rw, c.grad_out[0].data<T>(), mut_or_null<T>(c.grad_in[0]),
                   mut_or_null<T>(c.grad_in[1]));
    });
  };
  concat.tests = {{"axis=1", {{{2, 3, 5}}, {{2, 4, 5}}}, {{"axis", 1}}},
                  {"axis=-1", {{{3, 2, 3}}, {{3, 2, 7}}}, {{"axis", -1}}},
                  {"axis=0", {{{1, 5}}, {{2, 5}}}, {{"axis", 0}}},
                  {"nchw channels", {{{2, 3, 3, 5}}, {{2, 1, 3, 5}}}, {{"axis", 1}}}};
  concat.bench_cases = {{"skip [32,256,16,16] x2", {{{32, 256, 16, 16}}, {{32, 256, 16, 16}}},
                         {{"axis", 1}}}};
  concat.saved = {};
  r.add(std::move(concat));

  OpDef split{.name = "split",
              .doc = "splits x along an axis into its first `first` slices and the rest. "
                     "PyTorch: torch.split(x, [first, n - first], dim=axis), whose default dim "
                     "is 0, not 1; always two parts.",
              .inputs = {{"x", "[..., n, ...] with 0 <= first <= n on the axis"}},
              .attrs = {{"first", "size of the first part along the axis"},
                        {"axis", "the axis to split (negative counts from the end)", 1}},
              .outputs = {{"a", "x[..., :first, ...]"}, {"b", "x[..., first:, ...]"}}};
  split.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    const Tensor& x = in[0];
    expect_float("split", "x", x);
    SD_CHECK(x.ndim() > 0, "split: 'x' expected at least 1 dimension, got ", x.desc());
    int ax = norm_axis("split", attrs, x.ndim());
    const auto& f = attrs["first"];
    int64_t size = x.shape()[ax];
    expect_attr("split", "first", f.is_number_integer() && f.get<int64_t>() >= 0 &&
                                      f.get<int64_t>() <= size,
                "an integer in [0, " + std::to_string(size) + "] (the size of axis " +
                    std::to_string(ax) + " of " + x.desc() + ")", f);
    Shape a = x.shape(), b = x.shape();
    a[ax] = f.get<int64_t>();
    b[ax] = size - a[ax];
    return std::vector<OutMeta>{{a, x.dtype()}, {b, x.dtype()}};
  };
  split.cpu.forward = [](OpCall& c) {
    int ax = norm_axis("split", c.attrs, c.in[0].ndim());
    Rows rw = rows_of(c.in[0].shape(), ax, c.attrs["first"].get<int64_t>());
    cpu::dispatch_float("split", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      part_rows<T>(rw, c.in[0].data<T>(), c.out[0].data<T>(), c.out[1].data<T>());
    });
  };
  split.cpu.backward = [](GradCall& c) {
    if (!c.grad_in[0].defined()) return;
    int ax = norm_axis("split", c.attrs, c.in[0].ndim());
    Rows rw = rows_of(c.in[0].shape(), ax, c.attrs["first"].get<int64_t>());
    cpu::dispatch_float("split", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      join_rows<T>(rw, ptr_or_null<T>(c.grad_out[0]), ptr_or_null<T>(c.grad_out[1]),
                   c.grad_in[0].data<T>());
    });
  };
  split.tests = {{"axis=1", {{{2, 7, 3}}}, {{"first", 3}, {"axis", 1}}},
                 {"axis=-1", {{{3, 2, 9}}}, {{"first", 5}, {"axis", -1}}},
                 {"axis=0", {{{5, 3}}}, {{"first", 1}, {"axis", 0}}},
                 {"nchw channels", {{{2, 6, 3, 5}}}, {{"first", 2}, {"axis", 1}}}};
  split.bench_cases = {{"[32,512,16,16] halves", {{{32, 512, 16, 16}}}, {{"first", 256}, {"axis", 1}}}};
  split.saved = {};
  r.add(std::move(split));

  OpDef permute{.name = "permute",
                .doc = "N-D transpose (up to 6 dims): y.shape[i] = x.shape[perm[i]], copied "
                       "contiguous. PyTorch: x.permute(perm).contiguous().",
                .inputs = {{"x", "up to 6 dimensions"}},
                .attrs = {{"perm", "a permutation of 0..ndim-1"}},
                .outputs = {{"y", "x's shape permuted"}}};
  permute.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    const Tensor& x = in[0];
    expect_float("permute", "x", x);
    SD_CHECK(x.ndim() <= kMaxPermuteDims, "permute: 'x' expected at most ", kMaxPermuteDims,
             " dimensions, got ", x.desc());
    const auto& pj = attrs["perm"];
    std::string want = "a permutation of 0.." + std::to_string(x.ndim() - 1) + " for " + x.desc();
    expect_attr("permute", "perm", pj.is_array() && int(pj.size()) == x.ndim(), want, pj);
    std::vector<bool> seen(x.ndim(), false);
    Shape y;
    for (const auto& e : pj) {
      expect_attr("permute", "perm", e.is_number_integer() && e.get<int64_t>() >= 0 &&
                                         e.get<int64_t>() < x.ndim(), want, pj);
      int64_t a = e.get<int64_t>();
      expect_attr("permute", "perm", !seen[a], want + " (axis " + std::to_string(a) + " repeated)", pj);
      seen[a] = true;
      y.push_back(x.shape()[a]);
    }
    return std::vector<OutMeta>{{y, x.dtype()}};
  };
  permute.cpu.forward = [](OpCall& c) {
    PermutePlan p = make_permute_plan(c.in[0].shape(), read_perm(c.attrs));
    cpu::dispatch_float("permute", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      permute_cpu<T>(p, c.in[0].data<T>(), c.out[0].data<T>());
    });
  };
  permute.cpu.backward = [](GradCall& c) {
    if (!c.grad_in[0].defined()) return;
    PermutePlan p = make_permute_plan(c.grad_out[0].shape(), inverse_perm(read_perm(c.attrs)));
    cpu::dispatch_float("permute", c.in[0].dtype(), [&](auto t) {
      using T = decltype(t);
      permute_cpu<T>(p, c.grad_out[0].data<T>(), c.grad_in[0].data<T>());
    });
  };
  permute.tests = {{"2-D", {{{5, 7}}}, {{"perm", {1, 0}}}},
                   {"3-D swap last two", {{{2, 3, 5}}}, {{"perm", {0, 2, 1}}}},
                   {"3-D rotate", {{{3, 5, 7}}}, {{"perm", {2, 0, 1}}}},
                   {"nchw->nhwc", {{{2, 3, 5, 7}}}, {{"perm", {0, 2, 3, 1}}}},
                   {"nhwc->nchw", {{{2, 5, 7, 3}}}, {{"perm", {0, 3, 1, 2}}}},
                   {"4-D keep last", {{{3, 2, 5, 3}}}, {{"perm", {2, 0, 1, 3}}}},
                   {"heads [B,N,H,D]->[B,H,N,D]", {{{2, 5, 3, 4}}}, {{"perm", {0, 2, 1, 3}}}},
                   {"size-1 axes", {{{1, 5, 1, 3}}}, {{"perm", {3, 2, 0, 1}}}},
                   {"5-D", {{{2, 3, 1, 4, 3}}}, {{"perm", {4, 1, 3, 0, 2}}}},
                   {"tile tails 37x33", {{{37, 33}}}, {{"perm", {1, 0}}}}};
  permute.bench_cases = {
      {"nchw->tokens [32,256,16,16]", {{{32, 256, 16, 16}}}, {{"perm", {0, 2, 3, 1}}}},
      {"tokens->nchw [32,16,16,256]", {{{32, 16, 16, 256}}}, {{"perm", {0, 3, 1, 2}}}}};
  permute.saved = {};
  r.add(std::move(permute));
}

}  // namespace sd
