#include "autograd/ops.h"

namespace sd::ops {

namespace {
Variable one(const std::string& op, const std::vector<Variable>& in, const Attrs& a = Attrs::object()) {
  return apply(op, in, a)[0];
}
}  // namespace

Variable add(const Variable& a, const Variable& b) { return one("add", {a, b}); }
Variable mul(const Variable& a, const Variable& b) { return one("mul", {a, b}); }
Variable scale(const Variable& x, double s) { return one("scale", {x}, {{"s", s}}); }
Variable silu(const Variable& x) { return one("silu", {x}); }
Variable gelu(const Variable& x) { return one("gelu", {x}); }

Variable matmul(const Variable& a, const Variable& b, bool ta, bool tb) {
  return one("matmul", {a, b}, {{"trans_a", ta}, {"trans_b", tb}});
}
Variable linear(const Variable& x, const Variable& w, const Variable& b) {
  return one("linear", {x, w, b});
}

Variable conv2d(const Variable& x, const Variable& w, const Variable& b, int stride, int padding) {
  return one("conv2d", {x, w, b}, {{"stride", stride}, {"padding", padding}});
}
Variable space_to_depth(const Variable& x, int p) { return one("space_to_depth", {x}, {{"p", p}}); }
Variable depth_to_space(const Variable& x, int p) { return one("depth_to_space", {x}, {{"p", p}}); }
Variable avg_pool2d(const Variable& x, int k) { return one("avg_pool2d", {x}, {{"k", k}}); }
Variable upsample_nearest(const Variable& x, int f) {
  return one("upsample_nearest", {x}, {{"factor", f}});
}

Variable haar_dwt(const Variable& x) { return one("haar_dwt", {x}); }
Variable haar_idwt(const Variable& x) { return one("haar_idwt", {x}); }

Variable layer_norm(const Variable& x, const Variable& g, const Variable& b, double eps) {
  return one("layer_norm", {x, g, b}, {{"eps", eps}});
}
Variable group_norm(const Variable& x, const Variable& g, const Variable& b, int groups,
                    double eps) {
  return one("group_norm", {x, g, b}, {{"groups", groups}, {"eps", eps}});
}
Variable scale_shift(const Variable& x, const Variable& sc, const Variable& sh,
                     const std::string& layout) {
  return one("scale_shift", {x, sc, sh}, {{"layout", layout}});
}
Variable group_norm_mod(const Variable& x, const Variable& g, const Variable& b,
                        const Variable& sc, const Variable& sh, int groups, bool silu,
                        double eps) {
  return one("group_norm_mod", {x, g, b, sc, sh},
             {{"groups", groups}, {"silu", silu}, {"eps", eps}});
}
Variable layer_norm_mod(const Variable& x, const Variable& g, const Variable& b,
                        const Variable& sc, const Variable& sh, bool silu, double eps) {
  return one("layer_norm_mod", {x, g, b, sc, sh}, {{"silu", silu}, {"eps", eps}});
}
Variable bias_gelu(const Variable& x, const Variable& b) { return one("bias_gelu", {x, b}); }

Variable attention(const Variable& q, const Variable& k, const Variable& v, double s) {
  return one("attention", {q, k, v}, {{"scale", s}});
}

Variable concat(const Variable& a, const Variable& b, int axis) {
  return one("concat", {a, b}, {{"axis", axis}});
}
std::pair<Variable, Variable> split(const Variable& x, int64_t first, int axis) {
  auto r = apply("split", {x}, {{"first", first}, {"axis", axis}});
  return {r[0], r[1]};
}
Variable permute(const Variable& x, const std::vector<int64_t>& perm) {
  return one("permute", {x}, {{"perm", perm}});
}
Variable reshape(const Variable& x, const Shape& shape) { return sd::reshape(x, shape); }
Variable cast(const Variable& x, DType dtype) {
  return one("cast", {x}, {{"dtype", dtype_lower(dtype)}});
}

Variable embedding(const Variable& table, const Variable& idx) {
  return one("embedding", {table, idx});
}
Variable sinusoidal_embedding(const Variable& x, int dim, double max_period) {
  return one("sinusoidal_embedding", {x}, {{"dim", dim}, {"max_period", max_period}});
}
Variable dropout(const Variable& x, double p, uint64_t seed, uint64_t offset, uint64_t first) {
  return one("dropout", {x}, {{"p", p}, {"seed", seed}, {"offset", offset}, {"first", first}});
}

Variable sum(const Variable& x) { return one("sum", {x}); }
Variable mean(const Variable& x) { return one("mean", {x}); }
Variable mse(const Variable& a, const Variable& b) { return one("mse", {a, b}); }

}  // namespace sd::ops
