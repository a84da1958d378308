#include "model/layers.h"

namespace sd {

namespace {
Init zeros() { return {Init::Zeros}; }
Init fan_in(int64_t n) { return {Init::Uniform, 0, n}; }
}  // namespace

Linear::Linear(ParamStore& ps, const std::string& name, int in, int out, bool zero_init) {
  w = ps.declare(name + ".w", {out, in}, zero_init ? zeros() : fan_in(in));
  b = ps.declare(name + ".b", {out}, zeros());
}

Conv2d::Conv2d(ParamStore& ps, const std::string& name, int in, int out, int k, bool zero_init)
    : padding(k / 2) {
  w = ps.declare(name + ".w", {out, in, k, k}, zero_init ? zeros() : fan_in(int64_t(in) * k * k));
  b = ps.declare(name + ".b", {out}, zeros());
}

GroupNorm::GroupNorm(ParamStore& ps, const std::string& name, int channels, int groups_)
    : groups(groups_) {
  g = ps.declare(name + ".g", {channels}, {Init::Ones});
  b = ps.declare(name + ".b", {channels}, zeros());
}

LayerNorm::LayerNorm(ParamStore& ps, const std::string& name, int channels) {
  g = ps.declare(name + ".g", {channels}, {Init::Ones});
  b = ps.declare(name + ".b", {channels}, zeros());
}

CondProj::CondProj(ParamStore& ps, const std::string& name, int cond_dim, int channels_)
    : proj(ps, name, cond_dim, 2 * channels_, /*zero_init=*/true), channels(channels_) {}

std::pair<Variable, Variable> CondProj::operator()(const Variable& cond) const {
  return ops::split(proj(cond), channels, 1);
}

ResBlock::ResBlock(ParamStore& ps, const std::string& name, int in, int out, int groups,
                   int cond_dim, double dropout_)
    : norm1(ps, name + ".norm1", in, groups),
      norm2(ps, name + ".norm2", out, groups),
      cond1(ps, name + ".cond1", cond_dim, in),
      cond2(ps, name + ".cond2", cond_dim, out),
      conv1(ps, name + ".conv1", in, out, 3),
      conv2(ps, name + ".conv2", out, out, 3, /*zero_init=*/true),
      has_skip(in != out),
      dropout(dropout_) {
  if (has_skip) skip = Conv2d(ps, name + ".skip", in, out, 1);
}

Variable ResBlock::operator()(const Variable& x, const Variable& cond, ForwardCtx& ctx) const {
  auto [s1, b1] = cond1(cond);
  Variable h = conv1(ops::group_norm_mod(x, norm1.g, norm1.b, s1, b1, norm1.groups, true));
  auto [s2, b2] = cond2(cond);
  h = ops::group_norm_mod(h, norm2.g, norm2.b, s2, b2, norm2.groups, true);
  h = conv2(ctx.dropout(h, dropout));
  return ops::add(has_skip ? skip(x) : x, h);
}

TransformerBlock::TransformerBlock(ParamStore& ps, const std::string& name, int width,
                                   int heads_, int mlp_ratio, int cond_dim, double dropout_)
    : ln1(ps, name + ".ln1", width),
      ln2(ps, name + ".ln2", width),
      cond1(ps, name + ".cond1", cond_dim, width),
      cond2(ps, name + ".cond2", cond_dim, width),
      qkv(ps, name + ".qkv", width, 3 * width),
      proj(ps, name + ".proj", width, width, /*zero_init=*/true),
      fc1(ps, name + ".fc1", width, mlp_ratio * width),
      fc2(ps, name + ".fc2", mlp_ratio * width, width, /*zero_init=*/true),
      heads(heads_),
      dropout(dropout_) {}

Variable TransformerBlock::operator()(const Variable& x, const Variable& cond,
                                      ForwardCtx& ctx) const {
  int64_t B = x.dim(0), N = x.dim(1), D = x.dim(2), Dh = D / heads;
  auto [s1, b1] = cond1(cond);
  Variable h = qkv(ops::layer_norm_mod(x, ln1.g, ln1.b, s1, b1));  // [B, N, 3D]
  h = ops::permute(ops::reshape(h, {B, N, 3, heads, Dh}), {2, 0, 3, 1, 4});  // [3, B, H, N, Dh]
  auto [q, kv] = ops::split(h, 1, 0);
  auto [k, v] = ops::split(kv, 1, 0);
  Shape heads_shape{B, heads, N, Dh};
  Variable a = ops::attention(ops::reshape(q, heads_shape), ops::reshape(k, heads_shape),
                              ops::reshape(v, heads_shape));
  a = ops::reshape(ops::permute(a, {0, 2, 1, 3}), {B, N, D});
  Variable y = ops::add(x, ctx.dropout(proj(a), dropout));
  auto [s2, b2] = cond2(cond);
  // fc1's bias is added (and its gradient summed) inside bias_gelu: the linear skips both passes.
  Variable n2 = ops::layer_norm_mod(y, ln2.g, ln2.b, s2, b2);
  Variable m = ops::bias_gelu(ops::linear(n2, cast_like(fc1.w, n2)), fc1.b);
  return ops::add(y, fc2(ctx.dropout(m, dropout)));
}

}  // namespace sd
