#include "tools/data/dataset.h"

#include <charconv>
#include <filesystem>

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

// The loader keeps a permutation of the images (8 bytes each): 10^8 images is 800 MB of it.
constexpr int64_t kMaxShapes = 100'000'000;

int64_t parse_count(const std::string& spec, const std::string& text) {
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  SD_CHECK(ec == std::errc() && end == text.data() + text.size() && n > 0 && n <= kMaxShapes,
           "dataset spec '", spec, "': expected an image count of 1..", kMaxShapes,
           " after 'shapes:', got '", text, "'");
  return n;
}

// kind, then the directory made absolute and normalised, then the split: equal for two
// spellings of the same data.
std::string canonical_spec(const std::string& spec) {
  size_t colon = spec.find(':');
  std::string kind = spec.substr(0, colon);
  if (kind == "shapes")
    return colon == std::string::npos ? "shapes:" + std::to_string(ShapesDataset::kDefaultCount)
                                      : spec;
  if (colon == std::string::npos) return spec;
  auto [dir, split] = kind == "folder" ? std::pair{spec.substr(colon + 1), Split::Default}
                                       : split_suffix(spec.substr(colon + 1));
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(dir, ec);
  if (!ec) p = std::filesystem::weakly_canonical(p, ec);
  if (!p.has_filename()) p = p.parent_path();  // "data/" is "data"
  return kind + ":" + (ec ? dir : p.string()) + ":" + std::to_string(int(split));
}

}  // namespace

bool same_dataset(const std::string& a, const std::string& b) {
  return canonical_spec(a) == canonical_spec(b);
}

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
