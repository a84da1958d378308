// Training images for the diffusion model. A Dataset hands out single images already in model
// format (f32, CHW, values in [-1, 1], square at the configured resolution, with the channel
// count the model wants); the Loader (loader.h) assembles them into batches.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace sd {

struct Batch {
  Tensor images;  // f32 [B, C, H, W] in [-1, 1], CPU
  Tensor labels;  // i32 [B]
};

class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual int64_t size() const = 0;
  virtual int channels() const = 0;
  virtual int resolution() const = 0;  // images are resolution x resolution
  virtual std::vector<std::string> class_names() const = 0;
  int num_classes() const { return int(class_names().size()); }

  // Writes image `index` (channels * resolution * resolution floats) and its class label.
  // Safe to call from several threads at once: the loader calls it from its prefetch thread.
  void get(int64_t index, float* chw_out, int32_t* label) const;

 protected:
  virtual void get_unchecked(int64_t index, float* chw_out, int32_t* label) const = 0;
};

// Opens a dataset from a spec string:
//   shapes | shapes:N             built-in procedural coloured shapes (shapes.h), N images
//                                 (default 50000, at most 10^8)
//   mnist:DIR[:train|:test]       MNIST IDX files (plain or .gz)
//   cifar10:DIR[:train|:test]     CIFAR-10 binary batches
//   folder:DIR[:bg=COLOUR]        ImageFolder: one subfolder per class, PNG/JPEG/BMP files;
//                                 alpha composited onto white, black or R,G,B (folder.cpp)
// Without a split, mnist and cifar10 read the training files, or the test files when the
// directory holds only those. channels = 0 keeps the dataset's own channel count (1 for MNIST,
// 3 otherwise); 1 or 3 converts (grey -> RGB by replication, RGB -> grey by Rec.601 luma).
std::unique_ptr<Dataset> open_dataset(const std::string& spec, int resolution, int channels = 0);

// Whether two specs name the same data: the same kind, count and split, and directories that
// resolve to the same place ("mnist:data" and "mnist:/work/data", run from /work).
bool same_dataset(const std::string& a, const std::string& b);

enum class Split { Default, Train, Test };

// The openers behind open_dataset, for callers that already have typed arguments.
// MNIST digits (28x28) are first padded by 2 black pixels to 32x32 -- the LeNet convention:
// pixels stay exact and each digit keeps its centred 20x20 box -- then resized like any other
// image when the resolution is not 32.
std::unique_ptr<Dataset> open_mnist(const std::string& dir, Split split, int resolution,
                                    int channels);
std::unique_ptr<Dataset> open_cifar10(const std::string& dir, Split split, int resolution,
                                      int channels);
std::unique_ptr<Dataset> open_folder(const std::string& dir, int resolution, int channels);

// Throws sd::Error unless resolution > 0 and channels is 0, 1 or 3 (shared by the openers).
void check_open_args(const char* kind, int resolution, int channels);

}  // namespace sd
