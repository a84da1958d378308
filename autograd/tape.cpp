#include <unordered_map>
#include <unordered_set>

#include "autograd/variable.h"

namespace sd {

namespace {
thread_local bool g_grad_enabled = true;
}

NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }
bool grad_enabled() { return g_grad_enabled; }

Variable::Variable(Tensor value, bool requires_grad, std::string name)
    : h_(std::make_shared<Handle>(std::make_shared<VarImpl>())) {
  p().value = std::move(value);
  p().requires_grad = requires_grad;
  p().name = std::move(name);
}

std::vector<Variable> apply(const std::string& name, const std::vector<Variable>& inputs,
                            const Attrs& attrs) {
  const OpDef& def = Registry::get().at(name);
  std::vector<Tensor> in;
  bool needs = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    in.push_back(inputs[i].defined() ? inputs[i].value() : Tensor());
    if (i < def.inputs.size() && def.inputs[i].differentiable && inputs[i].requires_grad())
      needs = true;
  }
  needs = needs && g_grad_enabled && def.differentiable();
  std::vector<Tensor> out = run_forward(name, in, attrs);
  std::vector<Variable> res;
  for (auto& t : out) res.emplace_back(std::move(t), needs);
  if (needs) {
    auto node = std::make_shared<Node>();
    node->op = name;
    node->attrs = attrs;
    node->saved_in = std::move(in);
    for (auto& v : inputs) node->inputs.push_back(v.defined() ? v.impl() : nullptr);
    for (auto& v : res) node->saved_out.push_back(v.value());
    keep_saved(def, node->saved_in, node->saved_out);  // what the backward reads, no more
    for (auto& v : res) {
      node->outputs.push_back(v.impl());
      v.impl()->node = node;
    }
  }
  return res;
}

Variable reshape(const Variable& x, const Shape& shape) {
  Variable y(x.value().reshape(shape), x.requires_grad() && g_grad_enabled);
  if (y.requires_grad()) {
    auto node = std::make_shared<Node>();
    node->op = "reshape";
    Shape from = x.shape();
    node->inputs = {x.impl()};
    node->outputs = {y.impl()};
    node->view_backward = [from](const std::vector<Tensor>& g) {
      return std::vector<Tensor>{g[0].defined() ? g[0].reshape(from) : Tensor()};
    };
    y.impl()->node = node;
  }
  return y;
}

void accumulate(Tensor& dst, const Tensor& src) {
  SD_CHECK(dst.shape() == src.shape(), "accumulate: gradient ", src.desc(), " for ", dst.desc());
  run_forward_into("add", {dst, src}, {dst});
}

void backward(const Variable& root, const Tensor& seed, const AfterNode& after_node) {
  SD_CHECK(root.defined() && root.requires_grad(),
           "backward: the root does not require a gradient (no parameter reaches it)");
  Tensor s = seed;
  if (!s.defined()) {
    s = Tensor::empty(root.shape(), root.value().dtype(), root.value().device());
    s.fill_(1.0);
  }
  SD_CHECK(s.shape() == root.shape(), "backward: seed ", s.desc(), " for root ",
           root.value().desc());

  // Reverse topological order by iterative DFS (the graph can be deep: no recursion).
  std::vector<Node*> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack;
  if (root.impl()->node) stack.push_back({root.impl()->node.get(), 0});
  while (!stack.empty()) {
    auto& [n, i] = stack.back();
    if (i == 0 && !seen.insert(n).second) {
      stack.pop_back();
      continue;
    }
    if (i < n->inputs.size()) {
      auto& in = n->inputs[i++];
      if (in && in->node && !seen.count(in->node.get())) stack.push_back({in->node.get(), 0});
    } else {
      order.push_back(n);
      stack.pop_back();
    }
  }

  // The uses of each leaf still to run, when a caller waits for leaves' gradients to be final.
  std::unordered_map<VarImpl*, int> pending_uses;
  std::vector<VarImpl*> leaves_done;
  if (after_node)
    for (Node* n : order)
      for (auto& in : n->inputs)
        if (in && !in->node && in->requires_grad) ++pending_uses[in.get()];

  // A gradient passed through unchanged (add's) may be held by several variables at once: it is
  // marked shared, and the first accumulation into it makes a new tensor instead of adding in
  // place. Parameters' gradients (views of the gradient arena, defined before backward) are never
  // replaced: they always accumulate in place.
  auto add_grad = [](VarImpl& v, Tensor g, bool shared) {
    if (!v.grad.defined()) {
      v.grad = std::move(g);
      v.grad_shared = shared;
    } else if (v.grad_shared) {
      v.grad = run_forward("add", {v.grad, g})[0];
      v.grad_shared = false;
    } else {
      accumulate(v.grad, g);
    }
  };
  if (root.impl()->node) root.impl()->grad = Tensor();  // a root's own gradient is the seed
  add_grad(*root.impl(), s, false);

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node& n = **it;
    std::vector<Tensor> gout;
    for (auto& w : n.outputs) {
      auto o = w.lock();
      gout.push_back(o ? o->grad : Tensor());
    }
    bool any = false;
    for (auto& g : gout) any |= g.defined();
    if (any) {
      std::vector<Tensor> gin;
      // a + b without broadcasting, in one dtype: both gradients are g itself, no kernel and no
      // copies. (With a bf16 a and an f32 b, b's gradient must be f32: the backward makes it.)
      bool pass = n.op == "add" && n.saved_in[0].shape() == n.saved_in[1].shape() &&
                  n.saved_in[0].dtype() == n.saved_in[1].dtype();
      if (n.view_backward) {
        gin = n.view_backward(gout);
      } else if (pass) {
        gin = {gout[0], gout[0]};
      } else {
        std::vector<bool> need;
        for (auto& in : n.inputs) need.push_back(in && in->requires_grad);
        gin = run_backward(n.op, n.saved_in, n.saved_out, gout, need, n.attrs);
      }
      for (size_t i = 0; i < n.inputs.size(); ++i)
        if (n.inputs[i] && n.inputs[i]->requires_grad && gin[i].defined())
          add_grad(*n.inputs[i], std::move(gin[i]), pass || bool(n.view_backward));
    }
    // Release what this node held: saved tensors, and the gradients of its (non-leaf) outputs.
    n.saved_in.clear();
    n.saved_out.clear();
    for (auto& w : n.outputs)
      if (auto o = w.lock(); o && !o->retain_grad) o->grad = Tensor();
    if (after_node) {
      leaves_done.clear();
      for (auto& in : n.inputs)
        if (in && !in->node && in->requires_grad && --pending_uses[in.get()] == 0)
          leaves_done.push_back(in.get());
      after_node(leaves_done);
    }
  }
  for (Node* n : order) n->inputs.clear();  // break the graph so it can be freed
}

}  // namespace sd
