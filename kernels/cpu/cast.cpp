// cast: a float tensor converted to another float dtype, the op mixed precision is built on
// (model/layers.h casts the f32 master weights to bf16 where bf16 activations meet them).
//   cast(x, dtype):  y = round_dtype(x)     dx = convert(g, x's dtype)
// Rounding is not differentiable; its gradient is taken as the identity (the straight-through
// convention PyTorch's x.to(dtype) uses), so the bf16 copy's gradient comes back to the f32
// master weight unchanged: bf16 -> f32 is exact. One conversion pass over the tensor either way;
// the same code serves every backend (Tensor::convert_from: host loops, or device_convert on
// CUDA), and both run it natively in every dtype.
#include "kernels/registry.h"

namespace sd {
namespace {

const DType kCastable[] = {DType::F32, DType::BF16, DType::F64};

DType cast_target(const Attrs& a) {
  const auto& v = a["dtype"];
  if (v.is_string())
    for (DType d : kCastable)
      if (v.get<std::string>() == dtype_lower(d)) return d;
  expect_attr("cast", "dtype", false, "\"f32\", \"bf16\" or \"f64\"", v);
  return DType::F32;  // not reached
}

Backend cast_backend() {
  return {[](OpCall& c) { c.out[0].convert_from(c.in[0]); },
          [](GradCall& c) {
            if (!c.grad_in[0].defined()) return;
            if (c.grad_out[0].defined()) c.grad_in[0].convert_from(c.grad_out[0]);
            else c.grad_in[0].zero_();
          },
          /*bf16=*/true};
}

}  // namespace

void register_cast_ops(Registry& r) {
  OpDef cast{.name = "cast",
             .doc = "x converted to another float dtype (to bf16: rounded to nearest even); the "
                    "gradient is converted back to x's dtype, as if the rounding were the "
                    "identity. PyTorch: x.to(dtype).",
             .inputs = {{"x", "any shape, f32, bf16 or f64"}},
             .attrs = {{"dtype", "the result's dtype: \"f32\", \"bf16\" or \"f64\""}},
             .outputs = {{"y", "x's shape, in dtype"}}};
  cast.infer = [](const std::vector<Tensor>& in, const Attrs& a) {
    expect_float("cast", "x", in[0]);
    return std::vector<OutMeta>{{in[0].shape(), cast_target(a)}};
  };
  cast.cpu = cast_backend();
  // The gradient check runs in f64, where only the identity cast is differentiable to its
  // tolerance; the roundings to f32 and bf16 are tested in tests/test_bf16.cpp.
  cast.tests = {{"to f64", {{{3, 5}}}, {{"dtype", "f64"}}}};
  cast.bench_cases = {{"f32 to bf16 64M", {{{64 << 20}}}, {{"dtype", "bf16"}}}};
  cast.saved = {};
  r.add(std::move(cast));
}

#ifdef SIMDIFF_WITH_CUDA
void register_cast_cuda(Registry& r) { r.mutable_at("cast").cuda = cast_backend(); }
#endif

}  // namespace sd
