// The U-ViT's building blocks. Each layer declares its parameters in a ParamStore under a
// dotted name (the checkpoint key) and is a plain struct with a call operator over Variables.
#pragma once
#include <string>

#include "autograd/ops.h"
#include "model/params.h"

namespace sd {

// Per-forward context: where dropout masks come from, whether dropout is on, and the tracer
// that `simdiff trace` uses to keep named activations.
struct ForwardCtx {
  bool train = false;
  uint64_t seed = 0;
  uint64_t offset = 0;  // Philox offset of this forward's first dropout mask; bumped per mask
  // Global index of the batch's first example: a data-parallel rank holding rows [row0, ...) of
  // the global batch draws the masks those rows get in a one-process run.
  int64_t row0 = 0;
  std::vector<Variable>* trace = nullptr;

  uint64_t next_offset() { return offset++; }
  void mark(const std::string& name, Variable& v) const {
    if (trace) {
      v.retain_grad(name);
      trace->push_back(v);
    }
  }
  Variable dropout(const Variable& x, double p) {
    if (!train || p <= 0) return x;
    uint64_t per_row = uint64_t(x.value().numel() / x.dim(0));
    return ops::dropout(x, p, seed, next_offset(), uint64_t(row0) * per_row);
  }
};

// Mixed precision, the way autocast does it: the parameters stay f32 (the master weights that
// AdamW, the EMA and checkpoints see), and a product (linear, convolution) whose activation input
// is bf16 gets its weight cast to bf16 at use; the cast's backward returns the weight's gradient
// in f32, where it accumulates. Biases and norm gains stay f32: the ops take them next to bf16
// activations and add them in f32 before the one rounding of the result (kernels/registry.h).
// `w` in `x`'s dtype:
inline Variable cast_like(const Variable& w, const Variable& x) {
  return w.dtype() == x.dtype() ? w : ops::cast(w, x.dtype());
}

struct Linear {
  Variable w, b;
  Linear() = default;
  Linear(ParamStore& ps, const std::string& name, int in, int out, bool zero_init = false);
  Variable operator()(const Variable& x) const { return ops::linear(x, cast_like(w, x), b); }
};

struct Conv2d {
  Variable w, b;
  int stride = 1, padding = 0;
  Conv2d() = default;
  Conv2d(ParamStore& ps, const std::string& name, int in, int out, int k, bool zero_init = false);
  Variable operator()(const Variable& x) const {
    return ops::conv2d(x, cast_like(w, x), b, stride, padding);
  }
};

struct GroupNorm {
  Variable g, b;
  int groups = 1;
  GroupNorm() = default;
  GroupNorm(ParamStore& ps, const std::string& name, int channels, int groups);
  Variable operator()(const Variable& x) const { return ops::group_norm(x, g, b, groups); }
};

struct LayerNorm {
  Variable g, b;
  LayerNorm() = default;
  LayerNorm(ParamStore& ps, const std::string& name, int channels);
  Variable operator()(const Variable& x) const { return ops::layer_norm(x, g, b); }
};

// cond [B, cond_dim] -> (scale, shift) each [B, channels], zero-initialised so every block starts
// unconditioned (scale 0 means x * (1 + 0)).
struct CondProj {
  Linear proj;
  int channels = 0;
  CondProj() = default;
  CondProj(ParamStore& ps, const std::string& name, int cond_dim, int channels);
  std::pair<Variable, Variable> operator()(const Variable& cond) const;
};

// norm -> scale/shift(cond) -> SiLU -> conv3x3 -> norm -> scale/shift(cond) -> SiLU -> [dropout]
// -> conv3x3 (zero-init), plus the input (through a 1x1 conv when the channels change).
// Each norm -> scale/shift -> SiLU chain runs as one group_norm_mod op.
struct ResBlock {
  GroupNorm norm1, norm2;
  CondProj cond1, cond2;
  Conv2d conv1, conv2, skip;
  bool has_skip = false;
  double dropout = 0;
  ResBlock() = default;
  ResBlock(ParamStore& ps, const std::string& name, int in, int out, int groups, int cond_dim,
           double dropout);
  Variable operator()(const Variable& x, const Variable& cond, ForwardCtx& ctx) const;
};

// Pre-norm transformer block on tokens [B, N, D]:
// x += proj(attention(qkv(ss(LN(x))))); x += fc2(dropout(GELU(fc1(ss(LN(x)))))).
// ss(LN(.)) runs as one layer_norm_mod op, GELU(fc1(.)) as a bias-free linear and bias_gelu.
struct TransformerBlock {
  LayerNorm ln1, ln2;
  CondProj cond1, cond2;
  Linear qkv, proj, fc1, fc2;
  int heads = 1;
  double dropout = 0;
  TransformerBlock() = default;
  TransformerBlock(ParamStore& ps, const std::string& name, int width, int heads, int mlp_ratio,
                   int cond_dim, double dropout);
  Variable operator()(const Variable& x, const Variable& cond, ForwardCtx& ctx) const;
};

}  // namespace sd
