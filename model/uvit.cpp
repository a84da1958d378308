#include "model/uvit.h"

namespace sd {

UViT::UViT(const ModelConfig& c, ParamStore& ps, DType activations) : cfg_(c), act_(activations) {
  SD_CHECK(act_ == DType::F32 || act_ == DType::BF16, "UViT: activations in f32 or bf16, got ",
           dtype_name(act_));
  int cd = c.cond_dim;
  time1 = Linear(ps, "cond.time1", cd, cd);
  time2 = Linear(ps, "cond.time2", cd, cd);
  if (c.num_classes > 0)
    class_table = ps.declare("cond.class", {c.num_classes + 1, cd}, {Init::Normal, 1.0});

  int levels = int(c.channel_mult.size());
  int ch_in = c.base_channels;
  embed = Conv2d(ps, "embed", c.input_channels(), ch_in, 3);
  std::vector<int> ch(levels);
  int res = c.input_resolution();
  for (int i = 0; i < levels; ++i) {
    ch[i] = c.base_channels * c.channel_mult[i];
    double p = res <= c.dropout_max_resolution ? c.dropout : 0.0;
    down.emplace_back();
    for (int j = 0; j < c.res_blocks; ++j) {
      down[i].emplace_back(ps, "down." + std::to_string(i) + "." + std::to_string(j), ch_in, ch[i],
                           c.groups, cd, p);
      ch_in = ch[i];
    }
    if (i + 1 < levels) res /= 2;
  }

  int w = c.width(), low = c.lowest_channels();
  if (c.transformer_depth > 0) {
    if (w != low) {
      proj_in = Linear(ps, "mid.proj_in", low, w);
      proj_out = Linear(ps, "mid.proj_out", w, low);
    }
    int tokens = c.lowest_resolution() * c.lowest_resolution();
    pos = ps.declare("mid.pos", {1, tokens, w}, {Init::Normal, 0.02});
    for (int k = 0; k < c.transformer_depth; ++k)
      blocks.emplace_back(ps, "mid.block." + std::to_string(k), w, c.heads, c.mlp_ratio, cd,
                          c.dropout);
    final_ln = LayerNorm(ps, "mid.ln", w);
  }

  up.resize(levels);
  for (int i = levels - 1; i >= 0; --i) {
    double p = res <= c.dropout_max_resolution ? c.dropout : 0.0;
    int from = i == levels - 1 ? ch[i] : ch[i + 1];
    for (int j = 0; j < c.res_blocks; ++j)
      up[i].emplace_back(ps, "up." + std::to_string(i) + "." + std::to_string(j),
                         j == 0 ? from + ch[i] : ch[i], ch[i], c.groups, cd, p);
    res *= 2;
  }
  out_norm = GroupNorm(ps, "out.norm", ch[0], c.groups);
  out_conv = Conv2d(ps, "out.conv", ch[0], c.input_channels(), 3, /*zero_init=*/true);
}

Variable UViT::to_features(const Variable& x) const {
  if (cfg_.downsample == "patch") return ops::space_to_depth(x, cfg_.patch_size);
  Variable h = x;
  for (int l = 0; l < cfg_.dwt_levels; ++l) h = ops::haar_dwt(h);
  return h;
}

Variable UViT::from_features(const Variable& x) const {
  if (cfg_.downsample == "patch") return ops::depth_to_space(x, cfg_.patch_size);
  Variable h = x;
  for (int l = 0; l < cfg_.dwt_levels; ++l) h = ops::haar_idwt(h);
  return h;
}

Variable UViT::conditioning(const Tensor& logsnr, const Tensor& labels) const {
  Variable e = ops::sinusoidal_embedding(Variable(logsnr), cfg_.cond_dim);
  Variable c = time2(ops::silu(time1(e)));
  if (cfg_.num_classes > 0) c = ops::add(c, ops::embedding(class_table, Variable(labels)));
  return ops::silu(c);
}

Variable UViT::operator()(const Variable& z, const Tensor& logsnr, const Tensor& labels,
                          ForwardCtx& ctx) const {
  int64_t B = z.dim(0);
  SD_CHECK(z.value().ndim() == 4 && z.dim(1) == cfg_.channels && z.dim(2) == cfg_.resolution &&
               z.dim(3) == cfg_.resolution,
           "UViT: input expected [B, ", cfg_.channels, ", ", cfg_.resolution, ", ",
           cfg_.resolution, "], got ", z.value().desc());
  SD_CHECK(logsnr.shape() == Shape{B} && labels.shape() == Shape{B}, "UViT: logsnr and labels ",
           "expected [", B, "], got ", logsnr.desc(), " and ", labels.desc());
  Variable cond = conditioning(logsnr, labels);
  ctx.mark("cond", cond);

  Variable x = to_features(z);
  Variable h = embed(act_ == DType::BF16 ? ops::cast(x, act_) : x);
  ctx.mark("embed", h);
  int levels = int(down.size());
  std::vector<Variable> skips;
  for (int i = 0; i < levels; ++i) {
    if (i > 0) h = ops::avg_pool2d(h, 2);
    for (size_t j = 0; j < down[i].size(); ++j) {
      h = down[i][j](h, cond, ctx);
      ctx.mark("down." + std::to_string(i) + "." + std::to_string(j), h);
    }
    skips.push_back(h);
  }

  if (!blocks.empty()) {
    int64_t C = h.dim(1), r = h.dim(2);
    Variable t = ops::reshape(ops::permute(h, {0, 2, 3, 1}), {B, r * r, C});
    if (proj_in.w.defined()) t = proj_in(t);
    t = ops::add(t, pos);
    for (size_t k = 0; k < blocks.size(); ++k) {
      t = blocks[k](t, cond, ctx);
      ctx.mark("mid.block." + std::to_string(k), t);
    }
    t = final_ln(t);
    if (proj_out.w.defined()) t = proj_out(t);
    h = ops::permute(ops::reshape(t, {B, r, r, C}), {0, 3, 1, 2});
  }

  for (int i = levels - 1; i >= 0; --i) {
    if (i < levels - 1) h = ops::upsample_nearest(h, 2);
    h = ops::concat(h, skips[i], 1);
    for (size_t j = 0; j < up[i].size(); ++j) {
      h = up[i][j](h, cond, ctx);
      ctx.mark("up." + std::to_string(i) + "." + std::to_string(j), h);
    }
  }
  Variable y = out_conv(ops::silu(out_norm(h)));
  Variable out = from_features(y.dtype() == DType::BF16 ? ops::cast(y, DType::F32) : y);
  ctx.mark("v_hat", out);
  return out;
}

}  // namespace sd
