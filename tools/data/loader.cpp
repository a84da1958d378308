#include "tools/data/loader.h"

#include <algorithm>

#include "tools/data/hash.h"

namespace sd {
namespace {
// Stream tags, so the permutation and the flips draw from unrelated streams of one seed.
constexpr uint64_t kPermTag = 0x7065726d;  // "perm"
constexpr uint64_t kFlipTag = 0x666c6970;  // "flip"
}  // namespace

Loader::Loader(const Dataset& data, int batch_size, uint64_t seed, bool flip, int64_t start_step,
               int prefetch, Rows rows)
    : data_(data),
      batch_(batch_size),
      rows_(rows.count == 0 ? Rows{0, batch_size} : rows),
      seed_(seed),
      flip_(flip),
      prefetch_(size_t(prefetch)),
      step_(start_step) {
  SD_CHECK(batch_size > 0, "Loader: batch size must be positive, got ", batch_size);
  SD_CHECK(prefetch > 0, "Loader: prefetch must be positive, got ", prefetch);
  SD_CHECK(rows_.first >= 0 && rows_.count > 0 && rows_.first + rows_.count <= batch_size,
           "Loader: rows ", rows_.first, "+", rows_.count, " outside a batch of ", batch_size);
  SD_CHECK(start_step >= 0, "Loader: start_step must be >= 0, got ", start_step);
  SD_CHECK(data.size() > 0, "Loader: the dataset is empty");
  worker_ = std::thread([this, start_step] { run(start_step); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

Batch Loader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !ready_.empty() || error_; });
  if (ready_.empty()) std::rethrow_exception(error_);
  Batch b = std::move(ready_.front());
  ready_.pop_front();
  ++step_;
  lock.unlock();
  cv_.notify_all();
  return b;
}

void Loader::run(int64_t first_step) {
  for (int64_t s = first_step;; ++s) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || ready_.size() < prefetch_; });
      if (stop_) return;
    }
    Batch b;
    try {
      b = make_batch(s);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.push_back(std::move(b));
    }
    cv_.notify_all();
  }
}

int64_t Loader::index_at(int64_t position) {
  int64_t n = data_.size();
  int64_t epoch = position / n;
  if (epoch != perm_epoch_) {
    // Fisher-Yates with our own counter-based generator: std::shuffle's output differs
    // between standard libraries, which would break resuming on another build.
    CounterRng rng(hash_key(seed_ ^ kPermTag, uint64_t(epoch)));
    perm_.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) perm_[size_t(i)] = i;
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(perm_[size_t(i)], perm_[rng.below(uint64_t(i) + 1)]);
    perm_epoch_ = epoch;
  }
  return perm_[size_t(position % n)];
}

Batch Loader::make_batch(int64_t step) {
  const int64_t C = data_.channels(), R = data_.resolution();
  const int64_t image = C * R * R;
  const int64_t rows = rows_.count;
  Batch b{Tensor::empty({rows, C, R, R}), Tensor::empty({rows}, DType::I32)};
  float* images = b.images.data<float>();
  int32_t* labels = b.labels.data<int32_t>();
  for (int64_t j = 0; j < rows; ++j) {
    int64_t position = step * batch_ + rows_.first + j;
    float* img = images + j * image;
    data_.get(index_at(position), img, labels + j);
    if (flip_ && (hash_key(seed_ ^ kFlipTag, uint64_t(position)) & 1))
      for (int64_t row = 0; row < C * R; ++row) std::reverse(img + row * R, img + (row + 1) * R);
  }
  return b;
}

}  // namespace sd
