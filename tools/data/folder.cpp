// ImageFolder layout: DIR/<class>/<image>. Classes are the subfolders sorted by name (label =
// position), files are sorted too, so labels and indices do not depend on directory order.
// Images are decoded on demand in get(), so memory stays flat however large the folder is.
//
// Transparency: an image with alpha (an RGBA or grey + alpha PNG, a palette with transparent
// entries, a 32-bit BMP) is composited onto a solid background, white unless the spec says
// otherwise (folder:DIR:bg=black, folder:DIR:bg=R,G,B with 0..255 each): out = a c + (1 - a) bg
// per channel in 8-bit sRGB values, as PIL's paste onto Image.new("RGB", size, "white") does.
// Dropping alpha instead would show whatever colour the file stores under transparent pixels.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "tools/data/dataset.h"
#include "tools/data/pixels.h"
#include "tools/dist/comm.h"
#include "tools/image_io.h"

namespace sd {
namespace {

namespace fs = std::filesystem;

std::string lower_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}

bool is_image_file(const fs::path& p) {
  std::string ext = lower_extension(p);
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

struct Background {
  uint8_t rgb[3] = {255, 255, 255};
  std::string name = "white";
};

// "white", "black" or "R,G,B" (integers 0..255).
Background parse_background(const std::string& spec, const std::string& text) {
  Background bg;
  bg.name = text;
  if (text == "white") return bg;
  if (text == "black") {
    std::fill(bg.rgb, bg.rgb + 3, uint8_t(0));
    return bg;
  }
  const char* p = text.data();
  const char* end = p + text.size();
  for (int c = 0; c < 3; ++c) {
    int v = -1;
    auto [next, ec] = std::from_chars(p, end, v);
    bool sep_ok = c < 2 ? next < end && *next == ',' : next == end;
    SD_CHECK(ec == std::errc() && v >= 0 && v <= 255 && sep_ok, "dataset spec '", spec,
             "': bg= expected white, black or R,G,B with integers 0..255, got '", text, "'");
    bg.rgb[c] = uint8_t(v);
    p = next + 1;
  }
  return bg;
}

class FolderDataset : public Dataset {
 public:
  FolderDataset(const std::string& dir, const Background& bg, int res, int ch)
      : bg_(bg), res_(res), channels_(ch == 0 ? 3 : ch) {
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
    // Alpha is counted from the headers (JPEG has none, so only PNG and BMP are opened): the
    // count is said once, and an unreadable file is named now rather than mid-training.
    for (const Item& item : files_)
      if (lower_extension(item.path) != ".jpg" && lower_extension(item.path) != ".jpeg") {
        int c = image_file_channels(item.path);
        alpha_count_ += c == 2 || c == 4;
      }
  }

  int64_t size() const override { return int64_t(files_.size()); }
  int channels() const override { return channels_; }
  int resolution() const override { return res_; }
  std::vector<std::string> class_names() const override { return names_; }
  int64_t alpha_count() const { return alpha_count_; }
  const Background& background() const { return bg_; }

 protected:
  void get_unchecked(int64_t i, float* out, int32_t* label) const override {
    const Item& item = files_[size_t(i)];
    // RGBA whatever the file holds (stb converts grey, RGB and palettes; opaque files get
    // alpha 255), composited, then planar RGB for u8_to_model, which converts to grey if asked.
    Image8 img = read_image(item.path, 4);
    size_t plane = size_t(img.width) * img.height;
    std::vector<uint8_t> planar(plane * 3);
    for (size_t p = 0; p < plane; ++p) {
      const uint8_t* px = &img.pixels[p * 4];
      unsigned a = px[3];
      for (int c = 0; c < 3; ++c)
        planar[c * plane + p] = uint8_t((px[c] * a + bg_.rgb[c] * (255 - a) + 127) / 255);
    }
    u8_to_model(planar.data(), 3, img.height, img.width, res_, channels_, out);
    *label = item.label;
  }

 private:
  struct Item {
    std::string path;
    int32_t label;
  };
  std::vector<Item> files_;
  std::vector<std::string> names_;
  Background bg_;
  int64_t alpha_count_ = 0;
  int res_, channels_;
};

}  // namespace

std::unique_ptr<Dataset> open_folder(const std::string& arg, int resolution, int channels) {
  check_open_args("folder", resolution, channels);
  // "DIR" or "DIR:bg=COLOUR".
  std::string dir = arg;
  Background bg;
  if (size_t at = arg.rfind(":bg="); at != std::string::npos) {
    dir = arg.substr(0, at);
    bg = parse_background("folder:" + arg, arg.substr(at + 4));
  }
  auto d = std::make_unique<FolderDataset>(dir, bg, resolution, channels);
  if (d->alpha_count() > 0 && dist::world().root())
    std::fprintf(stderr,
                 "folder: %lld of %lld images in '%s' have an alpha channel; composited onto %s "
                 "(folder:DIR:bg=white|black|R,G,B chooses the background)\n",
                 (long long)d->alpha_count(), (long long)d->size(), dir.c_str(),
                 d->background().name.c_str());
  return d;
}

}  // namespace sd
