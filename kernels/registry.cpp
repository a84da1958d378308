#include "kernels/registry.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>

#include "kernels/families.h"
#include "kernels/op_profile.h"
#include "runtime/json_text.h"

namespace sd {

#define SD_DECLARE(F) void register_##F##_ops(Registry&);
SD_OP_FAMILIES(SD_DECLARE)
#undef SD_DECLARE
#ifdef SIMDIFF_WITH_CUDA
#define SD_DECLARE(F) void register_##F##_cuda(Registry&);
SD_OP_FAMILIES(SD_DECLARE)
#undef SD_DECLARE
#endif

Registry& Registry::get() {
  static Registry r;
  static std::once_flag once;
  std::call_once(once, [] {
#define SD_CALL(F) register_##F##_ops(r);
    SD_OP_FAMILIES(SD_CALL)
#undef SD_CALL
#ifdef SIMDIFF_WITH_CUDA
#define SD_CALL(F) register_##F##_cuda(r);
    SD_OP_FAMILIES(SD_CALL)
#undef SD_CALL
#endif
  });
  return r;
}

void Registry::add(OpDef def) {
  SD_CHECK(find(def.name) == nullptr, "Registry: op '", def.name, "' registered twice");
  bool all = def.saved == std::vector<std::string>{"*"};
  auto mask = [&](const auto& specs) {
    std::vector<bool> m;
    for (auto& s : specs)
      m.push_back(all || std::find(def.saved.begin(), def.saved.end(), s.name) != def.saved.end());
    return m;
  };
  def.saved_in = mask(def.inputs);
  def.saved_out = mask(def.outputs);
  for (auto& n : def.saved) {
    auto named = [&](const auto& specs) {
      return std::any_of(specs.begin(), specs.end(), [&](auto& s) { return s.name == n; });
    };
    SD_CHECK(all || named(def.inputs) || named(def.outputs), "Registry: op '", def.name,
             "' saves '", n, "', which is none of its inputs or outputs");
  }
  ops_.push_back(std::move(def));
}

const OpDef* Registry::find(const std::string& name) const {
  for (auto& d : ops_)
    if (d.name == name) return &d;
  return nullptr;
}

const OpDef& Registry::at(const std::string& name) const {
  if (const OpDef* d = find(name)) return *d;
  std::string known;
  for (auto& d : ops_) known += (known.empty() ? "" : ", ") + d.name;
  fail("unknown op '", name, "' (known ops: ", known, ")");
}

OpDef& Registry::mutable_at(const std::string& name) { return const_cast<OpDef&>(at(name)); }

std::vector<const OpDef*> Registry::all() const {
  std::vector<const OpDef*> v;
  for (auto& d : ops_) v.push_back(&d);
  return v;
}

nlohmann::json Registry::describe() const {
  nlohmann::json ops = nlohmann::json::array();
  for (auto& d : ops_) {
    nlohmann::json j;
    j["name"] = d.name;
    j["doc"] = d.doc;
    j["differentiable"] = d.differentiable();
    if (d.differentiable()) j["saved"] = saved_names(d);
    j["backends"] = nlohmann::json::array({"cpu"});
    if (d.cuda.forward) j["backends"].push_back("cuda");
    j["bf16_native"] = nlohmann::json::array();  // the others compute bf16 calls in f32
    if (d.cpu.bf16) j["bf16_native"].push_back("cpu");
    if (d.cuda.forward && d.cuda.bf16) j["bf16_native"].push_back("cuda");
    for (auto& i : d.inputs)
      j["inputs"].push_back({{"name", i.name}, {"doc", i.doc}, {"differentiable", i.differentiable},
                             {"optional", i.optional}});
    j["attrs"] = nlohmann::json::array();
    for (auto& a : d.attrs)
      j["attrs"].push_back({{"name", a.name}, {"doc", a.doc}, {"default", a.default_value},
                            {"required", a.default_value.is_null()}});
    for (auto& o : d.outputs)
      j["outputs"].push_back({{"name", o.name}, {"doc", o.doc}, {"differentiable", o.differentiable}});
    ops.push_back(j);
  }
  return ops;
}

Attrs resolve_attrs(const OpDef& def, const Attrs& given) {
  SD_CHECK(given.is_object() || given.is_null(), def.name, ": attributes must be a JSON object, got ",
           brief(given));
  Attrs out = Attrs::object();
  if (given.is_object())
    for (auto& [k, v] : given.items()) {
      bool known = false;
      for (auto& a : def.attrs) known |= a.name == k;
      if (!known) {
        std::string names;
        for (auto& a : def.attrs) names += (names.empty() ? "" : ", ") + a.name;
        fail(def.name, ": unknown attribute '", k, "' (known: ", names.empty() ? "none" : names, ")");
      }
      // Kernels take real attributes as f32: 1e39 would silently become inf.
      SD_CHECK(!v.is_number_float() || std::abs(v.get<double>()) <= std::numeric_limits<float>::max(),
               def.name, ": attribute '", k, "' = ", brief(v), " does not fit a 32-bit float");
      out[k] = v;
    }
  for (auto& a : def.attrs)
    if (!out.contains(a.name)) {
      SD_CHECK(!a.default_value.is_null(), def.name, ": missing required attribute '", a.name,
               "' (", a.doc, ")");
      out[a.name] = a.default_value;
    }
  return out;
}

namespace {

Device common_device(const OpDef& def, const std::vector<Tensor>& in) {
  SD_CHECK(in.size() == def.inputs.size(), def.name, ": expected ", def.inputs.size(),
           " inputs, got ", in.size());
  const Tensor* first = nullptr;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!in[i].defined()) {
      SD_CHECK(def.inputs[i].optional, def.name, ": input '", def.inputs[i].name, "' is required");
      continue;
    }
    if (!first) first = &in[i];
    SD_CHECK(in[i].device() == first->device(), def.name, ": input '", def.inputs[i].name,
             "' is on ", device_name(in[i].device()), ", expected ", device_name(first->device()),
             " like the other inputs (got ", in[i].desc(), ")");
  }
  return first ? first->device() : Device::CPU;
}

const Backend& backend_for(const OpDef& def, Device dev) {
  const Backend& b = dev == Device::CPU ? def.cpu : def.cuda;
  SD_CHECK(bool(b.forward), def.name, ": no ", device_name(dev), " implementation",
           dev == Device::CUDA ? " (this build has no CUDA backend, or the op lacks a kernel)" : "");
  return b;
}

// ---- the bf16 adapter (the dtype rule in registry.h) ----

bool holds_bf16(const std::vector<Tensor>& v) {
  for (const Tensor& t : v)
    if (t.defined() && t.dtype() == DType::BF16) return true;
  return false;
}

// What the f32 kernel reads: bf16 tensors widened to f32 (exact), the others as they are.
std::vector<Tensor> widened(const std::vector<Tensor>& v) {
  std::vector<Tensor> r;
  for (const Tensor& t : v)
    r.push_back(!t.defined() || t.dtype() != DType::BF16 ? t
                : t.has_data() ? t.to(DType::F32)
                               : Tensor::shape_only(t.shape(), DType::F32, t.device()));
  return r;
}

// Where the f32 kernel writes: a new f32 tensor for each bf16 result, the result itself otherwise.
std::vector<Tensor> f32_buffers(const std::vector<Tensor>& v) {
  std::vector<Tensor> r;
  for (const Tensor& t : v)
    r.push_back(t.defined() && t.dtype() == DType::BF16
                    ? Tensor::empty(t.shape(), DType::F32, t.device())
                    : t);
  return r;
}

// The f32 results rounded into the bf16 ones.
void round_into(const std::vector<Tensor>& results, const std::vector<Tensor>& f32) {
  for (size_t j = 0; j < results.size(); ++j)
    if (results[j].defined() && results[j].dtype() == DType::BF16) results[j].convert_from(f32[j]);
}

}  // namespace

// An output aliasing a bf16 input (an in-place update) is read from the widened copy.
void run_widened(OpCall& call, const ForwardFn& f32) {
  OpCall wide{widened(call.in), f32_buffers(call.out), call.attrs};
  f32(wide);
  round_into(call.out, wide.out);
}

void run_widened(GradCall& call, const BackwardFn& f32) {
  GradCall wide{widened(call.in), widened(call.out), widened(call.grad_out),
                f32_buffers(call.grad_in), call.attrs};
  f32(wide);
  round_into(call.grad_in, wide.grad_in);
}

namespace {

void call_forward(const Backend& be, const std::vector<Tensor>& in,
                  const std::vector<Tensor>& out, const Attrs& a) {
  OpCall call{in, out, a};
  if (be.bf16 || (!holds_bf16(in) && !holds_bf16(out))) be.forward(call);
  else run_widened(call, be.forward);
}

void call_backward(const Backend& be, GradCall& call) {
  if (be.bf16 || (!holds_bf16(call.in) && !holds_bf16(call.out) && !holds_bf16(call.grad_out)))
    be.backward(call);
  else run_widened(call, be.backward);
}

}  // namespace

std::vector<Tensor> run_forward(const std::string& name, const std::vector<Tensor>& in,
                                const Attrs& attrs) {
  const OpDef& def = Registry::get().at(name);
  Device dev = common_device(def, in);
  const Backend& be = backend_for(def, dev);
  op_profile::Scope prof(def.name, false, dev == Device::CUDA);
  Attrs a = resolve_attrs(def, attrs);
  std::vector<OutMeta> metas = def.infer(in, a);
  std::vector<Tensor> out;
  for (auto& m : metas) out.push_back(Tensor::empty(m.shape, m.dtype, dev));
  call_forward(be, in, out, a);
  return out;
}

void run_forward_into(const std::string& name, const std::vector<Tensor>& in,
                      const std::vector<Tensor>& out, const Attrs& attrs) {
  const OpDef& def = Registry::get().at(name);
  Device dev = common_device(def, in);
  const Backend& be = backend_for(def, dev);
  op_profile::Scope prof(def.name, false, dev == Device::CUDA);
  Attrs a = resolve_attrs(def, attrs);
  std::vector<OutMeta> metas = def.infer(in, a);
  SD_CHECK(out.size() == metas.size(), name, ": expected ", metas.size(), " outputs, got ",
           out.size());
  for (size_t j = 0; j < out.size(); ++j)
    SD_CHECK(out[j].shape() == metas[j].shape && out[j].dtype() == metas[j].dtype &&
                 out[j].device() == dev,
             name, ": output '", def.outputs[j].name, "' expected ", shape_str(metas[j].shape),
             " ", dtype_name(metas[j].dtype), " on ", device_name(dev), ", got ", out[j].desc());
  call_forward(be, in, out, a);
}

std::vector<Tensor> run_forward_on(Device device, const std::string& name, const Attrs& attrs) {
  const OpDef& def = Registry::get().at(name);
  SD_CHECK(def.inputs.empty(), name, ": run_forward_on is for ops without inputs");
  const Backend& be = backend_for(def, device);
  op_profile::Scope prof(def.name, false, device == Device::CUDA);
  Attrs a = resolve_attrs(def, attrs);
  std::vector<OutMeta> metas = def.infer({}, a);
  OpCall call{{}, {}, a};
  for (auto& m : metas) call.out.push_back(Tensor::empty(m.shape, m.dtype, device));
  be.forward(call);
  return std::move(call.out);
}

std::vector<std::string> saved_names(const OpDef& def) {
  std::vector<std::string> v;
  for (size_t i = 0; i < def.inputs.size(); ++i)
    if (def.saved_in[i]) v.push_back(def.inputs[i].name);
  for (size_t j = 0; j < def.outputs.size(); ++j)
    if (def.saved_out[j]) v.push_back(def.outputs[j].name);
  return v;
}

void keep_saved(const OpDef& def, std::vector<Tensor>& in, std::vector<Tensor>& out) {
  for (size_t i = 0; i < in.size() && i < def.saved_in.size(); ++i)
    if (!def.saved_in[i] && in[i].defined()) in[i] = in[i].shape_only();
  for (size_t j = 0; j < out.size() && j < def.saved_out.size(); ++j)
    if (!def.saved_out[j] && out[j].defined()) out[j] = out[j].shape_only();
}

std::vector<Tensor> run_backward(const std::string& name, const std::vector<Tensor>& in,
                                 const std::vector<Tensor>& out,
                                 const std::vector<Tensor>& grad_out,
                                 const std::vector<bool>& need, const Attrs& attrs) {
  const OpDef& def = Registry::get().at(name);
  Device dev = common_device(def, in);
  const Backend& be = backend_for(def, dev);
  op_profile::Scope prof(def.name, true, dev == Device::CUDA);
  SD_CHECK(bool(be.backward), name, ": op is not differentiable");
  SD_CHECK(out.size() == def.outputs.size() && grad_out.size() == def.outputs.size(), name,
           ": backward expects ", def.outputs.size(), " outputs and output gradients, got ",
           out.size(), " and ", grad_out.size());
  SD_CHECK(need.size() == in.size(), name, ": backward needs one flag per input");
  for (size_t j = 0; j < out.size(); ++j)
    if (grad_out[j].defined())
      SD_CHECK(grad_out[j].shape() == out[j].shape() && grad_out[j].dtype() == out[j].dtype() &&
                   grad_out[j].device() == out[j].device(),
               name, ": gradient of output '", def.outputs[j].name, "' expected ", out[j].desc(),
               ", got ", grad_out[j].desc());
  Attrs a = resolve_attrs(def, attrs);
  GradCall call{in, out, grad_out, {}, a};
  keep_saved(def, call.in, call.out);
  for (size_t i = 0; i < in.size(); ++i) {
    bool want = need[i] && in[i].defined() && def.inputs[i].differentiable;
    call.grad_in.push_back(want ? Tensor::empty(in[i].shape(), in[i].dtype(), dev) : Tensor());
  }
  call_backward(be, call);
  return std::move(call.grad_in);
}

void expect_defined(const std::string& op, const std::string& arg, const Tensor& t) {
  SD_CHECK(t.defined(), op, ": input '", arg, "' is required");
}

void expect_ndim(const std::string& op, const std::string& arg, const Tensor& t, int ndim) {
  SD_CHECK(t.ndim() == ndim, op, ": '", arg, "' expected ", ndim, " dimensions, got ", t.desc());
}

void expect_shape(const std::string& op, const std::string& arg, const Tensor& t,
                  const Shape& shape) {
  SD_CHECK(t.shape() == shape, op, ": '", arg, "' expected shape ", shape_str(shape), ", got ",
           t.desc());
}

void expect_float(const std::string& op, const std::string& arg, const Tensor& t) {
  SD_CHECK(is_float(t.dtype()), op, ": '", arg,
           "' expected a floating-point tensor (f32, bf16, or f64 for the gradient check), got ",
           t.desc());
}

void expect_dtype(const std::string& op, const std::string& arg, const Tensor& t, DType d) {
  SD_CHECK(t.dtype() == d, op, ": '", arg, "' expected dtype ", dtype_name(d), ", got ", t.desc());
}

void expect_same_dtype(const std::string& op, const std::string& arg, const Tensor& t,
                       const Tensor& ref) {
  SD_CHECK(t.dtype() == ref.dtype(), op, ": '", arg, "' expected dtype ", dtype_name(ref.dtype()),
           " like the first input, got ", t.desc());
}

void expect_compatible_dtype(const std::string& op, const std::string& arg, const Tensor& t,
                             const Tensor& ref) {
  auto mixable = [](DType d) { return d == DType::F32 || d == DType::BF16; };
  SD_CHECK(t.dtype() == ref.dtype() || (mixable(t.dtype()) && mixable(ref.dtype())), op, ": '",
           arg, "' expected dtype ", dtype_name(ref.dtype()), " like the first input, got ",
           t.desc(), " (f32 and bf16 may mix; f64 only with f64)");
}

DType statistic_dtype(DType x) { return x == DType::BF16 ? DType::F32 : x; }

void expect_u64_attr(const std::string& op, const Attrs& attrs, const char* name) {
  const auto& v = attrs[name];
  expect_attr(op, name, v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0),
              "an integer >= 0", v);
}

void expect_attr(const std::string& op, const std::string& attr, bool ok,
                 const std::string& expected, const nlohmann::json& got) {
  SD_CHECK(ok, op, ": attribute '", attr, "' expected ", expected, ", got ", brief(got));
}

}  // namespace sd
