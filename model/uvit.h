// The U-ViT (simple diffusion, section 6 of the notes): immediate downsampling by Haar DWT or
// patching, conv ResBlock levels with skips, a transformer at the lowest resolution, the mirrored
// up path, and the inverse transform at the output. Conditioning (noise level + class) enters
// every block as a per-channel scale and shift. Predicts v.
#pragma once
#include "model/config.h"
#include "model/layers.h"

namespace sd {

class UViT {
 public:
  UViT(const ModelConfig& cfg, ParamStore& ps);

  // z [B, C, R, R] (noisy image), logsnr f32 [B], labels i32 [B] (num_classes = "no class";
  // ignored when unconditional) -> v_hat [B, C, R, R]. All on the parameters' device.
  Variable operator()(const Variable& z, const Tensor& logsnr, const Tensor& labels,
                      ForwardCtx& ctx) const;

  const ModelConfig& config() const { return cfg_; }

 private:
  Variable to_features(const Variable& x) const;    // DWT levels or space_to_depth
  Variable from_features(const Variable& x) const;  // inverse
  Variable conditioning(const Tensor& logsnr, const Tensor& labels) const;

  ModelConfig cfg_;
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
