// Reverse-mode autograd. A Variable is a tensor plus, when it needs a gradient, the Node of the
// op that produced it. Ops record Nodes through apply() (autograd/tape.cpp) which runs the
// registry's forward and saves what its backward needs; backward() walks the Nodes in reverse
// topological order, calls each op's hand-written backward and accumulates into the inputs.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/registry.h"

namespace sd {

struct Node;

struct VarImpl {
  Tensor value;
  Tensor grad;                 // undefined until a gradient arrives
  std::shared_ptr<Node> node;  // null for leaves (parameters, inputs)
  bool requires_grad = false;
  bool retain_grad = false;    // keep the gradient of a non-leaf after backward (trace)
  bool grad_shared = false;    // grad is also another variable's: accumulate out of place
  std::string name;
};

// A Variable is a handle. Copies share one VarImpl, which the graph keeps too (each Node holds its
// inputs', to accumulate their gradients), but the value belongs to the handles alone: when the
// last Variable naming a VarImpl goes, its value drops to a shape-only tensor. So an activation
// lives while the model code holds it or a Node saved it for its backward (OpDef::saved), not
// for as long as the graph does.
class Variable {
 public:
  Variable() = default;
  explicit Variable(Tensor value, bool requires_grad = false, std::string name = "");

  bool defined() const { return h_ != nullptr; }
  const Tensor& value() const { return p().value; }
  const Tensor& grad() const { return p().grad; }
  const Shape& shape() const { return p().value.shape(); }
  DType dtype() const { return p().value.dtype(); }
  int64_t dim(int i) const { return p().value.dim(i); }
  bool requires_grad() const { return h_ && p().requires_grad; }
  bool is_leaf() const { return !p().node; }
  const std::string& name() const { return p().name; }

  void set_grad(Tensor g) { p().grad = std::move(g); }
  void set_value(Tensor v) { p().value = std::move(v); }
  void retain_grad(std::string name) {
    p().retain_grad = true;
    p().name = std::move(name);
  }
  Variable detach() const { return Variable(p().value); }

  const std::shared_ptr<VarImpl>& impl() const { return h_->impl; }

 private:
  struct Handle {
    std::shared_ptr<VarImpl> impl;
    explicit Handle(std::shared_ptr<VarImpl> p) : impl(std::move(p)) {}
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() {  // (a VarImpl no Node holds goes with its value anyway)
      if (impl.use_count() > 1 && impl->value.defined()) impl->value = impl->value.shape_only();
    }
  };
  VarImpl& p() const { return *h_->impl; }
  std::shared_ptr<Handle> h_;
};

// What an op recorded: the op (or a view's own backward), its attributes, the saved forward
// tensors, and links to its inputs and outputs.
struct Node {
  std::string op;  // registry op name, or "reshape" for the view
  Attrs attrs;
  std::vector<Tensor> saved_in, saved_out;
  std::vector<std::shared_ptr<VarImpl>> inputs;   // may hold null for absent optional inputs
  std::vector<std::weak_ptr<VarImpl>> outputs;
  // Views (reshape) have no kernel: their backward maps output gradients to input gradients.
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> view_backward;
};

// Runs registry op `name` on the variables' values; records a Node when grad mode is on and any
// differentiable input requires a gradient.
std::vector<Variable> apply(const std::string& name, const std::vector<Variable>& inputs,
                            const Attrs& attrs = Attrs::object());

// Reshape as a view (no copy); its gradient is reshaped back.
Variable reshape(const Variable& x, const Shape& shape);

// Called by backward() after each node's backward with the leaves whose gradients that node made
// final (every node that uses them has run; most often none). Data-parallel training starts
// all-reducing them then, and moves the reductions in flight on (tools/dist/reducer.h).
using AfterNode = std::function<void(const std::vector<VarImpl*>& leaves_done)>;

// Backpropagates from `root` (seeded with ones when `seed` is undefined). Gradients accumulate
// (+=) into leaves' existing grad tensors, so gradient accumulation over micro-batches is free.
// Saved tensors are released as each Node is used. With `after_node`, every leaf that needs a
// gradient and is reached from the root is reported done exactly once.
void backward(const Variable& root, const Tensor& seed = Tensor(), const AfterNode& after_node = {});

// dst += src, on either backend (gradient accumulation).
void accumulate(Tensor& dst, const Tensor& src);

// While alive, apply() records nothing (sampling, EMA evaluation).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};
bool grad_enabled();

}  // namespace sd
