#include "model/checkpoint.h"

#include "runtime/safetensors.h"

namespace sd {

namespace {
constexpr const char* kFormat = "simdiff-checkpoint-1";

void add_arena(std::map<std::string, Tensor>& out, const ParamStore& ps, const Tensor& arena,
               const std::string& prefix) {
  for (auto& [name, t] : ps.views(arena)) out[prefix + name] = t;
}
}  // namespace

void save_checkpoint(const std::string& path, const Config& cfg, const ParamStore& ps,
                     const TrainState& st) {
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
  SD_CHECK(meta("format") == kFormat, path, ": unsupported checkpoint format '", meta("format"),
           "' (expected ", kFormat, ")");
  LoadedCheckpoint ck;
  nlohmann::json cj;
  try {
    cj = nlohmann::json::parse(meta("config"));
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, ": the config in the metadata is not valid JSON: ", e.what());
  }
  ck.config = Config::from_json(cj, path + " (config metadata)");
  try {
    ck.step = std::stoll(meta("step"));
    ck.seed = std::stoull(meta("seed"));
  } catch (const std::logic_error&) {
    fail(path, ": metadata 'step'/'seed' are not integers (got '", meta("step"), "', '",
         meta("seed"), "')");
  }
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
  st.step = ck.step;
  st.seed = ck.seed;
}

}  // namespace sd
