// Central finite differences in double precision on the CPU, against the hand-written backward.
// Loss L = sum_j <r_j, out_j> over the differentiable outputs with fixed random weights r_j, so
// every output element contributes; dL/dx_k is then compared with (L(x+h e_k) - L(x-h e_k))/2h.
#pragma once
#include <functional>
#include <string>

#include "autograd/variable.h"

namespace sd {

struct GradcheckResult {
  bool ok = true;
  double max_abs_err = 0, max_rel_err = 0;
  std::string worst;  // "input 'x' element 17: analytic 0.1234 numeric 0.1236"
};

struct GradcheckOptions {
  double h = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
  int max_elements = 64;  // per input; inputs larger than this are sampled evenly
};

// One registry op on one test case (F64 inputs built from the case with `seed`).
GradcheckResult gradcheck_op(const OpDef& def, const TestCase& tc, uint64_t seed,
                             const GradcheckOptions& opt = {});

// Any composite written with autograd ops: f maps F64 leaf variables to one output variable.
GradcheckResult gradcheck_fn(const std::function<Variable(const std::vector<Variable>&)>& f,
                             const std::vector<Tensor>& inputs, uint64_t seed,
                             const GradcheckOptions& opt = {});

}  // namespace sd
