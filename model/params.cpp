#include "model/params.h"

#include <cmath>

#include "runtime/philox.h"

namespace sd {

Variable ParamStore::declare(const std::string& name, const Shape& shape, Init init) {
  SD_CHECK(!values_.defined(), "ParamStore: parameter '", name, "' declared after finalize()");
  SD_CHECK(names_.insert(name).second, "ParamStore: parameter '", name, "' declared twice");
  Param p{name, shape, init, total_, Variable(Tensor(), true, name)};
  total_ += shape_numel(shape);
  params_.push_back(p);
  return p.var;
}

void ParamStore::finalize(Device device, uint64_t seed) {
  Tensor host = Tensor::empty({total_}, DType::F32);
  float* a = host.data<float>();
  for (size_t k = 0; k < params_.size(); ++k) {
    const Param& p = params_[k];
    float* w = a + p.offset;
    int64_t n = shape_numel(p.shape);
    double bound = p.init.scale > 0 ? p.init.scale : 1.0 / std::sqrt(double(p.init.fan_in));
    for (int64_t i = 0; i < n; ++i) {
      switch (p.init.kind) {
        case Init::Zeros: w[i] = 0; break;
        case Init::Ones: w[i] = 1; break;
        case Init::Uniform: w[i] = float(bound * (2.0 * philox_uniform(seed, k, i) - 1.0)); break;
        case Init::Normal: w[i] = float(p.init.scale * philox_normal(seed, k, i)); break;
      }
    }
  }
  values_ = host.to(device);
  grads_ = Tensor::zeros({total_}, DType::F32, device);
  rebind();
  for (auto& p : params_) p.var.set_grad(grads_.slice_flat(p.offset, p.shape));
}

void ParamStore::bind_values(const Tensor& arena) {
  SD_CHECK(arena.numel() == total_, "ParamStore: arena of ", arena.numel(), " values for ",
           total_, " parameters");
  for (auto& p : params_) p.var.set_value(arena.slice_flat(p.offset, p.shape));
}

std::map<std::string, Tensor> ParamStore::views(const Tensor& arena) const {
  std::map<std::string, Tensor> m;
  for (auto& p : params_) m[p.name] = arena.slice_flat(p.offset, p.shape);
  return m;
}

void ParamStore::load_views(const Tensor& arena, const std::map<std::string, Tensor>& tensors,
                            const std::string& prefix, const std::string& what) const {
  for (auto& p : params_) {
    auto it = tensors.find(prefix + p.name);
    SD_CHECK(it != tensors.end(), what, ": missing tensor '", prefix + p.name, "' (shape ",
             shape_str(p.shape), ")");
    const Tensor& t = it->second;
    SD_CHECK(t.shape() == p.shape, what, ": tensor '", prefix + p.name, "' has shape ",
             shape_str(t.shape()), " but the model config needs ", shape_str(p.shape));
    SD_CHECK(t.dtype() == DType::F32, what, ": tensor '", prefix + p.name, "' has dtype ",
             dtype_name(t.dtype()), " but the model's parameters are F32");
    Tensor host = t.to(Device::CPU);
    const float* v = host.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i)
      SD_CHECK(std::isfinite(v[i]), what, ": tensor '", prefix + p.name, "' holds a value that is ",
               "not finite (", v[i], " at element ", i, ")");
    arena.slice_flat(p.offset, p.shape).copy_from(t.to(arena.device()));
  }
}

}  // namespace sd
