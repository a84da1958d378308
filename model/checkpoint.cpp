#include "model/checkpoint.h"

#include <charconv>
#include <cmath>

#include "kernels/registry.h"
#include "runtime/json_text.h"
#include "runtime/safetensors.h"

namespace sd {

namespace {
constexpr const char* kFormat = "simdiff-checkpoint-1";

void add_arena(std::map<std::string, Tensor>& out, const ParamStore& ps, const Tensor& arena,
               const std::string& prefix) {
  for (auto& [name, t] : ps.views(arena)) out[prefix + name] = t;
}

// A metadata integer parsed whole: "12abc", " 7", "" and, for the unsigned seed, "-1" are refused.
template <class T>
T meta_int(const std::string& path, const char* key, const std::string& text) {
  T v{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  SD_CHECK(!text.empty() && ec == std::errc() && end == text.data() + text.size() && v >= 0, path,
           ": metadata '", key, "' expected an integer >= 0, got ", brief(text));
  return v;
}

// The first parameter of `arena` that holds a non-finite value, as "'ema.embed.w'"; empty when
// all are finite. The norm (grad_norm, on the arena's device) is finite when every value is, so
// the host scan runs only when something is wrong (or the norm itself overflowed f32).
std::string first_non_finite(const ParamStore& ps, const Tensor& arena, const std::string& prefix) {
  if (std::isfinite(run_forward("grad_norm", {arena})[0].item())) return "";
  for (auto& [name, view] : ps.views(arena))
    for (float v : view.to_floats())
      if (!std::isfinite(v)) return "'" + prefix + name + "'";
  return "";
}
}  // namespace

std::string non_finite_state(const ParamStore& ps, const TrainState& st) {
  for (auto [arena, prefix] : {std::pair{&ps.values(), "params."}, {&st.ema, "ema."},
                               {&st.adam_m, "adam_m."}, {&st.adam_v, "adam_v."}})
    if (std::string bad = first_non_finite(ps, *arena, prefix); !bad.empty()) return bad;
  return "";
}

void save_checkpoint(const std::string& path, const Config& cfg, const ParamStore& ps,
                     const TrainState& st) {
  std::string bad = non_finite_state(ps, st);
  SD_CHECK(bad.empty(), path, ": refusing to write the checkpoint of step ", st.step, ": ", bad,
           " holds values that are not finite; the file on disk is left as it was");
  std::map<std::string, Tensor> t;
  add_arena(t, ps, ps.values(), "params.");
  add_arena(t, ps, st.ema, "ema.");
  add_arena(t, ps, st.adam_m, "adam_m.");
  add_arena(t, ps, st.adam_v, "adam_v.");
  save_safetensors(path, t,
                   {{"format", kFormat},
                    {"config", cfg.to_json().dump()},
                    {"step", std::to_string(st.step)},
                    {"seed", std::to_string(st.seed)},
                    {"parameters", std::to_string(ps.count())}});
}

LoadedCheckpoint read_checkpoint(const std::string& path) {
  SafeTensors f = load_safetensors(path);
  auto meta = [&](const char* key) -> const std::string& {
    auto it = f.metadata.find(key);
    SD_CHECK(it != f.metadata.end(), path, ": not a simdiff checkpoint (metadata key '", key,
             "' is missing)");
    return it->second;
  };
  SD_CHECK(meta("format") == kFormat, path, ": unsupported checkpoint format ",
           brief(meta("format")), " (expected ", kFormat, ")");
  LoadedCheckpoint ck;
  const std::string source = path + " (config metadata)";
  ck.config = Config::from_json(parse_json(meta("config"), source), source);
  ck.step = meta_int<int64_t>(path, "step", meta("step"));
  ck.seed = meta_int<uint64_t>(path, "seed", meta("seed"));
  ck.tensors = std::move(f.tensors);
  return ck;
}

void load_weights(const LoadedCheckpoint& ck, const ParamStore& ps, const std::string& prefix,
                  const std::string& path) {
  ps.load_views(ps.values(), ck.tensors, prefix, path);
}

void load_train_state(const LoadedCheckpoint& ck, ParamStore& ps, TrainState& st,
                      const std::string& path) {
  ps.load_views(ps.values(), ck.tensors, "params.", path);
  ps.load_views(st.ema, ck.tensors, "ema.", path);
  ps.load_views(st.adam_m, ck.tensors, "adam_m.", path);
  ps.load_views(st.adam_v, ck.tensors, "adam_v.", path);
  // A negative second moment would turn the next update's sqrt(v) into NaN.
  for (auto& [name, view] : ps.views(st.adam_v))
    for (float v : view.to_floats())
      SD_CHECK(v >= 0, path, ": tensor 'adam_v.", name, "' holds a negative value (", v,
               "); AdamW's second moment is a mean of squares");
  st.step = ck.step;
  st.seed = ck.seed;
}

}  // namespace sd
