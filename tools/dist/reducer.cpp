#include "tools/dist/reducer.h"

#include <algorithm>
#include <chrono>

namespace sd::dist {

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

GradReducer::GradReducer(Comm& comm, const ParamStore& ps, double bucket_mb, bool overlap)
    : comm_(comm), ps_(ps), overlap_(overlap) {
  const auto& params = ps.params();
  const int64_t cap = std::max<int64_t>(1, int64_t(bucket_mb * 1e6 / sizeof(float)));
  // From the last parameter back; a bucket closes before the parameter that would pass the cap.
  for (size_t i = params.size(); i > 0;) {
    Bucket b;
    b.end = params[i - 1].offset + shape_numel(params[i - 1].shape);
    b.begin = b.end;
    while (i > 0) {
      const Param& p = params[i - 1];
      int64_t n = shape_numel(p.shape);
      if (b.params > 0 && b.end - b.begin + n > cap) break;
      b.begin = p.offset;
      bucket_of_[p.var.impl().get()] = buckets_.size();
      ++b.params;
      --i;
    }
    buckets_.push_back(std::move(b));
  }
}

AfterNode GradReducer::hook() {
  if (comm_.size() == 1) return {};
  for (auto& b : buckets_) b.pending = b.params;
  started_ = done_ = 0;
  first_start_ = last_done_ = 0;
  return [this](const std::vector<VarImpl*>& leaves_done) { after_node(leaves_done); };
}

void GradReducer::after_node(const std::vector<VarImpl*>& leaves_done) {
  for (VarImpl* leaf : leaves_done)
    if (auto it = bucket_of_.find(leaf); it != bucket_of_.end()) --buckets_[it->second].pending;
  if (overlap_)
    while (started_ < buckets_.size() && buckets_[started_].pending == 0) start(started_++);
  progress();
}

void GradReducer::start(size_t k) {
  Bucket& b = buckets_[k];
  if (k == 0) first_start_ = now_s();
  b.op = comm_.start_allreduce_sum(ps_.grads().slice_flat(b.begin, {b.end - b.begin}));
}

void GradReducer::progress() {
  while (done_ < started_ && buckets_[done_].op->test()) {
    buckets_[done_++].op.reset();
    last_done_ = now_s();
  }
}

void GradReducer::finish() {
  if (comm_.size() == 1) return;
  const double t0 = now_s();
  while (started_ < buckets_.size()) start(started_++);
  for (; done_ < buckets_.size(); ++done_) {
    comm_.wait(*buckets_[done_].op, "all-reducing the gradients (bucket " +
                                        std::to_string(done_ + 1) + " of " +
                                        std::to_string(buckets_.size()) + ")");
    buckets_[done_].op.reset();
    last_done_ = now_s();
  }
  stats_.waited_s += last_done_ - t0;
  stats_.span_s += last_done_ - first_start_;
  ++stats_.steps;
  // The sum of the ranks' gradients of their shares' mean losses, over N: the gradient of the
  // global batch's mean loss (exact in binary for a power-of-two N).
  const Tensor& g = ps_.grads();
  run_forward_into("scale", {g}, {g}, {{"s", 1.0 / comm_.size()}});
}

}  // namespace sd::dist
