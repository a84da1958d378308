#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "kernels/op_inputs.h"

namespace sd {

namespace {

double dot(const Tensor& a, const Tensor& b) {
  const double* pa = a.data<double>();
  const double* pb = b.data<double>();
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += pa[i] * pb[i];
  return s;
}

// Compares analytic gradients with central differences of `loss` for each listed input.
GradcheckResult compare(const std::function<double()>& loss, std::vector<Tensor>& inputs,
                        const std::vector<Tensor>& analytic, const std::vector<std::string>& names,
                        const GradcheckOptions& opt) {
  GradcheckResult r;
  double worst_excess = -1;
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!analytic[k].defined()) continue;
    double* x = inputs[k].data<double>();
    const double* g = analytic[k].data<double>();
    int64_t n = inputs[k].numel();
    int64_t step = std::max<int64_t>(1, n / opt.max_elements);
    for (int64_t i = 0; i < n; i += step) {
      double x0 = x[i];
      x[i] = x0 + opt.h;
      double lp = loss();
      x[i] = x0 - opt.h;
      double lm = loss();
      x[i] = x0;
      double num = (lp - lm) / (2 * opt.h);
      double err = std::abs(g[i] - num);
      double tol = opt.atol + opt.rtol * std::abs(num);
      r.max_abs_err = std::max(r.max_abs_err, err);
      r.max_rel_err = std::max(r.max_rel_err, err / std::max(std::abs(num), 1e-12));
      if (!(err <= tol)) r.ok = false;  // NaN fails too
      if (!(err <= tol) || err - tol > worst_excess) {
        worst_excess = std::isnan(err) ? 1e300 : err - tol;
        std::ostringstream os;
        os << "input '" << names[k] << "' element " << i << ": analytic " << g[i] << " numeric "
           << num;
        r.worst = os.str();
      }
    }
  }
  return r;
}

}  // namespace

GradcheckResult gradcheck_op(const OpDef& def, const TestCase& tc, uint64_t seed,
                             const GradcheckOptions& opt) {
  std::vector<Tensor> in = make_op_inputs(tc, seed, DType::F64);
  std::vector<Tensor> out = run_forward(def.name, in, tc.attrs);
  std::vector<Tensor> weights;
  for (size_t j = 0; j < out.size(); ++j)
    weights.push_back(def.outputs[j].differentiable
                          ? random_uniform_tensor(out[j].shape(), seed + 1000, j, DType::F64)
                          : Tensor());
  auto loss = [&] {
    std::vector<Tensor> o = run_forward(def.name, in, tc.attrs);
    double s = 0;
    for (size_t j = 0; j < o.size(); ++j)
      if (weights[j].defined()) s += dot(o[j], weights[j]);
    return s;
  };
  std::vector<bool> need;
  std::vector<std::string> names;
  for (size_t i = 0; i < in.size(); ++i) {
    need.push_back(in[i].defined() && def.inputs[i].differentiable);
    names.push_back(def.inputs[i].name);
  }
  std::vector<Tensor> g = run_backward(def.name, in, out, weights, need, tc.attrs);
  return compare(loss, in, g, names, opt);
}

GradcheckResult gradcheck_fn(const std::function<Variable(const std::vector<Variable>&)>& f,
                             const std::vector<Tensor>& inputs, uint64_t seed,
                             const GradcheckOptions& opt) {
  std::vector<Tensor> in;
  for (auto& t : inputs) in.push_back(t.clone());
  std::vector<Variable> vars;
  for (auto& t : in) vars.emplace_back(t, t.dtype() == DType::F64);
  Variable y = f(vars);
  Tensor w = random_uniform_tensor(y.shape(), seed + 1000, 0, DType::F64);
  backward(y, w);
  std::vector<Tensor> g;
  std::vector<std::string> names;
  for (size_t i = 0; i < vars.size(); ++i) {
    g.push_back(vars[i].grad());
    // Appended, not "#" + std::to_string(i): GCC 12 warns (-Wrestrict) about the inlined
    // operator+(const char*, string&&), a libstdc++ false positive.
    names.push_back(std::string("#").append(std::to_string(i)));
  }
  auto loss = [&] {
    NoGradGuard ng;
    std::vector<Variable> v;
    for (auto& t : in) v.emplace_back(t);
    return dot(f(v).value(), w);
  };
  return compare(loss, in, g, names, opt);
}

}  // namespace sd
