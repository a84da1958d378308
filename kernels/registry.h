// The op table. Every computation the engine knows is one OpDef: its name, a machine-readable
// description of inputs / attributes / outputs, shape inference with argument validation, a CPU
// forward and backward (the reference), a CUDA forward and backward, and the test cases that the
// gradient-check and parity loops run. Adding an op means writing its kernels and one OpDef;
// autograd, `simdiff op`, the tests and the benchmarks reach it through this table.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace sd {

using Attrs = nlohmann::json;

struct InputSpec {
  std::string name;
  std::string doc;
  bool differentiable = true;  // false for labels, indices, saved statistics
  bool optional = false;       // may be passed undefined (e.g. a bias)
};

struct OutputSpec {
  std::string name;
  std::string doc;
  bool differentiable = true;  // false for saved statistics (attention's log-sum-exp)
};

struct AttrSpec {
  std::string name;
  std::string doc;
  nlohmann::json default_value = nullptr;  // null: required
};

struct OutMeta {
  Shape shape;
  DType dtype;
};

// Forward call: `out` is allocated by the runner from infer(); kernels write every element.
struct OpCall {
  std::vector<Tensor> in;  // undefined for an absent optional input
  std::vector<Tensor> out;
  const Attrs& attrs;      // complete: defaults filled in, unknown keys refused
};

// Backward call: grad_in[i] is allocated (uninitialised) where input i needs a gradient and is
// undefined otherwise; kernels overwrite it. grad_out[j] is undefined for outputs with no gradient
// flowing back (treat as zero).
struct GradCall {
  std::vector<Tensor> in;
  std::vector<Tensor> out;
  std::vector<Tensor> grad_out;
  std::vector<Tensor> grad_in;
  const Attrs& attrs;
};

using ForwardFn = std::function<void(OpCall&)>;
using BackwardFn = std::function<void(GradCall&)>;

struct Backend {
  ForwardFn forward;
  BackwardFn backward;  // empty for non-differentiable ops
};

// One random input of a test case. Float inputs are uniform in [lo, hi]; integer inputs
// (dtype I32) are uniform integers in [lo, hi].
struct TestInput {
  Shape shape;
  bool integer = false;
  double lo = -1, hi = 1;
  bool absent = false;  // leave an optional input undefined
};

struct TestCase {
  std::string label;
  std::vector<TestInput> inputs;
  Attrs attrs = Attrs::object();
  bool bf16 = false;  // bench cases only: float inputs in bf16, CUDA only
};

struct OpDef {
  std::string name;
  std::string doc;
  std::vector<InputSpec> inputs;
  std::vector<AttrSpec> attrs;
  std::vector<OutputSpec> outputs;
  // Validates inputs and attributes (throws sd::Error naming op, argument, expected, got) and
  // returns the output shapes and dtypes.
  std::function<std::vector<OutMeta>(const std::vector<Tensor>&, const Attrs&)> infer;
  Backend cpu, cuda;
  std::vector<TestCase> tests;
  // Larger shapes for bench/ (the shapes the model and the targets use).
  std::vector<TestCase> bench_cases;
  // Floating-point operations of one forward call, for TFLOP/s in benchmarks (matmul, attention,
  // conv); empty for memory-bound ops, which are reported in GB/s of inputs + outputs.
  std::function<double(const std::vector<Tensor>&, const Attrs&)> flops;
  double backward_flops_ratio = 2.0;  // GEMM-like: two products per forward one (attention: 2.5)
  bool differentiable() const { return bool(cpu.backward); }
  // CUDA-vs-CPU relative error bound for f32 (the default suits exact-order elementwise work;
  // reductions over long axes and GEMMs state their own, with the reason, in their OpDef).
  double parity_tol = 1e-5;
};

class Registry {
 public:
  static Registry& get();  // fills itself on first use
  void add(OpDef def);
  const OpDef& at(const std::string& name) const;  // throws listing the known ops
  OpDef& mutable_at(const std::string& name);      // for CUDA registration
  const OpDef* find(const std::string& name) const;
  std::vector<const OpDef*> all() const;
  nlohmann::json describe() const;  // `simdiff op --list`

 private:
  std::vector<OpDef> ops_;
};

// Fill defaults, refuse unknown or missing attributes.
Attrs resolve_attrs(const OpDef& def, const Attrs& given);

// Run an op on the device of its inputs. Checks arity, devices, and that the backend exists.
std::vector<Tensor> run_forward(const std::string& name, const std::vector<Tensor>& in,
                                const Attrs& attrs = Attrs::object());
// The same, writing into caller-provided outputs (shapes must match infer()); an output may alias
// an input of the same shape for elementwise ops (in-place updates: accumulation, optimizer).
void run_forward_into(const std::string& name, const std::vector<Tensor>& in,
                      const std::vector<Tensor>& out, const Attrs& attrs = Attrs::object());
// Ops with no inputs (random draws) run on `device`.
std::vector<Tensor> run_forward_on(Device device, const std::string& name,
                                   const Attrs& attrs = Attrs::object());
// Gradients of the inputs flagged in `need` (same length as `in`); others come back undefined.
std::vector<Tensor> run_backward(const std::string& name, const std::vector<Tensor>& in,
                                 const std::vector<Tensor>& out,
                                 const std::vector<Tensor>& grad_out,
                                 const std::vector<bool>& need,
                                 const Attrs& attrs = Attrs::object());

// ---- helpers for infer() functions: each throws "<op>: <arg> expected ..., got <desc>" ----
void expect_defined(const std::string& op, const std::string& arg, const Tensor& t);
void expect_ndim(const std::string& op, const std::string& arg, const Tensor& t, int ndim);
void expect_shape(const std::string& op, const std::string& arg, const Tensor& t,
                  const Shape& shape);
void expect_float(const std::string& op, const std::string& arg, const Tensor& t);
void expect_dtype(const std::string& op, const std::string& arg, const Tensor& t, DType d);
void expect_same_dtype(const std::string& op, const std::string& arg, const Tensor& t,
                       const Tensor& ref);
// seed / offset attributes: JSON integers >= 0 (large ones parse as unsigned).
void expect_u64_attr(const std::string& op, const Attrs& attrs, const char* name);
void expect_attr(const std::string& op, const std::string& attr, bool ok,
                 const std::string& expected, const nlohmann::json& got);

}  // namespace sd
