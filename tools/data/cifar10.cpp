// CIFAR-10 "binary version": each record is 1 label byte + 3072 pixel bytes (32x32 R plane,
// then G, then B). data_batch_1..5.bin form the training split, test_batch.bin the test split.
#include <filesystem>
#include <vector>

#include "tools/data/dataset.h"
#include "tools/data/pixels.h"
#include "tools/data/read_file.h"

namespace sd {
namespace {

namespace fs = std::filesystem;

constexpr int kSide = 32;
constexpr size_t kPixels = 3 * kSide * kSide;
constexpr size_t kRecord = 1 + kPixels;
const std::vector<std::string> kClassNames = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};

class Cifar10Dataset : public Dataset {
 public:
  Cifar10Dataset(const std::vector<std::string>& files, int res, int ch)
      : res_(res), channels_(ch == 0 ? 3 : ch) {
    for (const std::string& path : files) {
      std::vector<uint8_t> b = read_file_maybe_gz(path);
      SD_CHECK(!b.empty() && b.size() % kRecord == 0, "cifar10 file '", path, "': ", b.size(),
               " bytes, expected a non-zero multiple of ", kRecord,
               " (1 label byte + 3072 pixel bytes per record)");
      for (size_t off = 0; off < b.size(); off += kRecord)
        SD_CHECK(b[off] < kClassNames.size(), "cifar10 file '", path, "': label ", int(b[off]),
                 " at offset ", off, " is not a CIFAR-10 class (expected 0..9)");
      records_.insert(records_.end(), b.begin(), b.end());
    }
  }

  int64_t size() const override { return int64_t(records_.size() / kRecord); }
  int channels() const override { return channels_; }
  int resolution() const override { return res_; }
  std::vector<std::string> class_names() const override { return kClassNames; }

 protected:
  void get_unchecked(int64_t i, float* out, int32_t* label) const override {
    const uint8_t* rec = records_.data() + size_t(i) * kRecord;
    *label = rec[0];
    u8_to_model(rec + 1, 3, kSide, kSide, res_, channels_, out);
  }

 private:
  std::vector<uint8_t> records_;
  int res_, channels_;
};

}  // namespace

std::unique_ptr<Dataset> open_cifar10(const std::string& dir, Split split, int resolution,
                                      int channels) {
  check_open_args("cifar10", resolution, channels);
  SD_CHECK(fs::is_directory(dir), "cifar10: directory '", dir, "' does not exist");
  std::vector<std::string> train, test;
  for (int i = 1; i <= 5; ++i) {
    fs::path p = fs::path(dir) / ("data_batch_" + std::to_string(i) + ".bin");
    if (fs::is_regular_file(p)) train.push_back(p.string());
  }
  fs::path t = fs::path(dir) / "test_batch.bin";
  if (fs::is_regular_file(t)) test.push_back(t.string());

  const std::vector<std::string>& files = split == Split::Test                        ? test
                                          : (split == Split::Train || !train.empty()) ? train
                                                                                      : test;
  SD_CHECK(!files.empty(), "cifar10: no ",
           split == Split::Train  ? "data_batch_{1..5}.bin"
           : split == Split::Test ? "test_batch.bin"
                                  : "data_batch_{1..5}.bin or test_batch.bin",
           " in '", dir, "' (expected the unpacked cifar-10-batches-bin folder)");
  return std::make_unique<Cifar10Dataset>(files, resolution, channels);
}

}  // namespace sd
