// Named parameters in one flat arena. Layers declare parameters while the model is built; then
// finalize() lays them out contiguously in one f32 buffer (and one for their gradients), so the
// optimizer, the EMA, the gradient norm and checkpoint I/O are each one pass over one buffer.
// Each parameter Variable is a view into the arena; its gradient is a view into the gradient
// arena, so backward() accumulates (+=) straight into it.
#pragma once
#include <map>
#include <string>
#include <unordered_set>
#include <vector>

#include "autograd/variable.h"

namespace sd {

struct Init {
  enum Kind { Zeros, Ones, Uniform, Normal } kind = Uniform;
  double scale = 0;  // Uniform: bound (0 means 1/sqrt(fan_in)); Normal: std
  int64_t fan_in = 1;
};

struct Param {
  std::string name;  // the checkpoint key, e.g. "down.0.res.1.conv1.w"
  Shape shape;
  Init init;
  int64_t offset = 0;  // in elements, within the arena
  Variable var;
};

class ParamStore {
 public:
  // Returns the Variable handle; it holds a value once finalize() has run.
  Variable declare(const std::string& name, const Shape& shape, Init init);
  void finalize(Device device, uint64_t seed);

  const std::vector<Param>& params() const { return params_; }
  int64_t count() const { return total_; }
  const Tensor& values() const { return values_; }
  const Tensor& grads() const { return grads_; }
  Device device() const { return values_.device(); }

  void zero_grad() { grads_.zero_(); }
  // Point every parameter at another arena of the same layout (EMA weights for sampling).
  void bind_values(const Tensor& arena);
  void rebind() { bind_values(values_); }

  // name -> view into `arena` (values, EMA or optimizer moments share the layout).
  std::map<std::string, Tensor> views(const Tensor& arena) const;
  // Copies tensors named like the parameters into `arena`; `what` names the source in errors.
  // Refuses a missing tensor, a shape mismatch (naming both shapes), a dtype other than F32 and
  // a value that is not finite.
  void load_views(const Tensor& arena, const std::map<std::string, Tensor>& tensors,
                  const std::string& prefix, const std::string& what) const;

 private:
  std::vector<Param> params_;
  std::unordered_set<std::string> names_;  // a deep model declares 10^5 names: no pairwise scan
  int64_t total_ = 0;
  Tensor values_, grads_;
};

}  // namespace sd
