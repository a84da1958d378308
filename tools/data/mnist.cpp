// MNIST (and IDX-compatible sets such as Fashion-MNIST) from the original IDX files.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "tools/data/dataset.h"
#include "tools/data/pixels.h"
#include "tools/data/read_file.h"

namespace sd {
namespace {

namespace fs = std::filesystem;

constexpr int kPad = 2;  // 28 + 2 * 2 = 32, see open_mnist in dataset.h

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// An IDX file of unsigned bytes: magic 0x0000 0x08 ndim, ndim big-endian u32 sizes, then data.
struct Idx {
  std::vector<uint8_t> bytes;
  std::vector<uint32_t> dims;
  size_t data_offset = 0;
};

Idx read_idx(const std::string& path, int ndim) {
  Idx idx;
  idx.bytes = read_file_maybe_gz(path);
  const auto& b = idx.bytes;
  size_t header = 4 + 4 * size_t(ndim);
  SD_CHECK(b.size() >= header, "MNIST file '", path, "': ", b.size(),
           " bytes, too short for an IDX header of ", header, " bytes");
  uint32_t magic = be32(b.data()), want = 0x0800u + uint32_t(ndim);
  SD_CHECK(magic == want, "MNIST file '", path, "': IDX magic at offset 0 is ", hex32(magic),
           ", expected ", hex32(want), " (unsigned bytes, ", ndim, " dimensions)");
  unsigned __int128 count = 1;  // garbage headers may declare more than 2^64 bytes
  for (int i = 0; i < ndim; ++i) {
    idx.dims.push_back(be32(b.data() + 4 + 4 * i));
    count *= idx.dims.back();
  }
  idx.data_offset = header;
  SD_CHECK(count == b.size() - header, "MNIST file '", path, "': header declares dimensions ",
           idx.dims, " (one byte per element) but the file holds ", b.size() - header,
           " data bytes (truncated or not an IDX file)");
  return idx;
}

class MnistDataset : public Dataset {
 public:
  MnistDataset(const std::string& images_path, const std::string& labels_path, int res, int ch)
      : images_(read_idx(images_path, 3)), labels_(read_idx(labels_path, 1)), res_(res) {
    count_ = images_.dims[0];
    rows_ = int(images_.dims[1]);
    cols_ = int(images_.dims[2]);
    SD_CHECK(count_ > 0 && rows_ > 0 && cols_ > 0, "MNIST file '", images_path,
             "': empty image set, dimensions ", images_.dims);
    SD_CHECK(labels_.dims[0] == uint32_t(count_), "MNIST file '", labels_path, "' has ",
             labels_.dims[0], " labels, but '", images_path, "' has ", count_, " images");
    const uint8_t* l = labels_.bytes.data() + labels_.data_offset;
    int max_label = *std::max_element(l, l + count_);
    for (int i = 0; i <= max_label; ++i) names_.push_back(std::to_string(i));
    channels_ = ch == 0 ? 1 : ch;
  }

  int64_t size() const override { return count_; }
  int channels() const override { return channels_; }
  int resolution() const override { return res_; }
  std::vector<std::string> class_names() const override { return names_; }

 protected:
  void get_unchecked(int64_t i, float* out, int32_t* label) const override {
    int h = rows_ + 2 * kPad, w = cols_ + 2 * kPad;
    std::vector<uint8_t> padded(size_t(h) * w, 0);  // MNIST background is 0 (black)
    const uint8_t* src = images_.bytes.data() + images_.data_offset + size_t(i) * rows_ * cols_;
    for (int y = 0; y < rows_; ++y)
      std::copy_n(src + size_t(y) * cols_, cols_, padded.data() + size_t(y + kPad) * w + kPad);
    u8_to_model(padded.data(), 1, h, w, res_, channels_, out);
    *label = labels_.bytes[labels_.data_offset + size_t(i)];
  }

 private:
  Idx images_, labels_;
  int64_t count_ = 0;
  int rows_ = 0, cols_ = 0, res_ = 0, channels_ = 1;
  std::vector<std::string> names_;
};

// The file for `stem` in `dir`, plain or gzipped; empty if neither exists.
std::string find_file(const fs::path& dir, const std::string& stem) {
  for (const char* ext : {"", ".gz"}) {
    fs::path p = dir / (stem + ext);
    if (fs::is_regular_file(p)) return p.string();
  }
  return "";
}

}  // namespace

std::unique_ptr<Dataset> open_mnist(const std::string& dir, Split split, int resolution,
                                    int channels) {
  check_open_args("mnist", resolution, channels);
  SD_CHECK(fs::is_directory(dir), "mnist: directory '", dir, "' does not exist");
  auto try_split = [&](const char* prefix) -> std::unique_ptr<Dataset> {
    std::string images = find_file(dir, std::string(prefix) + "-images-idx3-ubyte");
    if (images.empty()) return nullptr;
    std::string labels = find_file(dir, std::string(prefix) + "-labels-idx1-ubyte");
    SD_CHECK(!labels.empty(), "mnist: found '", images, "' but no ", prefix,
             "-labels-idx1-ubyte[.gz] next to it in '", dir, "'");
    return std::make_unique<MnistDataset>(images, labels, resolution, channels);
  };
  std::unique_ptr<Dataset> ds;
  if (split != Split::Test) ds = try_split("train");
  if (!ds && split != Split::Train) ds = try_split("t10k");
  SD_CHECK(ds != nullptr, "mnist: no ",
           split == Split::Train  ? "train-images-idx3-ubyte[.gz]"
           : split == Split::Test ? "t10k-images-idx3-ubyte[.gz]"
                                  : "train-images-idx3-ubyte[.gz] or t10k-images-idx3-ubyte[.gz]",
           " in '", dir, "'");
  return ds;
}

}  // namespace sd
