// Data pipeline and image/plot output: datasets, loader, PNG and SVG writers.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "tests/error_of.h"
#include "tools/data/dataset.h"
#include "tools/data/loader.h"
#include "tools/data/read_file.h"
#include "tools/data/shapes.h"
#include "tools/image_io.h"
#include "tools/plot.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using namespace sd;

namespace {


void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

std::vector<float> get_image(const Dataset& d, int64_t i, int32_t* label) {
  std::vector<float> v(size_t(d.channels()) * d.resolution() * d.resolution());
  d.get(i, v.data(), label);
  return v;
}

// Where the real MNIST test files are looked for: $SIMDIFF_MNIST_DIR, then data/mnist in the
// source tree (where the README puts them), then the development layout's shared copy.
constexpr const char* kMnistTestImages = "t10k-images-idx3-ubyte.gz";

std::vector<std::string> mnist_candidates() {
  std::vector<std::string> v{std::string(SIMDIFF_SOURCE_DIR) + "/data/mnist"};
#ifdef SIMDIFF_MNIST_DIR
  v.push_back(SIMDIFF_MNIST_DIR);
#endif
  return v;
}

}  // namespace

// ---------------------------------------------------------------- shapes

TEST(Shapes, DeterministicAndOrderIndependent) {
  ShapesDataset a(100, 32), b(100, 32);
  int32_t la, lb;
  std::vector<float> a7 = get_image(a, 7, &la);
  get_image(b, 3, &lb);  // touching other items first must not matter
  EXPECT_EQ(get_image(b, 7, &lb), a7);
  EXPECT_EQ(la, lb);
  EXPECT_NE(get_image(a, 8, &la), a7);
  EXPECT_NE(get_image(ShapesDataset(100, 32, 3, /*seed=*/1), 7, &la), a7);
}

TEST(Shapes, EveryClassPresentAndPixelsInRange) {
  ShapesDataset d(60, 32);
  ASSERT_EQ(d.num_classes(), 6);
  EXPECT_EQ(d.class_names()[0], "circle");
  std::vector<int> count(d.num_classes(), 0);
  for (int64_t i = 0; i < d.size(); ++i) {
    int32_t label = -1;
    std::vector<float> img = get_image(d, i, &label);
    ASSERT_GE(label, 0);
    ASSERT_LT(label, d.num_classes());
    ++count[label];
    float lo = 1, hi = -1;
    for (float v : img) {
      ASSERT_TRUE(v >= -1 && v <= 1) << "item " << i << " value " << v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    EXPECT_GT(hi - lo, 0.3f) << "item " << i << " has no visible shape";
  }
  for (int c = 0; c < d.num_classes(); ++c) EXPECT_EQ(count[c], 10) << d.class_names()[c];
}

TEST(Shapes, AnyResolutionAndGrey) {
  for (int res : {8, 17, 64}) {
    ShapesDataset d(10, res, 1);
    int32_t label;
    std::vector<float> img = get_image(d, 4, &label);
    EXPECT_EQ(img.size(), size_t(res * res));
    for (float v : img) ASSERT_TRUE(v >= -1 && v <= 1);
  }
}

TEST(OpenDataset, SpecParsing) {
  auto d = open_dataset("shapes:123", 16);
  EXPECT_EQ(d->size(), 123);
  EXPECT_EQ(d->channels(), 3);
  EXPECT_EQ(open_dataset("shapes", 16, 1)->size(), ShapesDataset::kDefaultCount);
  expect_error_containing([] { open_dataset("shapes:x", 16); }, "shapes:x");
  expect_error_containing([] { open_dataset("imagenet:/x", 16); }, "unknown kind 'imagenet'");
  expect_error_containing([] { open_dataset("mnist", 16); }, "needs a directory");
  expect_error_containing([] { open_dataset("shapes", 16, 2); }, "channels");
  // A count that the loader's permutation could not hold is refused by name, not by bad_alloc.
  expect_error_containing([] { open_dataset("shapes:9223372036854775807", 16); },
                          "'shapes:9223372036854775807': expected an image count of 1..");
}

// Resume accepts another spelling of the same data (tools/train.cpp), nothing else.
TEST(OpenDataset, SameDatasetComparesWhatIsRead) {
  std::string cwd = std::filesystem::current_path().string();
  EXPECT_TRUE(same_dataset("shapes", "shapes:50000"));
  EXPECT_FALSE(same_dataset("shapes:64", "shapes:32"));
  EXPECT_TRUE(same_dataset("mnist:data", "mnist:" + cwd + "/data"));
  EXPECT_TRUE(same_dataset("mnist:./data/", "mnist:data"));
  EXPECT_TRUE(same_dataset("folder:a/../b", "folder:b"));
  EXPECT_FALSE(same_dataset("mnist:data", "mnist:data:test"));
  EXPECT_FALSE(same_dataset("mnist:data", "cifar10:data"));
  EXPECT_FALSE(same_dataset("mnist:data", "mnist:other"));
}

// ---------------------------------------------------------------- MNIST

TEST(Mnist, RealTestSet) {
  std::string dir;
  if (const char* env = std::getenv("SIMDIFF_MNIST_DIR")) {
    // Asked for by name: missing files are a failure, not a skip.
    dir = env;
    ASSERT_TRUE(fs::exists(fs::path(dir) / kMnistTestImages))
        << "SIMDIFF_MNIST_DIR='" << dir << "' holds no " << kMnistTestImages;
  } else {
    std::string looked;
    for (const std::string& c : mnist_candidates()) {
      if (fs::exists(fs::path(c) / kMnistTestImages)) {
        dir = c;
        break;
      }
      looked += (looked.empty() ? "" : ", ") + c;
    }
    if (dir.empty())
      GTEST_SKIP() << "SKIPPED: the real-MNIST checks did not run: no " << kMnistTestImages
                   << " in $SIMDIFF_MNIST_DIR (unset) or " << looked
                   << ". Download t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (e.g. "
                      "from https://ossci-datasets.s3.amazonaws.com/mnist/; README.md, 'Data', says how) "
                      "into data/mnist, or set SIMDIFF_MNIST_DIR=DIR.";
  }
  auto d = open_dataset("mnist:" + dir + ":test", 32);
  ASSERT_EQ(d->size(), 10000);
  EXPECT_EQ(d->channels(), 1);
  EXPECT_EQ(d->num_classes(), 10);
  const int expected[] = {7, 2, 1, 0, 4};
  for (int i = 0; i < 5; ++i) {
    int32_t label;
    get_image(*d, i, &label);
    EXPECT_EQ(label, expected[i]) << "item " << i;
  }

  // At 32 the digit is padded, not resampled: pixel (y, x) of the file is (y+2, x+2) here.
  std::vector<uint8_t> raw = read_file_maybe_gz(dir + "/t10k-images-idx3-ubyte.gz");
  int32_t label;
  std::vector<float> img = get_image(*d, 1, &label);
  const uint8_t* digit = raw.data() + 16 + 784;
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x) {
      bool inside = y >= 2 && y < 30 && x >= 2 && x < 30;
      float want = inside ? digit[(y - 2) * 28 + (x - 2)] / 127.5f - 1 : -1;
      ASSERT_NEAR(img[y * 32 + x], want, 1e-5) << "pixel " << y << "," << x;
    }

  // Other resolutions resample; RGB replicates the grey plane.
  auto rgb = open_dataset("mnist:" + dir + ":test", 64, 3);
  std::vector<float> c = get_image(*rgb, 0, &label);
  ASSERT_EQ(c.size(), size_t(3 * 64 * 64));
  EXPECT_EQ(std::vector<float>(c.begin(), c.begin() + 4096),
            std::vector<float>(c.begin() + 4096, c.begin() + 8192));
  expect_error_containing([&] { open_dataset("mnist:" + dir + ":train", 32); },
                          "train-images-idx3-ubyte");
}

TEST(Mnist, TruncatedAndGarbageFiles) {
  TempDir tmp;
  // Header for 100 images of 28x28, but only 10 images of data.
  std::vector<uint8_t> img = {0, 0, 8, 3, 0, 0, 0, 100, 0, 0, 0, 28, 0, 0, 0, 28};
  img.resize(16 + 10 * 784, 0);
  std::vector<uint8_t> lab = {0, 0, 8, 1, 0, 0, 0, 100};
  lab.resize(8 + 100, 1);
  write_bytes(tmp / "train-images-idx3-ubyte", img);
  write_bytes(tmp / "train-labels-idx1-ubyte", lab);
  expect_error_containing([&] { open_dataset("mnist:" + tmp.path.string(), 32); },
                          tmp / "train-images-idx3-ubyte");

  write_bytes(tmp / "train-images-idx3-ubyte",
              {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!', '!', '!', '!', '!'});
  expect_error_containing([&] { open_dataset("mnist:" + tmp.path.string(), 32); }, "magic");

  // A gzip stream cut in half.
  fs::remove(tmp / "train-images-idx3-ubyte");
  img.resize(16 + 100 * 784, 7);
  std::string gz = tmp / "train-images-idx3-ubyte.gz";
  gzFile f = gzopen(gz.c_str(), "wb");
  gzwrite(f, img.data(), unsigned(img.size()));
  gzclose(f);
  EXPECT_EQ(open_dataset("mnist:" + tmp.path.string(), 32)->size(), 100);  // intact: fine
  fs::resize_file(gz, fs::file_size(gz) / 2);
  expect_error_containing([&] { open_dataset("mnist:" + tmp.path.string(), 32); }, gz);

  expect_error_containing([&] { open_dataset("mnist:" + tmp / "nope", 32); }, tmp / "nope");
}

// ---------------------------------------------------------------- CIFAR-10

TEST(Cifar10, ReadsRecordsAndRejectsWrongSize) {
  TempDir tmp;
  std::vector<uint8_t> bytes;
  for (uint8_t label : {3, 9}) {
    bytes.push_back(label);
    for (int c = 0; c < 3; ++c) bytes.insert(bytes.end(), 1024, uint8_t(c == 0 ? 255 : 0));
  }
  write_bytes(tmp / "data_batch_1.bin", bytes);
  auto d = open_dataset("cifar10:" + tmp.path.string(), 16);
  ASSERT_EQ(d->size(), 2);
  EXPECT_EQ(d->class_names()[3], "cat");
  int32_t label;
  std::vector<float> img = get_image(*d, 1, &label);
  EXPECT_EQ(label, 9);
  EXPECT_FLOAT_EQ(img[0], 1.0f);         // red plane
  EXPECT_FLOAT_EQ(img[256 + 5], -1.0f);  // green plane

  auto grey = open_dataset("cifar10:" + tmp.path.string(), 32, 1);
  img = get_image(*grey, 0, &label);
  EXPECT_NEAR(img[100], 0.299f * 2 - 1, 1e-5);  // luma of pure red

  bytes.resize(bytes.size() + 5);
  write_bytes(tmp / "data_batch_2.bin", bytes);
  expect_error_containing([&] { open_dataset("cifar10:" + tmp.path.string(), 32); },
                          tmp / "data_batch_2.bin");
  expect_error_containing([&] { open_dataset("cifar10:" + tmp.path.string() + ":test", 32); },
                          "test_batch.bin");
}

// ---------------------------------------------------------------- folder + PNG

TEST(Folder, ReadsPngsWrittenByWritePng) {
  TempDir tmp;
  // Classes out of creation order, non-square images to exercise the centre crop.
  struct Spec {
    const char* cls;
    int h, w;
    float r, g, b;
  };
  for (const Spec& s : {Spec{"zebra", 20, 40, 1, -1, -1}, Spec{"apple", 50, 30, -1, 1, -1},
                        Spec{"apple", 8, 8, -1, -1, 1}}) {
    fs::create_directories(tmp.path / s.cls);
    std::vector<float> chw(3 * s.h * s.w);
    for (int i = 0; i < s.h * s.w; ++i) {
      chw[i] = s.r;
      chw[s.h * s.w + i] = s.g;
      chw[2 * s.h * s.w + i] = s.b;
    }
    // The crop must drop this column stripe at the left of the wide image.
    if (s.w > s.h)
      for (int y = 0; y < s.h; ++y) chw[s.h * s.w + y * s.w] = 1;
    std::string name = std::to_string(s.h) + (s.h == 8 ? ".PNG" : ".png");
    write_png(tmp / (std::string(s.cls) + "/" + name), chw.data(), 3, s.h, s.w);
  }
  write_bytes(tmp / "apple/notes.txt", {'x'});  // ignored: not an image

  auto d = open_dataset("folder:" + tmp.path.string(), 16);
  ASSERT_EQ(d->size(), 3);
  EXPECT_EQ(d->class_names(), (std::vector<std::string>{"apple", "zebra"}));
  int32_t label;
  // apple/50.png, apple/8.PNG, zebra/20.png in sorted order.
  std::vector<float> img = get_image(*d, 0, &label);
  EXPECT_EQ(label, 0);
  EXPECT_FLOAT_EQ(img[256 + 77], 1.0f);  // green
  img = get_image(*d, 1, &label);
  EXPECT_FLOAT_EQ(img[512 + 200], 1.0f);  // blue, upsampled 8 -> 16
  img = get_image(*d, 2, &label);
  EXPECT_EQ(label, 1);
  for (int i = 0; i < 256; ++i) {
    ASSERT_FLOAT_EQ(img[i], 1.0f) << i;
    ASSERT_FLOAT_EQ(img[256 + i], -1.0f) << "green stripe survived the crop at " << i;
  }

  auto grey = open_dataset("folder:" + tmp.path.string(), 16, 1);
  img = get_image(*grey, 2, &label);
  EXPECT_NEAR(img[0], 0.299f * 2 - 1, 0.01f);  // stb's integer luma of pure red

  expect_error_containing([&] { open_dataset("folder:" + tmp / "missing", 16); }, tmp / "missing");
  fs::create_directories(tmp.path / "empty_class");
  expect_error_containing([&] { open_dataset("folder:" + tmp.path.string(), 16); }, "empty_class");
}

// RGBA files (written through stb by write_png) are composited onto the spec's background,
// white by default, and the opener says once how many images had alpha.
TEST(Folder, AlphaIsCompositedOntoTheBackground) {
  TempDir tmp;
  fs::create_directories(tmp.path / "icons");
  const int S = 8;
  // Left half opaque red, right half fully transparent over a stored black, and pixel (0, 7)
  // half transparent red (alpha 128 after write_png's rounding).
  std::vector<float> rgba(4 * S * S);
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      int i = y * S + x;
      bool opaque = x < S / 2;
      rgba[i] = opaque ? 1 : -1;
      rgba[S * S + i] = rgba[2 * S * S + i] = -1;
      rgba[3 * S * S + i] = opaque ? 1 : -1;
    }
  rgba[7] = 1;
  rgba[3 * S * S + 7] = 0;
  write_png(tmp / "icons/a.png", rgba.data(), 4, S, S);
  std::vector<float> rgb(3 * S * S, 0.5f);  // opaque: no alpha, left as it is
  write_png(tmp / "icons/b.png", rgb.data(), 3, S, S);

  auto pixel = [&](const std::string& spec, int64_t item, int c, int i) {
    auto d = open_dataset(spec, S);
    int32_t label;
    return get_image(*d, item, &label)[size_t(c * S * S + i)];
  };
  testing::internal::CaptureStderr();
  auto d = open_dataset("folder:" + tmp.path.string(), S);
  std::string said = testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find("1 of 2 images"), std::string::npos) << said;
  EXPECT_NE(said.find("composited onto white"), std::string::npos) << said;
  const std::string dir = "folder:" + tmp.path.string();
  for (int c = 0; c < 3; ++c) {
    EXPECT_FLOAT_EQ(pixel(dir, 0, c, 5), 1.0f) << "transparent -> white, channel " << c;
    EXPECT_FLOAT_EQ(pixel(dir + ":bg=black", 0, c, 5), -1.0f) << "transparent -> black";
    EXPECT_FLOAT_EQ(pixel(dir, 0, c, 0), c == 0 ? 1.0f : -1.0f) << "opaque red kept";
  }
  // a c + (1 - a) bg in 8-bit values, rounded: red 255 over white with a = 128 gives (255,
  // 127, 127).
  EXPECT_NEAR(pixel(dir, 0, 0, 7), 1.0f, 1e-6);
  EXPECT_NEAR(pixel(dir, 0, 1, 7), 127 / 127.5f - 1, 1e-6);
  const float custom[3] = {0, 128, 255};
  for (int c = 0; c < 3; ++c)
    EXPECT_NEAR(pixel(dir + ":bg=0,128,255", 0, c, 6), custom[c] / 127.5f - 1, 1e-6);
  EXPECT_FLOAT_EQ(pixel(dir + ":bg=black", 1, 1, 3), pixel(dir, 1, 1, 3));  // opaque file
  // Grey models take the luma of the composited image.
  auto grey = open_dataset(dir + ":bg=black", S, 1);
  int32_t label;
  EXPECT_NEAR(get_image(*grey, 0, &label)[0], 0.299f * 2 - 1, 1e-5);
  EXPECT_FLOAT_EQ(get_image(*grey, 0, &label)[5], -1.0f);

  for (const char* bad : {":bg=blue", ":bg=300,0,0", ":bg=1,2", ":bg=1,2,3,4", ":bg="})
    expect_error_containing([&] { open_dataset(dir + bad, S); }, "bg= expected white, black or R,G,B");
}

TEST(ImageIo, GridRoundTrip) {
  TempDir tmp;
  const int n = 5, C = 3, H = 4, W = 6, pad = 2, cols = 3;
  std::vector<float> v(n * C * H * W);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i % 17) / 8.0f - 1.0f;
  std::string path = tmp / "grid.png";
  write_grid_png(path, Tensor::from_floats(v, {n, C, H, W}), cols, pad);

  Image8 g = read_image(path);
  ASSERT_EQ(g.channels, 3);
  ASSERT_EQ(g.width, cols * W + (cols + 1) * pad);
  ASSERT_EQ(g.height, 2 * H + 3 * pad);
  auto at = [&](int y, int x, int c) { return int(g.pixels[(size_t(y) * g.width + x) * 3 + c]); };
  for (int k = 0; k < n; ++k)
    for (int c = 0; c < C; ++c)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
          float f = v[((k * C + c) * H + y) * W + x];
          int want = int(std::lround((f + 1) * 127.5f));
          ASSERT_EQ(at(pad + (k / cols) * (H + pad) + y, pad + (k % cols) * (W + pad) + x, c),
                    want);
        }
  EXPECT_EQ(at(0, 0, 0), 128);                       // padding
  EXPECT_EQ(at(g.height - 3, g.width - 3, 1), 128);  // the empty sixth cell

  expect_error_containing([&] { write_png(tmp / "no/such/dir/x.png", v.data(), 3, H, W); },
                          tmp / "no/such/dir/x.png");
  expect_error_containing([&] { read_image(tmp / "grid.txt"); }, tmp / "grid.txt");
}

// ---------------------------------------------------------------- loader

namespace {

// Image = (index, index) as two pixels so tests can read back order and flips; label = index.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n, int64_t fail_at = -1) : n_(n), fail_at_(fail_at) {}
  int64_t size() const override { return n_; }
  int channels() const override { return 1; }
  int resolution() const override { return 2; }
  std::vector<std::string> class_names() const override { return {"x"}; }

 protected:
  void get_unchecked(int64_t i, float* out, int32_t* label) const override {
    if (i == fail_at_) fail("CountingDataset: bad item ", i);
    out[0] = float(i);
    out[1] = float(i) + 0.5f;  // a flipped row reads (i + 0.5, i)
    out[2] = out[3] = 0;
    *label = int32_t(i);
  }

 private:
  int64_t n_, fail_at_;
};

std::vector<int32_t> labels_of(const Batch& b) {
  const int32_t* p = b.labels.data<int32_t>();
  return std::vector<int32_t>(p, p + b.labels.numel());
}

}  // namespace

TEST(Loader, ResumeGivesTheSameBatches) {
  ShapesDataset shapes(50, 8);
  Loader full(shapes, 7, /*seed=*/42, /*flip=*/true);
  std::vector<std::vector<float>> seen;
  for (int s = 0; s < 12; ++s) {  // 84 samples: crosses an epoch boundary mid-batch
    Batch b = full.next();
    ASSERT_EQ(b.images.shape(), (Shape{7, 3, 8, 8}));
    seen.push_back(b.images.to_floats());
  }
  Loader again(shapes, 7, 42, true);
  Loader resumed(shapes, 7, 42, true, /*start_step=*/5);
  EXPECT_EQ(resumed.step(), 5);
  for (int s = 0; s < 12; ++s) EXPECT_EQ(again.next().images.to_floats(), seen[s]) << s;
  for (int s = 5; s < 12; ++s) EXPECT_EQ(resumed.next().images.to_floats(), seen[s]) << s;

  Loader other(shapes, 7, 43, true);
  EXPECT_NE(other.next().images.to_floats(), seen[0]);
}

TEST(Loader, EachEpochIsAPermutationAndFlipsAreMixed) {
  CountingDataset d(12);
  Loader loader(d, 4, 7, /*flip=*/true);
  int flipped = 0;
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::vector<int32_t> order;
    for (int s = 0; s < 3; ++s) {
      Batch b = loader.next();
      std::vector<int32_t> l = labels_of(b);
      std::vector<float> px = b.images.to_floats();
      for (int j = 0; j < 4; ++j) {
        bool f = px[j * 4] > px[j * 4 + 1];
        EXPECT_FLOAT_EQ(std::min(px[j * 4], px[j * 4 + 1]), float(l[j]));
        flipped += f;
      }
      order.insert(order.end(), l.begin(), l.end());
    }
    EXPECT_EQ(std::set<int32_t>(order.begin(), order.end()).size(), 12u) << "epoch " << epoch;
  }
  EXPECT_GT(flipped, 6);
  EXPECT_LT(flipped, 30);

  Loader plain(d, 12, 7, /*flip=*/false);
  std::vector<float> px = plain.next().images.to_floats();
  for (int j = 0; j < 12; ++j) EXPECT_LT(px[j * 4], px[j * 4 + 1]);
}

TEST(Loader, WorkerErrorsAreRethrownAndShutdownDoesNotHang) {
  CountingDataset bad(10, /*fail_at=*/3);
  Loader loader(bad, 10, 0, false);
  expect_error_containing([&] { loader.next(); }, "bad item 3");
  expect_error_containing([&] { loader.next(); }, "bad item 3");  // stays failed

  // Destroyed while the worker is blocked on a full queue, and before it has started.
  CountingDataset good(100);
  {
    Loader l(good, 4, 0, false, 0, 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  { Loader l(good, 4, 0, false); }
  expect_error_containing([&] { Loader l(good, 0, 0, false); }, "batch size");
}

// ---------------------------------------------------------------- plot

TEST(Plot, WritesLinearAndLogCharts) {
  TempDir tmp;
  std::vector<std::pair<int64_t, double>> pts;
  for (int i = 0; i < 200; ++i) pts.push_back({i * 10, 2.0 * std::exp(-i / 50.0) + 0.01 * (i % 7)});
  pts.push_back({2000, std::nan("")});  // skipped
  write_loss_svg(tmp / "lin.svg", pts, "loss <train> & co");
  PlotOptions opt;
  opt.log_y = true;
  write_loss_svg(tmp / "log.svg", pts, "loss", opt);
  write_loss_svg(tmp / "empty.svg", std::vector<std::pair<int64_t, double>>{}, "nothing yet");

  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  std::string lin = slurp(tmp / "lin.svg"), log = slurp(tmp / "log.svg");
  EXPECT_EQ(lin.rfind("<svg", 0), 0u);
  EXPECT_NE(lin.find("loss &lt;train&gt; &amp; co"), std::string::npos);
  EXPECT_EQ(lin.find("nan"), std::string::npos);
  size_t lines = 0;
  for (size_t p = lin.find("<polyline"); p != std::string::npos; p = lin.find("<polyline", p + 1))
    ++lines;
  EXPECT_EQ(lines, 2u);  // raw + EMA
  EXPECT_NE(log.find("(log)"), std::string::npos);
  EXPECT_NE(log.find(">0.1<"), std::string::npos);  // a decade tick
  EXPECT_NE(slurp(tmp / "empty.svg").find("no data"), std::string::npos);

  // A narrow range on a log axis still gets labelled ticks.
  write_loss_svg(tmp / "narrow.svg", {{0, 0.31}, {1, 0.38}, {2, 0.35}}, "narrow", opt);
  std::string narrow = slurp(tmp / "narrow.svg");
  size_t labels = 0;
  for (size_t p = narrow.find("text-anchor=\"end\""); p != std::string::npos;
       p = narrow.find("text-anchor=\"end\"", p + 1))
    ++labels;
  EXPECT_GE(labels, 2u);
  expect_error_containing([&] { write_loss_svg(tmp / "x/y.svg", pts, "t"); }, tmp / "x/y.svg");
}
