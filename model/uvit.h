// The U-ViT (simple diffusion, section 6 of the notes): immediate downsampling by Haar DWT or
// patching, conv ResBlock levels with skips, a transformer at the lowest resolution, the mirrored
// up path, and the inverse transform at the output. Conditioning (noise level + class) enters
// every block as a per-channel scale and shift. Predicts v.
//
// Mixed precision (activations = bf16, from train.precision): the features enter the first
// convolution in bf16 and stay bf16 through every level, the transformer and attention, and
// leave the last convolution in bf16, which is widened to f32 for the inverse transform, so the
// prediction, the loss and everything after (gradient norm, AdamW, EMA) are f32. Products get
// bf16 weights cast at use (model/layers.h) and accumulate in f32; norms and softmax compute
// their statistics in f32. The conditioning path (noise-level embedding, class embedding, the
// per-block scale/shift projections) stays f32: B rows only, a negligible share of the work, and
// the blocks take its f32 scale and shift next to bf16 activations. No loss scaling: bf16 keeps
// f32's 8-bit exponent, so gradients down to 1e-38 (subnormals to 9e-41) are representable; loss
// scaling works around fp16's 5-bit exponent, which flushes everything under 6e-8 to zero.
#pragma once
#include "model/config.h"
#include "model/layers.h"

namespace sd {

class UViT {
 public:
  // `activations`: F32, or BF16 for mixed precision (above).
  UViT(const ModelConfig& cfg, ParamStore& ps, DType activations = DType::F32);

  // z [B, C, R, R] (noisy image), logsnr f32 [B], labels i32 [B] (num_classes = "no class";
  // ignored when unconditional) -> v_hat [B, C, R, R]. All on the parameters' device.
  Variable operator()(const Variable& z, const Tensor& logsnr, const Tensor& labels,
                      ForwardCtx& ctx) const;

  const ModelConfig& config() const { return cfg_; }
  DType activations() const { return act_; }

 private:
  Variable to_features(const Variable& x) const;    // DWT levels or space_to_depth
  Variable from_features(const Variable& x) const;  // inverse
  Variable conditioning(const Tensor& logsnr, const Tensor& labels) const;

  ModelConfig cfg_;
  DType act_;
  Linear time1, time2;
  Variable class_table;  // [num_classes + 1, cond_dim]
  Conv2d embed, out_conv;
  GroupNorm out_norm;
  std::vector<std::vector<ResBlock>> down, up;
  Linear proj_in, proj_out;  // only when the transformer width differs from the channels
  Variable pos;              // [1, tokens, width]
  std::vector<TransformerBlock> blocks;
  LayerNorm final_ln;
};

}  // namespace sd
