// The differentiable functions the model is written in. Each is one registry op recorded on the
// tape by apply(); layouts: images NCHW, tokens [B, N, C], attention heads [B, H, N, D].
#pragma once
#include "autograd/variable.h"

namespace sd::ops {

Variable add(const Variable& a, const Variable& b);  // broadcasting
Variable mul(const Variable& a, const Variable& b);  // broadcasting
Variable scale(const Variable& x, double s);
Variable silu(const Variable& x);
Variable gelu(const Variable& x);

Variable matmul(const Variable& a, const Variable& b, bool trans_a = false, bool trans_b = false);
Variable linear(const Variable& x, const Variable& w, const Variable& b = {});  // x W^T + b

Variable conv2d(const Variable& x, const Variable& w, const Variable& b = {}, int stride = 1,
                int padding = 0);
Variable space_to_depth(const Variable& x, int p);  // [B,C,H,W] -> [B,C*p*p,H/p,W/p]
Variable depth_to_space(const Variable& x, int p);  // inverse
Variable avg_pool2d(const Variable& x, int k);
Variable upsample_nearest(const Variable& x, int factor = 2);

Variable haar_dwt(const Variable& x);   // [B,C,H,W] -> [B,4C,H/2,W/2]: LL, LH, HL, HH
Variable haar_idwt(const Variable& x);  // inverse

Variable layer_norm(const Variable& x, const Variable& gamma, const Variable& beta,
                    double eps = 1e-6);  // over the last axis
Variable group_norm(const Variable& x, const Variable& gamma, const Variable& beta, int groups,
                    double eps = 1e-5);  // x [B,C,...]
// x * (1 + scale) + shift with scale, shift [B, C]; channels on axis 1 ("nchw") or last ("nlc").
Variable scale_shift(const Variable& x, const Variable& scale, const Variable& shift,
                     const std::string& layout = "nchw");
// Fused: act((norm(x) * gamma + beta) * (1 + scale) + shift), act = SiLU when `silu`, else
// the identity; scale, shift [B, C]. group_norm_mod on x [B,C,...], layer_norm_mod on x [B,N,C].
Variable group_norm_mod(const Variable& x, const Variable& gamma, const Variable& beta,
                        const Variable& scale, const Variable& shift, int groups, bool silu = true,
                        double eps = 1e-5);
Variable layer_norm_mod(const Variable& x, const Variable& gamma, const Variable& beta,
                        const Variable& scale, const Variable& shift, bool silu = false,
                        double eps = 1e-6);
Variable bias_gelu(const Variable& x, const Variable& b);  // gelu(x + b), b [C] on the last axis

// softmax(q k^T * s) v per (batch, head); s = 1/sqrt(D) by default.
Variable attention(const Variable& q, const Variable& k, const Variable& v, double scale = 0);

Variable concat(const Variable& a, const Variable& b, int axis = 1);
std::pair<Variable, Variable> split(const Variable& x, int64_t first, int axis = 1);
Variable permute(const Variable& x, const std::vector<int64_t>& perm);
Variable reshape(const Variable& x, const Shape& shape);
// x in another float dtype; its gradient comes back in x's (mixed precision, model/layers.h).
Variable cast(const Variable& x, DType dtype);

Variable embedding(const Variable& table, const Variable& idx);  // table [V,D], idx i32 [B]
Variable sinusoidal_embedding(const Variable& x, int dim, double max_period = 10000);
// first: x's position in the mask stream (a rank's shard of a larger batch; see kernels/cpu/embed.cpp)
Variable dropout(const Variable& x, double p, uint64_t seed, uint64_t offset, uint64_t first = 0);

Variable sum(const Variable& x);   // all elements -> shape []
Variable mean(const Variable& x);  // all elements -> shape []
Variable mse(const Variable& a, const Variable& b);  // per sample: mean over dims 1.. -> [B]

}  // namespace sd::ops
