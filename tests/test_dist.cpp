// Data parallelism in one process: a rank's share of the global batch draws exactly what the
// one-process run draws for those rows (random ops, dropout masks, t, label dropout, eps, the
// loader's examples and flips), autograd reports each leaf gradient once it is final, and the
// bucketed reducer starts each bucket during the backward with final gradients and covers the
// arena once. The multi-process runs themselves are in test_dist_mpi.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "tools/data/dataset.h"
#include "tools/data/loader.h"
#include "tools/dist/comm.h"
#include "tools/dist/reducer.h"
#include "tools/session.h"

namespace sd {
namespace {

const std::string kTiny = std::string(SIMDIFF_SOURCE_DIR) + "/tests/data/tiny.json";

// Rows [first, first + count) of a host tensor, as floats.
std::vector<float> rows(const Tensor& t, int64_t first, int64_t count) {
  std::vector<float> all = t.to_floats();
  int64_t per = t.numel() / t.dim(0);
  return {all.begin() + first * per, all.begin() + (first + count) * per};
}

// Shares of a batch of 6 among 1, 2, 3 and 4 ranks (uneven too: 6 / 4).
std::vector<std::vector<dist::Share>> splits(int64_t B) {
  std::vector<std::vector<dist::Share>> out;
  for (int n : {1, 2, 3, 4}) {
    out.emplace_back();
    for (int r = 0; r < n; ++r) out.back().push_back(dist::share_of(B, r, n));
  }
  return out;
}

TEST(DistShares, AreContiguousInRankOrder) {
  for (int64_t total : {0, 1, 5, 6, 7, 64})
    for (int n = 1; n <= 5; ++n) {
      int64_t next = 0;
      for (int r = 0; r < n; ++r) {
        dist::Share s = dist::share_of(total, r, n);
        EXPECT_EQ(s.first, next);
        EXPECT_GE(s.count, total / n);
        EXPECT_LE(s.count, total / n + 1);
        next = s.first + s.count;
      }
      EXPECT_EQ(next, total);
    }
}

// Per-row sizes 75 and 9: shards start inside Philox blocks of 4 words too.
TEST(DistDraws, ShardsOfARandomDrawAreItsRows) {
  for (const char* op : {"random_normal", "random_uniform"})
    for (Shape shape : {Shape{6, 3, 5, 5}, Shape{6, 9}}) {
      int64_t per = shape_numel(shape) / 6;
      Tensor full =
          run_forward_on(Device::CPU, op, {{"shape", shape}, {"seed", 11}, {"offset", 3}})[0];
      for (auto& split : splits(6))
        for (auto& s : split) {
          Shape part = shape;
          part[0] = s.count;
          Tensor t = run_forward_on(Device::CPU, op,
                                    {{"shape", part},
                                     {"seed", 11},
                                     {"offset", 3},
                                     {"first", uint64_t(s.first * per)}})[0];
          if (s.count) {
            EXPECT_EQ(t.to_floats(), rows(full, s.first, s.count)) << op << " " << s.first;
          }
        }
    }
}

TEST(DistDraws, ShardsOfADropoutMaskAreItsRows) {
  for (Shape shape : {Shape{6, 7, 3}, Shape{6, 4, 2, 2}}) {
    int64_t per = shape_numel(shape) / 6;
    Tensor x = run_forward_on(Device::CPU, "random_normal",
                              {{"shape", shape}, {"seed", 1}, {"offset", 0}})[0];
    Tensor full = run_forward("dropout", {x}, {{"p", 0.4}, {"seed", 9}, {"offset", 2}})[0];
    int zeros = 0;
    for (float v : full.to_floats()) zeros += v == 0;
    EXPECT_GT(zeros, 0);
    for (auto& split : splits(6))
      for (auto& s : split) {
        if (!s.count) continue;
        Shape part = shape;
        part[0] = s.count;
        Tensor xs = Tensor::from_floats(rows(x, s.first, s.count), part);
        Tensor t = run_forward(
            "dropout", {xs},
            {{"p", 0.4}, {"seed", 9}, {"offset", 2}, {"first", uint64_t(s.first * per)}})[0];
        EXPECT_EQ(t.to_floats(), rows(full, s.first, s.count)) << s.first;
      }
  }
}

// The loss of a share draws the rows' t, labels, eps and dropout masks of the full batch: the
// noisy inputs, targets and weights are bitwise the same, and the per-example losses agree up
// to the summation order of the kernels (different masks would change them by far more).
TEST(DistDraws, ALossShareDrawsTheFullBatchRows) {
  Config c = Config::load(kTiny);
  c.model.dropout = 0.3;
  c.model.dropout_max_resolution = 8;
  ModelSession s(c, Device::CPU, 3);
  const int64_t B = 6;
  Tensor x = run_forward_on(Device::CPU, "random_uniform",
                            {{"shape", Shape{B, 3, 8, 8}}, {"seed", 2}, {"offset", 0}})[0];
  Tensor y = Tensor::from_ints({0, 1, 2, 3, 4, 5}, {B});
  for (bool stratified : {true, false}) {
    DiffusionConfig d = c.diffusion;
    d.stratified_t = stratified;
    auto loss = [&](int64_t first, int64_t count) {
      ForwardCtx ctx;
      ctx.train = true;
      ctx.seed = 5;
      Tensor xs = Tensor::from_floats(rows(x, first, count), {count, 3, 8, 8});
      std::vector<int32_t> ls(y.data<int32_t>() + first, y.data<int32_t>() + first + count);
      return diffusion_loss(*s.model, d, xs, Tensor::from_ints(ls, {count}), 0.5, 5, StepStreams(4),
                            ctx, {first, B});
    };
    LossResult full = loss(0, B);
    for (auto& split : splits(B))
      for (auto& sh : split) {
        if (!sh.count) continue;
        LossResult part = loss(sh.first, sh.count);
        EXPECT_EQ(part.z.to_floats(), rows(full.z, sh.first, sh.count));
        EXPECT_EQ(part.v_target.to_floats(), rows(full.v_target, sh.first, sh.count));
        EXPECT_EQ(part.logsnr.to_floats(), rows(full.logsnr, sh.first, sh.count));
        EXPECT_EQ(part.weights.to_floats(), rows(full.weights, sh.first, sh.count));
        std::vector<int32_t> lf(full.labels.data<int32_t>() + sh.first,
                                full.labels.data<int32_t>() + sh.first + sh.count);
        std::vector<int32_t> lp(part.labels.data<int32_t>(),
                                part.labels.data<int32_t>() + sh.count);
        EXPECT_EQ(lp, lf);
        std::vector<float> pf = rows(full.per_sample, sh.first, sh.count);
        std::vector<float> pp = part.per_sample.to_floats();
        for (int64_t b = 0; b < sh.count; ++b) EXPECT_NEAR(pp[b], pf[b], 1e-5 * std::abs(pf[b]));
      }
  }
}

TEST(DistDraws, ALoaderShareHoldsTheGlobalBatchRows) {
  auto data = open_dataset("shapes:10", 8, 3);
  const int B = 6;  // batches straddle epochs of 10
  Loader full(*data, B, 7, /*flip=*/true);
  std::vector<Batch> want;
  for (int step = 0; step < 5; ++step) want.push_back(full.next());
  for (auto& split : splits(B))
    for (auto& s : split) {
      if (!s.count) continue;
      Loader part(*data, B, 7, true, /*start_step=*/1, 2, {int(s.first), int(s.count)});
      for (int step = 1; step < 5; ++step) {
        Batch b = part.next();
        EXPECT_EQ(b.images.to_floats(), rows(want[step].images, s.first, s.count)) << step;
        std::vector<int32_t> l(b.labels.data<int32_t>(), b.labels.data<int32_t>() + s.count);
        std::vector<int32_t> w(want[step].labels.data<int32_t>() + s.first,
                               want[step].labels.data<int32_t>() + s.first + s.count);
        EXPECT_EQ(l, w) << step;
      }
    }
}

// ---- the backward hook and the reducer ----

// The tiny model's loss on a fixed batch, for backward().
Variable tiny_loss(const ModelSession& s) {
  Tensor x = run_forward_on(Device::CPU, "random_uniform",
                            {{"shape", Shape{4, 3, 8, 8}}, {"seed", 2}, {"offset", 0}})[0];
  ForwardCtx ctx;
  return diffusion_loss(*s.model, s.cfg.diffusion, x, Tensor::from_ints({0, 1, 2, 3}, {4}), 0.0, 5,
                        StepStreams(0), ctx)
      .loss;
}

TEST(Autograd, AfterNodeReportsEachParameterOnceWithItsFinalGradient) {
  ModelSession s(Config::load(kTiny), Device::CPU, 3);
  std::map<const VarImpl*, std::vector<float>> at_report;
  int nodes = 0;
  backward(tiny_loss(s), Tensor(), [&](const std::vector<VarImpl*>& leaves_done) {
    ++nodes;
    for (VarImpl* leaf : leaves_done)
      EXPECT_TRUE(at_report.emplace(leaf, leaf->grad.to_floats()).second) << leaf->name << " twice";
  });
  EXPECT_GT(nodes, int(s.ps.params().size()));
  EXPECT_EQ(at_report.size(), s.ps.params().size());
  for (auto& p : s.ps.params()) {
    auto it = at_report.find(p.var.impl().get());
    ASSERT_NE(it, at_report.end()) << p.name;
    EXPECT_EQ(it->second, p.var.grad().to_floats()) << p.name << " changed after its report";
  }
}

// Two ranks holding the same gradients, as far as rank 0 can tell: the sum is twice its own.
// Records, for each all-reduce started, its range and whether the gradients there were final.
struct EchoComm : dist::Comm {
  const ParamStore* ps = nullptr;
  const std::map<int64_t, float>* final_grads = nullptr;  // element -> final gradient
  std::vector<std::pair<int64_t, int64_t>> started;       // [begin, end) in arena elements
  bool all_final = true;
  int size() const override { return 2; }
  std::unique_ptr<dist::Pending> start_allreduce_sum(const Tensor& range) override {
    int64_t begin =
        (static_cast<const char*>(range.raw()) - static_cast<const char*>(ps->grads().raw())) /
        int64_t(sizeof(float));
    started.push_back({begin, begin + range.numel()});
    if (final_grads)
      for (int64_t i = 0; i < range.numel(); ++i)
        all_final = all_final && range.data<float>()[i] == final_grads->at(begin + i);
    run_forward_into("scale", {range}, {range}, {{"s", 2.0}});
    return Comm::start_allreduce_sum(range);  // done at once
  }
};

TEST(DistReducer, BucketsStartDuringTheBackwardWithFinalGradientsAndCoverTheArena) {
  ModelSession s(Config::load(kTiny), Device::CPU, 3);
  backward(tiny_loss(s));
  std::vector<float> reference = s.ps.grads().to_floats();
  std::map<int64_t, float> final_grads;
  for (size_t i = 0; i < reference.size(); ++i) final_grads[int64_t(i)] = reference[i];

  for (bool overlap : {true, false}) {
    EchoComm comm;
    comm.ps = &s.ps;
    comm.final_grads = &final_grads;
    dist::GradReducer reducer(comm, s.ps, /*bucket_mb=*/0.004, overlap);  // 1000 floats
    ASSERT_GT(reducer.buckets(), 3);
    s.ps.zero_grad();
    size_t started_in_backward = 0, leaves = 0, leaves_at_first_start = 0;
    AfterNode hook = reducer.hook();
    backward(tiny_loss(s), Tensor(), [&](const std::vector<VarImpl*>& leaves_done) {
      hook(leaves_done);
      leaves += leaves_done.size();
      if (started_in_backward == 0 && !comm.started.empty()) leaves_at_first_start = leaves;
      started_in_backward = comm.started.size();
    });
    reducer.finish();
    EXPECT_TRUE(comm.all_final);
    if (overlap) {  // every bucket starts in the backward, the first one early in it
      EXPECT_EQ(started_in_backward, comm.started.size());
      EXPECT_LT(leaves_at_first_start, leaves / 2);
    } else {
      EXPECT_EQ(started_in_backward, 0u);
    }
    // Contiguous buckets from the arena's end to its start, each once.
    ASSERT_EQ(int(comm.started.size()), reducer.buckets());
    EXPECT_EQ(comm.started.front().second, s.ps.count());
    for (size_t k = 1; k < comm.started.size(); ++k)
      EXPECT_EQ(comm.started[k].second, comm.started[k - 1].first);
    EXPECT_EQ(comm.started.back().first, 0);
    EXPECT_EQ(s.ps.grads().to_floats(), reference);  // (2 g) / 2 ranks
  }
}

}  // namespace
}  // namespace sd
