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

// ---- Mixed precision: bf16 tensors ----
// Every float op takes bf16 tensors on every backend. The dtype rule, for all ops:
//  - A call's float inputs are all f64, or each f32 or bf16. Which inputs may differ from the
//    first one is the op's choice, made in infer() with expect_compatible_dtype() (a bias, a norm's
//    gamma, a conditioning scale/shift: f32 parameters next to bf16 activations) or refused with
//    expect_same_dtype() (concat, attention's q/k/v).
//  - Outputs take the dtype of the first input (the activation), except statistics:
//    statistic_dtype(), f32 for bf16. They are those saved for the backward (attention's
//    log-sum-exp, the norms' mean and rstd) and the reductions to a loss or a norm (sum, mean,
//    mse, grad_norm: autocast's f32 ops). Input gradients take their input's dtype; output
//    gradients their output's.
//  - A backend either runs the call natively (Backend::bf16: its kernels take the call's tensors
//    in the dtypes given) or, by default, the registry adapts it: bf16 inputs (and, backward,
//    outputs and output gradients) are widened to f32, the f32 kernel runs, and every result
//    whose dtype is bf16 is rounded to it (nearest even). That is "bf16 storage, f32 compute",
//    the roundings PyTorch's bf16 ops make at op boundaries: GEMM-like products accumulate in f32,
//    norms and softmax compute their statistics in f32.
// The CPU backend runs every op through the adapter: it is the reference that defines the bf16
// results, and without bf16 arithmetic (AVX512-BF16/AMX) a native CPU kernel would widen the same
// way inside its loops, saving only the conversion pass (memory-bound) around work that is
// compute-bound where it matters (GEMMs, convolutions, attention). A native CUDA kernel is a
// drop-in: it sets Backend::bf16 and the registry hands it the bf16 tensors.
// The adapter itself, for native kernels too: an f32 kernel run on a call that holds bf16 tensors
// (bf16 inputs widened, exact; bf16 results rounded once). A native kernel falls back to it for a
// dtype mix it does not take (a GEMM of a bf16 and an f32 operand: cuBLASLt multiplies operands
// of one dtype, and rounding the f32 one to bf16, autocast's choice, adds an error the bf16 rule
// of tests/bf16_rule.h does not allow for f32 values; the model never mixes them).
void run_widened(OpCall& call, const ForwardFn& f32);
void run_widened(GradCall& call, const BackwardFn& f32);

struct Backend {
  ForwardFn forward;
  BackwardFn backward;  // empty for non-differentiable ops
  bool bf16 = false;    // the kernels take bf16 tensors themselves (see above)
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
};

struct OpDef {
  std::string name;
  std::string doc;
  std::vector<InputSpec> inputs;
  std::vector<AttrSpec> attrs;
  std::vector<OutputSpec> outputs;
  // The inputs and outputs whose values the backward reads, by name; "*" (the default) is all.
  // The tape keeps only these until the backward runs (PyTorch's saved tensors); of the others it
  // keeps the shape and dtype (Tensor::shape_only), so an activation no backward reads (an add's
  // operands, a convolution's output) is freed as soon as the forward is done with it.
  // run_backward hands every backend shape-only tensors for the rest, so the gradient-check and
  // parity loops test each op's list on each backend. Registry::add checks the names.
  std::vector<std::string> saved = {"*"};
  std::vector<bool> saved_in, saved_out;  // `saved` per input and output, filled by Registry::add
  // Validates inputs and attributes (throws sd::Error naming op, argument, expected, got) and
  // returns the output shapes and dtypes.
  std::function<std::vector<OutMeta>(const std::vector<Tensor>&, const Attrs&)> infer;
  Backend cpu, cuda;
  std::vector<TestCase> tests;
  // Larger shapes for bench/ (the shapes the model and the targets use); bench/ runs
  // each in f32 and in bf16 ("bf16 <label>").
  std::vector<TestCase> bench_cases;
  // Floating-point operations of one forward call, for TFLOP/s in benchmarks (matmul, attention,
  // conv); empty for memory-bound ops, which are reported in GB/s of inputs + outputs.
  std::function<double(const std::vector<Tensor>&, const Attrs&)> flops;
  double backward_flops_ratio = 2.0;  // GEMM-like: two products per forward one (attention: 2.5)
  bool differentiable() const { return bool(cpu.backward); }
  // CUDA-vs-CPU relative error bound for f32 (the default suits exact-order elementwise work;
  // reductions over long axes and GEMMs state their own, with the reason, in their OpDef).
  double parity_tol = 1e-5;
  // The bf16 parity bound, in bf16 roundings of the result (tests/bf16_rule.h): 2, or 4 for a
  // native CUDA kernel that rounds intermediates to bf16 to feed tensor cores (attention's P, dS).
  double bf16_parity_factor = 2;
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
// The forward's inputs and outputs as the backward may see them: those the op's OpDef::saved
// does not name become shape-only tensors (the tape saves these; run_backward passes these).
void keep_saved(const OpDef& def, std::vector<Tensor>& in, std::vector<Tensor>& out);
std::vector<std::string> saved_names(const OpDef& def);  // inputs, then outputs, that are kept
// Gradients of the inputs flagged in `need` (same length as `in`); others come back undefined.
// The backend sees only what the op's OpDef::saved names (keep_saved).
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
void expect_float(const std::string& op, const std::string& arg, const Tensor& t);  // f32, f64, bf16
void expect_dtype(const std::string& op, const std::string& arg, const Tensor& t, DType d);
// t has ref's dtype (ref: the op's first input).
void expect_same_dtype(const std::string& op, const std::string& arg, const Tensor& t,
                       const Tensor& ref);
// t has ref's dtype, or both are f32 / bf16 (mixed precision, the dtype rule above).
void expect_compatible_dtype(const std::string& op, const std::string& arg, const Tensor& t,
                             const Tensor& ref);
// The dtype of a statistic of `x` (saved for the backward, or a loss or norm): f32 for bf16, else
// x's dtype.
DType statistic_dtype(DType x);
// seed / offset attributes: JSON integers >= 0 (large ones parse as unsigned).
void expect_u64_attr(const std::string& op, const Attrs& attrs, const char* name);
void expect_attr(const std::string& op, const std::string& attr, bool ok,
                 const std::string& expected, const nlohmann::json& got);

}  // namespace sd
