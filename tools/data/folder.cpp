// ImageFolder layout: DIR/<class>/<image>. Classes are the subfolders sorted by name (label =
// position), files are sorted too, so labels and indices do not depend on directory order.
// Images are decoded on demand in get(), so memory stays flat however large the folder is.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <vector>

#include "tools/data/dataset.h"
#include "tools/data/pixels.h"
#include "tools/image_io.h"

namespace sd {
namespace {

namespace fs = std::filesystem;

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) fail("folder: cannot list '", dir.string(), "': ", ec.message());
  std::vector<fs::path> v;
  for (const fs::directory_entry& e : it) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

class FolderDataset : public Dataset {
 public:
  FolderDataset(const std::string& dir, int res, int ch) : res_(res), channels_(ch == 0 ? 3 : ch) {
    SD_CHECK(fs::is_directory(dir), "folder: directory '", dir, "' does not exist");
    for (const fs::path& sub : sorted_entries(dir)) {
      // Hidden folders (.git, .ipynb_checkpoints) are tool debris, not classes.
      if (!fs::is_directory(sub) || sub.filename().string().starts_with('.')) continue;
      int32_t label = int32_t(names_.size());
      size_t before = files_.size();
      for (const fs::path& f : sorted_entries(sub))
        if (fs::is_regular_file(f) && is_image_file(f)) files_.push_back({f.string(), label});
      SD_CHECK(files_.size() > before, "folder: class folder '", sub.string(),
               "' holds no .png/.jpg/.jpeg/.bmp files");
      names_.push_back(sub.filename().string());
    }
    SD_CHECK(!names_.empty(), "folder: '", dir,
             "' has no class subfolders (expected DIR/<class>/<image>.png)");
  }

  int64_t size() const override { return int64_t(files_.size()); }
  int channels() const override { return channels_; }
  int resolution() const override { return res_; }
  std::vector<std::string> class_names() const override { return names_; }

 protected:
  void get_unchecked(int64_t i, float* out, int32_t* label) const override {
    const Item& item = files_[size_t(i)];
    Image8 img = read_image(item.path, channels_);  // stb converts grey/RGB/alpha for us
    // u8_to_model wants planar channels; stb gives interleaved ones.
    size_t plane = size_t(img.width) * img.height;
    std::vector<uint8_t> planar(plane * channels_);
    for (size_t p = 0; p < plane; ++p)
      for (int c = 0; c < channels_; ++c) planar[c * plane + p] = img.pixels[p * channels_ + c];
    u8_to_model(planar.data(), channels_, img.height, img.width, res_, channels_, out);
    *label = item.label;
  }

 private:
  struct Item {
    std::string path;
    int32_t label;
  };
  std::vector<Item> files_;
  std::vector<std::string> names_;
  int res_, channels_;
};

}  // namespace

std::unique_ptr<Dataset> open_folder(const std::string& dir, int resolution, int channels) {
  check_open_args("folder", resolution, channels);
  return std::make_unique<FolderDataset>(dir, resolution, channels);
}

}  // namespace sd
