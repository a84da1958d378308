#include "tools/data/dataset.h"

#include <charconv>

#include "tools/data/shapes.h"

namespace sd {

void Dataset::get(int64_t index, float* chw_out, int32_t* label) const {
  SD_CHECK(index >= 0 && index < size(), "Dataset::get: index ", index, " out of range [0, ",
           size(), ")");
  get_unchecked(index, chw_out, label);
}

void check_open_args(const char* kind, int resolution, int channels) {
  SD_CHECK(resolution > 0, kind, ": resolution must be positive, got ", resolution);
  SD_CHECK(channels == 0 || channels == 1 || channels == 3, kind,
           ": channels must be 0 (dataset's own), 1 or 3, got ", channels);
}

namespace {

// "DIR", "DIR:train" or "DIR:test" -> (DIR, split).
std::pair<std::string, Split> split_suffix(std::string arg) {
  Split split = Split::Default;
  if (arg.ends_with(":train")) {
    split = Split::Train;
    arg.resize(arg.size() - 6);
  } else if (arg.ends_with(":test")) {
    split = Split::Test;
    arg.resize(arg.size() - 5);
  }
  return {arg, split};
}

int64_t parse_count(const std::string& spec, const std::string& text) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  SD_CHECK(ec == std::errc() && end == text.data() + text.size() && n > 0, "dataset spec '", spec,
           "': expected a positive image count after 'shapes:', got '", text, "'");
  return n;
}

}  // namespace

std::unique_ptr<Dataset> open_dataset(const std::string& spec, int resolution, int channels) {
  check_open_args(spec.c_str(), resolution, channels);
  size_t colon = spec.find(':');
  std::string kind = spec.substr(0, colon);
  std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  bool has_arg = colon != std::string::npos;
  SD_CHECK(kind == "shapes" || (has_arg && !arg.empty()), "dataset spec '", spec, "': '", kind,
           "' needs a directory, e.g. '", kind, ":/data/", kind, "'");

  if (kind == "shapes") {
    int64_t n = has_arg ? parse_count(spec, arg) : ShapesDataset::kDefaultCount;
    return std::make_unique<ShapesDataset>(n, resolution, channels == 0 ? 3 : channels);
  }
  if (kind == "mnist") {
    auto [dir, split] = split_suffix(arg);
    return open_mnist(dir, split, resolution, channels);
  }
  if (kind == "cifar10") {
    auto [dir, split] = split_suffix(arg);
    return open_cifar10(dir, split, resolution, channels);
  }
  if (kind == "folder") return open_folder(arg, resolution, channels);
  fail("dataset spec '", spec, "': unknown kind '", kind,
       "' (expected shapes[:N], mnist:DIR, cifar10:DIR or folder:DIR)");
}

}  // namespace sd
