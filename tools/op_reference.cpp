#include "tools/op_reference.h"

#include <map>
#include <vector>

#include "kernels/families.h"
#include "kernels/registry.h"

namespace sd {

#define SD_DECLARE(F) void register_##F##_ops(Registry&);
SD_OP_FAMILIES(SD_DECLARE)
#undef SD_DECLARE

namespace {

// Op name -> family, found by registering each family alone into a scratch table (the OpDef
// does not record where it was defined; the family's file does).
std::map<std::string, std::string> families() {
  std::map<std::string, std::string> m;
#define SD_FAMILY(F)                                   \
  {                                                    \
    Registry scratch;                                  \
    register_##F##_ops(scratch);                       \
    for (const OpDef* d : scratch.all()) m[d->name] = #F; \
  }
  SD_OP_FAMILIES(SD_FAMILY)
#undef SD_FAMILY
  return m;
}

std::vector<std::string> family_order() {
  std::vector<std::string> v;
#define SD_NAME(F) v.push_back(#F);
  SD_OP_FAMILIES(SD_NAME)
#undef SD_NAME
  return v;
}

// Table cells: no raw pipes or line breaks.
std::string cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out;
}

// A doc string's description and its PyTorch note (the sentences from the first one that
// starts with "PyTorch"), if any.
std::pair<std::string, std::string> split_doc(const std::string& doc) {
  size_t at = doc.rfind("PyTorch", 0) == 0 ? 0 : doc.find(". PyTorch");
  if (at == std::string::npos) return {doc, ""};
  if (at == 0) return {"", doc};
  return {doc.substr(0, at + 1), doc.substr(at + 2)};
}

std::string family_link(const std::string& f) { return "[" + f + "](../kernels/cpu/" + f + ".cpp)"; }

std::string op_section(const OpDef& d, const std::string& family) {
  auto [what, torch] = split_doc(d.doc);
  std::string s = "### `" + d.name + "`\n\n";
  if (!what.empty()) s += what + "\n\n";
  if (!torch.empty()) s += torch + "\n\n";
  s += "Family " + family_link(family) + "; " +
       (d.differentiable() ? "differentiable (hand-written backward, gradient-checked)"
                           : "not differentiable (forward only)") +
       ".\n\n";
  if (!d.inputs.empty()) {
    s += "| input | shape, meaning | |\n|---|---|---|\n";
    for (const InputSpec& i : d.inputs) {
      std::string notes = i.optional ? "optional" : "";
      if (!i.differentiable) notes += std::string(notes.empty() ? "" : ", ") + "no gradient";
      s += "| `" + i.name + "` | " + cell(i.doc) + " | " + notes + " |\n";
    }
    s += "\n";
  }
  if (!d.attrs.empty()) {
    s += "| attribute | default | meaning |\n|---|---|---|\n";
    for (const AttrSpec& a : d.attrs)
      s += "| `" + a.name + "` | " +
           (a.default_value.is_null() ? "required" : "`" + cell(a.default_value.dump()) + "`") +
           " | " + cell(a.doc) + " |\n";
    s += "\n";
  }
  s += "| output | shape, meaning | |\n|---|---|---|\n";
  for (const OutputSpec& o : d.outputs)
    s += "| `" + o.name + "` | " + cell(o.doc) + " | " +
         (o.differentiable || !d.differentiable() ? "" : "saved for the backward, no gradient") +
         " |\n";
  if (d.differentiable()) {
    std::vector<std::string> kept = saved_names(d);
    std::string list;
    for (auto& n : kept) list += (list.empty() ? "`" : ", `") + n + "`";
    s += "\nKept for the backward (OpDef::saved): " +
         (kept.empty() ? std::string("shapes and dtypes only") : list) +
         (kept.size() == d.inputs.size() + d.outputs.size() || kept.empty()
              ? ""
              : "; of the others only shapes and dtypes") +
         ".\n";
  }
  return s + "\n";
}

}  // namespace

std::string op_reference_markdown() {
  const Registry& reg = Registry::get();
  std::map<std::string, std::string> fam = families();
  std::string s =
      "# Op reference\n\n"
      "<!-- Generated from the op registry by `simdiff op --list --markdown`; do not edit by hand.\n"
      "     tests/test_docs.cpp fails when this file differs from the registry. Regenerate with\n"
      "     " + std::string(kOpReferenceCommand) + " -->\n\n"
      "Every computation simdiff runs is one op of the registry (kernels/registry.h): the model\n"
      "is written in them (autograd/ops.h), `simdiff op NAME` runs one on tensors from a\n"
      "safetensors file, and the gradient-check and CUDA-parity loops test every one. The text\n"
      "below is the OpDefs' own (kernels/cpu/<family>.cpp, where each op's CPU reference and\n"
      "backward live; the backward math is written out in docs/backward.md).\n\n"
      "Conventions: images are NCHW, tokens [B, N, C], attention heads [B, H, N, D]; tensors\n"
      "are f32 or bf16 (mixed precision: the dtype rule in kernels/registry.h), f64 on the CPU\n"
      "for the gradient check.\n"
      "An attribute without a default must be given. Saved statistics (a norm's mean and rstd,\n"
      "attention's log-sum-exp) are outputs that the backward reads; no gradient flows into them.\n\n";

  s += "## PyTorch equivalents, and where the conventions differ\n\n| op | PyTorch |\n|---|---|\n";
  for (const OpDef* d : reg.all())
    if (auto torch = split_doc(d->doc).second; !torch.empty()) {
      if (torch.rfind("PyTorch: ", 0) == 0) torch.erase(0, 9);
      s += "| [`" + d->name + "`](#" + d->name + ") | " + cell(torch) + " |\n";
    }
  s += "\n## Index\n\n| op | family | backward | what |\n|---|---|---|---|\n";
  for (const OpDef* d : reg.all()) {
    std::string what = split_doc(d->doc).first;
    if (size_t end = what.find(". "); end != std::string::npos) what.resize(end + 1);  // 1st sentence
    s += "| [`" + d->name + "`](#" + d->name + ") | " + family_link(fam.at(d->name)) + " | " +
         (d->differentiable() ? "yes" : "no") + " | " + cell(what) + " |\n";
  }
  s += "\n";
  for (const std::string& f : family_order()) {
    s += "## " + f + "\n\n";
    for (const OpDef* d : reg.all())
      if (fam.at(d->name) == f) s += op_section(*d, f);
  }
  // One trailing newline, as editors save files.
  while (s.size() > 1 && s[s.size() - 1] == '\n' && s[s.size() - 2] == '\n') s.pop_back();
  return s;
}

}  // namespace sd
