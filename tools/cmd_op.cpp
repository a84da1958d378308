// simdiff op: runs one registered op on tensors from a safetensors file and writes its outputs
// (and, given output gradients, the input gradients) to another. It checks a kernel against an
// outside reference (PyTorch, NumPy) and reproduces a failing call in isolation.
#include <iostream>
#include <nlohmann/json.hpp>

#include "kernels/registry.h"
#include "runtime/file_io.h"
#include "runtime/json_text.h"
#include "runtime/safetensors.h"
#include "tools/cli.h"
#include "tools/op_reference.h"

namespace sd::cli {
namespace {

const Command kOpCommand{
    "simdiff op",
    "NAME",
    1,
    "Runs the registered op NAME forward on tensors read from --inputs (named as the op's inputs)\n"
    "and writes its outputs under their names to --out. With --grad-outputs (gradients named as\n"
    "the outputs; absent ones count as zero) it also runs the backward and writes grad.<input>\n"
    "for each differentiable input. F32 in, F32 out; F64 inputs run on the cpu.",
    {
        {"inputs", "FILE", "", "safetensors file with the op's inputs"},
        {"attrs", "JSON", "{}", "attributes as a JSON object"},
        {"grad-outputs", "FILE", "", "safetensors file with gradients of the outputs"},
        {"out", "FILE", "", "safetensors file to write"},
        {"device", "cpu|cuda", "cpu", "where to run"},
        {"list", "", "", "print every op's description as JSON"},
        {"markdown", "", "", "with --list: print the op reference (docs/ops.md) as Markdown"},
        {"describe", "NAME", "", "print one op's inputs, attributes and outputs"},
    },
    "examples:\n"
    "  simdiff op --list\n"
    "  simdiff op --list --markdown > docs/ops.md\n"
    "  simdiff op silu --help\n"
    "  simdiff op scale --inputs x.safetensors --attrs '{\"s\": 2}' --out y.safetensors\n"
    "  simdiff op silu --inputs x.safetensors --grad-outputs g.safetensors --out y.safetensors"};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s.empty() ? "none" : s;
}

std::string describe_op(const OpDef& d) {
  std::string s = d.name + ": " + d.doc + "\nbackends: cpu";
  if (d.cuda.forward) s += ", cuda";
  if (!d.differentiable()) s += " (no backward)";
  auto row = [](const std::string& name, const std::string& doc, const std::string& notes) {
    std::string line = "  " + name;
    line.resize(std::max<size_t>(line.size() + 2, 16), ' ');
    line += doc + notes;
    line.erase(line.find_last_not_of(' ') + 1);
    return line + "\n";
  };
  s += "\ninputs:\n";
  if (d.inputs.empty()) s += "  none\n";
  for (auto& i : d.inputs)
    s += row(i.name, i.doc, std::string(i.optional ? " (optional)" : "") +
                                (i.differentiable ? "" : " (not differentiable)"));
  s += "attributes:\n";
  if (d.attrs.empty()) s += "  none\n";
  for (auto& a : d.attrs)
    s += row(a.name, a.doc, a.default_value.is_null()
                                ? " (required)"
                                : " (default: " + a.default_value.dump() + ")");
  s += "outputs:\n";
  for (auto& o : d.outputs)
    s += row(o.name, o.doc, o.differentiable ? "" : " (not differentiable)");
  return s;
}

const OpDef& find_op(const std::string& name) {
  const Registry& reg = Registry::get();
  if (const OpDef* d = reg.find(name)) return *d;
  std::vector<std::string> names;
  for (auto* d : reg.all()) names.push_back(d->name);
  throw UsageError("unknown op '" + name + "' (known ops: " + join(names) + ")");
}

std::string input_names(const OpDef& d) {
  std::vector<std::string> v;
  for (auto& i : d.inputs) v.push_back(i.name + (i.optional ? " (optional)" : ""));
  return join(v);
}

// Inputs in OpDef order, on `dev`; every tensor in the file must be one of them.
std::vector<Tensor> read_inputs(const OpDef& def, const Args& a, Device dev) {
  if (def.inputs.empty()) {
    if (a.has("inputs"))
      throw UsageError("op '" + def.name + "' takes no inputs; drop --inputs");
    return {};
  }
  if (!a.has("inputs"))
    throw UsageError("op '" + def.name + "' takes inputs " + input_names(def) +
                     ": pass them in a safetensors file with --inputs FILE");
  const std::string& path = a.get("inputs");
  SafeTensors st = load_safetensors(path);
  std::vector<std::string> found;
  for (auto& [name, t] : st.tensors) {
    found.push_back(name);
    bool known = false;
    for (auto& i : def.inputs) known |= i.name == name;
    if (!known)
      fail(path, ": tensor '", name, "' is not an input of op '", def.name,
           "' (expected: ", input_names(def), ")");
  }
  std::vector<Tensor> in;
  for (auto& spec : def.inputs) {
    auto it = st.tensors.find(spec.name);
    if (it == st.tensors.end()) {
      if (!spec.optional)
        fail(path, ": missing input '", spec.name, "' of op '", def.name,
             "' (expected: ", input_names(def), "; found: ", join(found), ")");
      in.emplace_back();
      continue;
    }
    const Tensor& t = it->second;
    if (dev == Device::CUDA && t.dtype() == DType::F64)
      fail(path, ": input '", spec.name, "' is ", t.desc(), "; the cuda backend computes in F32 ",
           "(F64 runs with --device cpu)");
    in.push_back(t.to(dev));
  }
  return in;
}

// Output gradients in OpDef order; an absent one is zero for a differentiable output and
// undefined for a saved statistic.
std::vector<Tensor> read_grad_outputs(const OpDef& def, const std::string& path,
                                      const std::vector<Tensor>& out, Device dev) {
  SafeTensors st = load_safetensors(path);
  std::vector<std::string> names;
  for (auto& o : def.outputs)
    if (o.differentiable) names.push_back(o.name);
  for (auto& [name, t] : st.tensors) {
    bool known = false;
    for (auto& n : names) known |= n == name;
    if (!known)
      fail(path, ": tensor '", name, "' is not a differentiable output of op '", def.name,
           "' (expected: ", join(names), ")");
  }
  std::vector<Tensor> g;
  for (size_t j = 0; j < def.outputs.size(); ++j) {
    auto it = st.tensors.find(def.outputs[j].name);
    if (it != st.tensors.end()) g.push_back(it->second.to(dev));
    else if (def.outputs[j].differentiable)
      g.push_back(Tensor::zeros(out[j].shape(), out[j].dtype(), dev));
    else g.emplace_back();
  }
  return g;
}

int run_op(const OpDef& def, const Args& a) {
  const std::string& dname = a.get("device");
  if (dname != "cpu" && dname != "cuda")
    throw UsageError("option --device expected cpu or cuda, got '" + dname + "'");
  Device dev = device_from_name(dname);
  SD_CHECK(dev == Device::CPU || cuda_available(),
           "--device cuda: no CUDA device (this build has no CUDA backend, or no GPU is visible)");
  if (!a.has("out"))
    throw UsageError("'simdiff op " + def.name + "' needs --out FILE; see simdiff op " + def.name +
                     " --help");
  Attrs attrs;
  try {
    attrs = parse_json(a.get("attrs"), "option --attrs");
  } catch (const Error& e) {
    throw UsageError(std::string(e.what()) + " (expected an object such as '{\"s\": 2}')");
  }
  Attrs resolved = resolve_attrs(def, attrs);
  check_output_path(a.get("out"), "--out");

  std::vector<Tensor> in = read_inputs(def, a, dev);
  std::vector<Tensor> out = def.inputs.empty() ? run_forward_on(dev, def.name, resolved)
                                               : run_forward(def.name, in, resolved);
  std::map<std::string, Tensor> result;
  for (size_t j = 0; j < out.size(); ++j) result[def.outputs[j].name] = out[j];

  if (a.has("grad-outputs")) {
    SD_CHECK(def.differentiable(), "op '", def.name, "' has no backward; drop --grad-outputs");
    std::vector<Tensor> g = read_grad_outputs(def, a.get("grad-outputs"), out, dev);
    std::vector<bool> need;
    for (size_t i = 0; i < in.size(); ++i)
      need.push_back(in[i].defined() && def.inputs[i].differentiable);
    std::vector<Tensor> grads = run_backward(def.name, in, out, g, need, resolved);
    for (size_t i = 0; i < grads.size(); ++i)
      if (grads[i].defined()) result["grad." + def.inputs[i].name] = grads[i];
  }
  save_safetensors(a.get("out"), result,
                   {{"op", def.name}, {"attrs", resolved.dump()}, {"device", dname}});
  return 0;
}

}  // namespace

int cmd_op(int argc, char** argv) {
  Args a = parse(kOpCommand, argc, argv);
  const Registry& reg = Registry::get();
  if (a.flag("markdown") && !a.flag("list"))
    throw UsageError("--markdown goes with --list (simdiff op --list --markdown)");
  if (a.flag("list")) {
    std::cout << (a.flag("markdown") ? op_reference_markdown() : reg.describe().dump(2) + "\n");
    return 0;
  }
  if (a.has("describe")) {
    std::cout << describe_op(find_op(a.get("describe")));
    return 0;
  }
  if (a.positional.empty()) {
    if (a.help) {
      std::vector<std::string> names;
      for (auto* d : reg.all()) names.push_back(d->name);
      std::cout << help_text(kOpCommand) << "\nops: " << join(names) << "\n";
      return 0;
    }
    throw UsageError("'simdiff op' needs an op NAME (simdiff op --list shows them)");
  }
  const OpDef& def = find_op(a.positional[0]);
  if (a.help) {
    std::cout << describe_op(def) << "\nrun: simdiff op " << def.name
              << " --inputs FILE [--attrs JSON] [--grad-outputs FILE] --out FILE"
                 " [--device cpu|cuda]\n";
    return 0;
  }
  return run_op(def, a);
}

}  // namespace sd::cli
