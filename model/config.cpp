#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "runtime/error.h"
#include "runtime/file_io.h"
#include "runtime/json_text.h"

namespace sd {

DType compute_dtype(const TrainConfig& t, Device device) {
  if (t.precision == "auto") return device == Device::CUDA ? DType::BF16 : DType::F32;
  return t.precision == "bf16" ? DType::BF16 : DType::F32;
}

int ModelConfig::input_resolution() const {
  return downsample == "dwt" ? resolution >> dwt_levels : resolution / patch_size;
}
int ModelConfig::input_channels() const {
  return downsample == "dwt" ? channels << (2 * dwt_levels) : channels * patch_size * patch_size;
}
int ModelConfig::lowest_resolution() const {
  return input_resolution() >> (int(channel_mult.size()) - 1);
}

namespace {

using nlohmann::json;

// Reads one JSON object section; remembers which keys were used so leftovers are refused.
// A number must fit its field: an integer is never truncated (2^32 + 1 is not 1), a real must
// fit a 32-bit float, the precision the kernels compute in.
class Section {
 public:
  Section(const json& j, std::string path, const std::string& source)
      : j_(j), path_(std::move(path)), source_(source) {
    SD_CHECK(j.is_object(), source_, ": '", path_, "' must be a JSON object, got ", brief(j));
  }
  template <class T>
  void get(const char* key, T& field) {
    used_.insert(key);
    if (!j_.contains(key)) return;
    const json& v = j_[key];
    bool ok;
    if constexpr (std::is_same_v<T, bool>) ok = v.is_boolean();
    else if constexpr (std::is_integral_v<T>) ok = fits<T>(v);
    else if constexpr (std::is_floating_point_v<T>) ok = fits_f32(v);
    else if constexpr (std::is_same_v<T, std::string>) ok = v.is_string();
    else if constexpr (std::is_same_v<T, std::vector<int>>) ok = v.is_array() && std::all_of(v.begin(), v.end(), fits<int>);
    else ok = v.is_array() && std::all_of(v.begin(), v.end(), fits_f32);
    SD_CHECK(ok, source_, ": key '", name(key), "' = ", brief(v), ": expected ", type_name<T>());
    field = v.get<T>();
  }
  std::string name(const char* key) const { return path_ + "." + key; }
  void finish() const {
    for (auto& [k, v] : j_.items())
      SD_CHECK(used_.count(k), source_, ": unknown key '", path_, ".", k, "' (value ", brief(v), ")");
  }

 private:
  template <class T>
  static bool fits(const json& v) {
    if (v.is_number_unsigned()) return v.get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max());
    if (!v.is_number_integer()) return false;
    int64_t x = v.get<int64_t>();
    return x >= 0 ? uint64_t(x) <= uint64_t(std::numeric_limits<T>::max())
                  : std::is_signed_v<T> && x >= int64_t(std::numeric_limits<T>::min());
  }
  static bool fits_f32(const json& v) {
    return v.is_number() && std::abs(v.get<double>()) <= std::numeric_limits<float>::max();
  }
  template <class T>
  static std::string type_name() {
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    else if constexpr (std::is_integral_v<T>)
      return "an integer in [" + std::to_string(std::numeric_limits<T>::min()) + ", " +
             std::to_string(std::numeric_limits<T>::max()) + "]";
    else if constexpr (std::is_floating_point_v<T>) return "a number that fits a 32-bit float";
    else if constexpr (std::is_same_v<T, std::string>) return "a string";
    else if constexpr (std::is_same_v<T, std::vector<int>>) return "a list of integers";
    else return "a list of numbers that fit 32-bit floats";
  }
  const json& j_;
  std::string path_;
  const std::string& source_;
  std::set<std::string> used_;
};

void require(bool ok, const std::string& source, const std::string& key, const json& value,
             const std::string& why) {
  SD_CHECK(ok, source, ": '", key, "' = ", brief(value), ": ", why);
}

// Bounds on sizes keep every shape product far from overflow; whether a model that passes them
// fits in memory is checked against the machine when it is built (tools/session.cpp).
void check_values(const Config& c, const std::string& src) {
  const ModelConfig& m = c.model;
  require(m.resolution >= 4 && m.resolution <= 4096, src, "model.resolution", m.resolution, "expected 4..4096");
  require(m.channels >= 1 && m.channels <= 4, src, "model.channels", m.channels, "expected 1..4");
  require(m.num_classes >= 0 && m.num_classes <= 1000000, src, "model.num_classes", m.num_classes, "expected 0..1000000");
  require(m.downsample == "dwt" || m.downsample == "patch", src, "model.downsample", m.downsample,
          "expected \"dwt\" or \"patch\"");
  if (m.downsample == "dwt") {
    require(m.dwt_levels >= 0 && m.dwt_levels <= 6, src, "model.dwt_levels", m.dwt_levels, "expected 0..6");
    require(m.resolution % (1 << m.dwt_levels) == 0, src, "model.resolution", m.resolution,
            "not divisible by 2^dwt_levels = " + std::to_string(1 << m.dwt_levels));
  } else {
    require(m.patch_size >= 1 && m.patch_size <= m.resolution && m.resolution % m.patch_size == 0,
            src, "model.patch_size", m.patch_size,
            "must divide model.resolution = " + std::to_string(m.resolution));
  }
  require(!m.channel_mult.empty() && m.channel_mult.size() <= 12, src, "model.channel_mult",
          m.channel_mult, "expected 1..12 levels");
  for (int x : m.channel_mult)
    require(x >= 1 && x <= 64, src, "model.channel_mult", m.channel_mult, "entries must be 1..64");
  int down = 1 << (int(m.channel_mult.size()) - 1);
  require(m.input_resolution() % down == 0, src, "model.channel_mult", m.channel_mult,
          "the input resolution after downsampling (" + std::to_string(m.input_resolution()) +
              ") is not divisible by 2^(levels-1) = " + std::to_string(down));
  require(m.base_channels >= 1 && m.base_channels <= 16384, src, "model.base_channels", m.base_channels, "expected 1..16384");
  require(m.groups >= 1, src, "model.groups", m.groups, "must be >= 1");
  for (int x : m.channel_mult)
    require((m.base_channels * x) % m.groups == 0, src, "model.groups", m.groups,
            "must divide every level's channels (" + std::to_string(m.base_channels * x) + ")");
  require(m.res_blocks >= 1 && m.res_blocks <= 64, src, "model.res_blocks", m.res_blocks, "expected 1..64");
  require(m.transformer_depth >= 0 && m.transformer_depth <= 4096, src, "model.transformer_depth",
          m.transformer_depth, "expected 0..4096");
  require(m.transformer_width >= 0 && m.transformer_width <= 65536, src, "model.transformer_width",
          m.transformer_width, "expected 0..65536 (0: the channels of the lowest level)");
  require(m.heads >= 1 && m.width() % m.heads == 0, src, "model.heads", m.heads,
          "must divide the transformer width " + std::to_string(m.width()));
  require(m.mlp_ratio >= 1 && m.mlp_ratio <= 64, src, "model.mlp_ratio", m.mlp_ratio, "expected 1..64");
  require(m.cond_dim >= 2 && m.cond_dim <= 65536 && m.cond_dim % 2 == 0, src, "model.cond_dim",
          m.cond_dim, "must be even, 2..65536");
  require(m.dropout >= 0 && m.dropout < 1, src, "model.dropout", m.dropout, "expected 0 <= p < 1");

  const DiffusionConfig& d = c.diffusion;
  require(d.schedule == "cosine" || d.schedule == "shifted" || d.schedule == "interpolated", src,
          "diffusion.schedule", d.schedule, "expected \"cosine\", \"shifted\" or \"interpolated\"");
  require(d.noise_d > 0, src, "diffusion.noise_d", d.noise_d, "must be > 0");
  require(d.logsnr_min < d.logsnr_max, src, "diffusion.logsnr_min", d.logsnr_min, "must be < logsnr_max");
  require(d.interp_low >= 1, src, "diffusion.interp_low", d.interp_low, "must be >= 1");
  for (int s : d.loss_resolutions)
    require(s >= 1 && s <= m.resolution && m.resolution % s == 0, src, "diffusion.loss_resolutions",
            d.loss_resolutions, "each must divide model.resolution = " + std::to_string(m.resolution));
  require(d.loss_weights.empty() || d.loss_weights.size() == d.loss_resolutions.size(), src,
          "diffusion.loss_weights", d.loss_weights, "needs one weight per loss resolution");
  for (double w : d.loss_weights)
    require(w >= 0, src, "diffusion.loss_weights", d.loss_weights, "weights must be >= 0");
  require(d.weighting == "eps" || d.weighting == "sigmoid", src, "diffusion.weighting", d.weighting,
          "expected \"eps\" or \"sigmoid\"");

  const TrainConfig& t = c.train;
  require(t.batch_size >= 1, src, "train.batch_size", t.batch_size, "must be >= 1");
  require(t.steps >= 1, src, "train.steps", t.steps, "must be >= 1");
  // AdamW moves every weight by about lr per step: above 1 a run diverges at once (and 1e30
  // gives huge but finite weights that no finiteness check would catch).
  require(t.lr > 0 && t.lr <= 1, src, "train.lr", t.lr, "expected 0 < lr <= 1");
  require(t.warmup >= 0, src, "train.warmup", t.warmup, "must be >= 0");
  require(t.decay == "constant" || t.decay == "cosine", src, "train.decay", t.decay,
          "expected \"constant\" or \"cosine\"");
  require(t.min_lr_ratio >= 0 && t.min_lr_ratio <= 1, src, "train.min_lr_ratio", t.min_lr_ratio, "expected 0..1");
  require(t.weight_decay >= 0, src, "train.weight_decay", t.weight_decay, "must be >= 0");
  require(t.beta1 >= 0 && t.beta1 < 1, src, "train.beta1", t.beta1, "expected a number in [0, 1)");
  require(t.beta2 >= 0 && t.beta2 < 1, src, "train.beta2", t.beta2, "expected a number in [0, 1)");
  require(t.adam_eps > 0, src, "train.adam_eps", t.adam_eps, "must be > 0");
  require(float(t.adam_eps) >= std::numeric_limits<float>::min(), src, "train.adam_eps", t.adam_eps,
          "is below the smallest normal 32-bit float (it would divide by about 0)");
  require(t.ema_decay >= 0 && t.ema_decay < 1, src, "train.ema_decay", t.ema_decay, "expected 0 <= d < 1");
  require(t.label_dropout >= 0 && t.label_dropout <= 1, src, "train.label_dropout", t.label_dropout, "expected 0..1");
  require(t.grad_accum >= 1, src, "train.grad_accum", t.grad_accum, "must be >= 1");
  require(int64_t(t.batch_size) * t.grad_accum <= 1000000, src, "train.batch_size", t.batch_size,
          "times train.grad_accum must be at most 1000000");
  require(t.grad_clip >= 0, src, "train.grad_clip", t.grad_clip, "must be >= 0");
  require(t.log_every >= 1, src, "train.log_every", t.log_every, "must be >= 1");
  require(t.sample_every >= 0, src, "train.sample_every", t.sample_every, "must be >= 0 (0: never)");
  require(t.ckpt_every >= 1, src, "train.ckpt_every", t.ckpt_every, "must be >= 1");
  require(t.dist_check_every >= 0, src, "train.dist_check_every", t.dist_check_every,
          "must be >= 0 (0: never)");
  require(t.precision == "auto" || t.precision == "f32" || t.precision == "bf16", src,
          "train.precision", t.precision, "expected \"auto\", \"f32\" or \"bf16\"");

  const SampleConfig& s = c.sample;
  require(s.steps >= 1 && s.steps <= 1000000, src, "sample.steps", s.steps, "expected 1..1000000");
  require(s.sampler == "ddpm" || s.sampler == "ddim", src, "sample.sampler", s.sampler,
          "expected \"ddpm\" or \"ddim\"");
  require(s.guidance >= 0, src, "sample.guidance", s.guidance, "must be >= 0 (1: no guidance)");
  require(s.guidance_min_logsnr <= s.guidance_max_logsnr, src, "sample.guidance_min_logsnr",
          s.guidance_min_logsnr, "must be <= sample.guidance_max_logsnr");
}

}  // namespace

Config Config::from_json(const json& j, const std::string& source) {
  Config c;
  SD_CHECK(j.is_object(), source, ": the config must be a JSON object, got ", brief(j));
  for (auto& [k, v] : j.items())
    SD_CHECK(k == "model" || k == "diffusion" || k == "train" || k == "sample", source,
             ": unknown key '", k, "' (expected model, diffusion, train, sample)");
  const json empty = json::object();
  auto sec = [&](const char* k) -> const json& { return j.contains(k) ? j[k] : empty; };

  ModelConfig& m = c.model;
  Section sm(sec("model"), "model", source);
  sm.get("resolution", m.resolution); sm.get("channels", m.channels);
  sm.get("num_classes", m.num_classes); sm.get("downsample", m.downsample);
  sm.get("dwt_levels", m.dwt_levels); sm.get("patch_size", m.patch_size);
  sm.get("base_channels", m.base_channels); sm.get("channel_mult", m.channel_mult);
  sm.get("res_blocks", m.res_blocks); sm.get("groups", m.groups);
  sm.get("transformer_depth", m.transformer_depth); sm.get("transformer_width", m.transformer_width);
  sm.get("heads", m.heads); sm.get("mlp_ratio", m.mlp_ratio); sm.get("cond_dim", m.cond_dim);
  sm.get("dropout", m.dropout); sm.get("dropout_max_resolution", m.dropout_max_resolution);
  sm.finish();

  DiffusionConfig& d = c.diffusion;
  Section sd_(sec("diffusion"), "diffusion", source);
  sd_.get("schedule", d.schedule); sd_.get("noise_d", d.noise_d);
  sd_.get("logsnr_min", d.logsnr_min); sd_.get("logsnr_max", d.logsnr_max);
  sd_.get("interp_low", d.interp_low); sd_.get("loss_resolutions", d.loss_resolutions);
  sd_.get("loss_weights", d.loss_weights); sd_.get("weighting", d.weighting);
  sd_.get("sigmoid_bias", d.sigmoid_bias); sd_.get("stratified_t", d.stratified_t);
  sd_.finish();

  TrainConfig& t = c.train;
  Section st(sec("train"), "train", source);
  st.get("data", t.data); st.get("batch_size", t.batch_size); st.get("steps", t.steps);
  st.get("lr", t.lr); st.get("warmup", t.warmup); st.get("decay", t.decay);
  st.get("min_lr_ratio", t.min_lr_ratio); st.get("weight_decay", t.weight_decay);
  st.get("beta1", t.beta1); st.get("beta2", t.beta2); st.get("adam_eps", t.adam_eps);
  st.get("grad_clip", t.grad_clip); st.get("ema_decay", t.ema_decay);
  st.get("label_dropout", t.label_dropout); st.get("grad_accum", t.grad_accum);
  st.get("seed", t.seed); st.get("flip", t.flip); st.get("log_every", t.log_every);
  st.get("sample_every", t.sample_every); st.get("ckpt_every", t.ckpt_every);
  st.get("dist_check_every", t.dist_check_every); st.get("precision", t.precision);
  st.finish();

  SampleConfig& s = c.sample;
  Section ss(sec("sample"), "sample", source);
  ss.get("steps", s.steps); ss.get("sampler", s.sampler); ss.get("guidance", s.guidance);
  ss.get("guidance_min_logsnr", s.guidance_min_logsnr);
  ss.get("guidance_max_logsnr", s.guidance_max_logsnr); ss.get("clip_x", s.clip_x);
  ss.finish();

  check_values(c, source);
  return c;
}

void Config::validate(const std::string& source) const { check_values(*this, source); }

json Config::to_json() const {
  const ModelConfig& m = model;
  const DiffusionConfig& d = diffusion;
  const TrainConfig& t = train;
  const SampleConfig& s = sample;
  return {
      {"model", {{"resolution", m.resolution}, {"channels", m.channels}, {"num_classes", m.num_classes},
                 {"downsample", m.downsample}, {"dwt_levels", m.dwt_levels}, {"patch_size", m.patch_size},
                 {"base_channels", m.base_channels}, {"channel_mult", m.channel_mult},
                 {"res_blocks", m.res_blocks}, {"groups", m.groups},
                 {"transformer_depth", m.transformer_depth}, {"transformer_width", m.transformer_width},
                 {"heads", m.heads}, {"mlp_ratio", m.mlp_ratio}, {"cond_dim", m.cond_dim},
                 {"dropout", m.dropout}, {"dropout_max_resolution", m.dropout_max_resolution}}},
      {"diffusion", {{"schedule", d.schedule}, {"noise_d", d.noise_d}, {"logsnr_min", d.logsnr_min},
                     {"logsnr_max", d.logsnr_max}, {"interp_low", d.interp_low},
                     {"loss_resolutions", d.loss_resolutions}, {"loss_weights", d.loss_weights},
                     {"weighting", d.weighting}, {"sigmoid_bias", d.sigmoid_bias},
                     {"stratified_t", d.stratified_t}}},
      {"train", {{"data", t.data}, {"batch_size", t.batch_size}, {"steps", t.steps}, {"lr", t.lr},
                 {"warmup", t.warmup}, {"decay", t.decay}, {"min_lr_ratio", t.min_lr_ratio},
                 {"weight_decay", t.weight_decay}, {"beta1", t.beta1}, {"beta2", t.beta2},
                 {"adam_eps", t.adam_eps}, {"grad_clip", t.grad_clip}, {"ema_decay", t.ema_decay},
                 {"label_dropout", t.label_dropout}, {"grad_accum", t.grad_accum}, {"seed", t.seed},
                 {"flip", t.flip}, {"log_every", t.log_every}, {"sample_every", t.sample_every},
                 {"ckpt_every", t.ckpt_every}, {"dist_check_every", t.dist_check_every},
                 {"precision", t.precision}}},
      {"sample", {{"steps", s.steps}, {"sampler", s.sampler}, {"guidance", s.guidance},
                  {"guidance_min_logsnr", s.guidance_min_logsnr},
                  {"guidance_max_logsnr", s.guidance_max_logsnr}, {"clip_x", s.clip_x}}}};
}

Config Config::load(const std::string& path) {
  return from_json(parse_json(read_regular_file(path, "config file", kMaxConfigBytes), path), path);
}

std::vector<ConfigChange> Config::changes(const Config& from, const Config& to) {
  std::vector<ConfigChange> out;
  json a = from.to_json(), b = to.to_json();
  for (auto& [section, keys] : a.items())
    for (auto& [key, value] : keys.items())
      if (b[section][key] != value) out.push_back({section + "." + key, value, b[section][key]});
  return out;
}
}  // namespace sd
