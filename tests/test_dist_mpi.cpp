// Data-parallel training end to end: the built binary under mpirun (Open MPI, shared memory,
// --oversubscribe, so it runs on a 2-core CI machine). N ranks against one process, a rank
// killed or hung or signalled mid-run, diverged ranks, and bad setups. Skipped in a build
// without MPI.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "runtime/safetensors.h"
#include "tests/run_simdiff.h"
#include "tests/temp_dir.h"

namespace sd {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kTiny = std::string(SIMDIFF_SOURCE_DIR) + "/tests/data/tiny.json";

#define SKIP_WITHOUT_MPI() \
  if (std::string(SIMDIFF_MPIEXEC).empty()) GTEST_SKIP() << "this build has no MPI"

// mpirun on this machine only: shared memory between the ranks (no network), ranks free to
// share the cores, allowed as root (CI containers run as root; Open MPI refuses root without
// these two variables or --allow-run-as-root). Shared-memory messages are copied through the
// shared segment rather than read from the peer's memory (cross-memory attach, which container
// runtimes may forbid: "Read -1, expected ..., errno = 1"). `ranks` is "-np N ARGS" or an MPMD
// list ("-np 1 ARGS : -np 1 ARGS") where BIN stands for the simdiff binary. `timeout_s` turns a
// hang into a failure (status 137).
RunResult mpirun(const std::string& ranks, const std::string& env = "", int timeout_s = 120) {
  std::string r = ranks;
  for (size_t at; (at = r.find("BIN")) != std::string::npos;) r.replace(at, 3, q(SIMDIFF_BINARY));
  return run_shell("exec env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 " + env +
                   " timeout -s KILL " + std::to_string(timeout_s) + " " + q(SIMDIFF_MPIEXEC) +
                   " --oversubscribe --bind-to none --mca btl self,vader"
                   " --mca btl_vader_single_copy_mechanism none " + r + " 2>&1");
}

std::string train_args(const std::string& config, const std::string& out) {
  return "train --quiet --device cpu --config " + q(config) + " --out " + q(out);
}

std::string write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream(path) << j.dump(2);
  return path;
}

nlohmann::json tiny_json() {
  std::ifstream f(kTiny);
  return nlohmann::json::parse(f);
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

void expect_losses_near(const std::vector<double>& got, const std::vector<double>& want,
                        double rel) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], rel * std::abs(want[i])) << "step " << i + 1;
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// One "simdiff: error:" line naming `what`, status 1, and no rank killed or aborted.
void expect_one_clean_error(const RunResult& r, const std::string& what) {
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_EQ(count(r.output, "simdiff: error: "), 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr(what));
  EXPECT_THAT(r.output, Not(HasSubstr("MPI_ABORT")));
  EXPECT_THAT(r.output, Not(HasSubstr("signal")));
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---- N ranks compute what one process computes ----

TEST(DistMpi, TwoRanksTrainAndSampleLikeOneProcess) {
  SKIP_WITHOUT_MPI();
  TempDir dir;
  auto j = tiny_json();
  j["train"]["steps"] = 20;
  j["train"]["grad_accum"] = 2;
  std::string cfg = write_json(dir / "c.json", j);
  RunResult one = run_simdiff(train_args(cfg, dir / "one"));
  ASSERT_EQ(one.status, 0) << one.output;
  RunResult two = mpirun("-np 2 BIN " + train_args(cfg, dir / "two"));
  ASSERT_EQ(two.status, 0) << two.output;
  EXPECT_EQ(count(two.output, "parameters on cpu"), 1) << two.output;  // rank 0 alone prints
  EXPECT_EQ(count(two.output, "trained to step 20"), 1) << two.output;
  expect_losses_near(metric_losses(dir / "two/metrics.jsonl"), metric_losses(dir / "one/metrics.jsonl"), 1e-5);

  // Final weights and EMA: f32 sums in another order, over 20 AdamW steps of lr 1e-3.
  auto a = load_safetensors(dir / "one/ckpt.safetensors").tensors;
  auto b = load_safetensors(dir / "two/ckpt.safetensors").tensors;
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (auto& [name, t] : a) {
    if (name.rfind("params.", 0) != 0 && name.rfind("ema.", 0) != 0) continue;
    std::vector<float> x = t.to_floats(), y = b.at(name).to_floats();
    for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, double(std::abs(x[i] - y[i])));
  }
  EXPECT_LT(worst, 1e-5) << "largest weight difference";  // 4.9e-7 measured (|w| <= about 1)

  // The same checkpoint sampled by 1 and by 4 ranks (6 images: shares of 1 and 2): one grid.
  std::string ck = dir / "one/ckpt.safetensors";
  std::string sample = "sample --device cpu --ckpt " + q(ck) + " --n 1 --steps 4 --seed 3 --out ";
  RunResult s1 = run_simdiff(sample + q(dir / "one.png"));
  ASSERT_EQ(s1.status, 0) << s1.output;
  RunResult s4 = mpirun("-np 4 BIN " + sample + q(dir / "four.png"));
  ASSERT_EQ(s4.status, 0) << s4.output;
  EXPECT_EQ(count(s4.output, "wrote "), 1) << s4.output;
  EXPECT_EQ(read_bytes(dir / "four.png"), read_bytes(dir / "one.png"));
}

// ---- a rank lost mid-run ----

TEST(DistMpi, AKilledRankEndsTheJobAndTheRunResumesWithAnyRanks) {
  SKIP_WITHOUT_MPI();
  TempDir dir;
  RunResult full = mpirun("-np 2 BIN " + train_args(kTiny, dir / "full"));
  ASSERT_EQ(full.status, 0) << full.output;
  std::vector<double> want = metric_losses(dir / "full/metrics.jsonl");
  ASSERT_EQ(want.size(), 24u);

  // Rank 1 dies after step 10 (SIGKILL): the job ends, non-zero, the checkpoint of step 8 stays.
  auto t0 = std::chrono::steady_clock::now();
  RunResult killed = mpirun("-np 2 BIN " + train_args(kTiny, dir / "run"),
                            "SIMDIFF_FAULT_RANK=1 SIMDIFF_FAULT_KILL_AT=step:10");
  EXPECT_LT(seconds_since(t0), 30);
  EXPECT_NE(killed.status, 0) << killed.output;
  EXPECT_EQ(read_checkpoint(dir / "run/ckpt.safetensors").step, 8);
  RunResult resumed = mpirun("-np 2 BIN " + train_args(kTiny, dir / "run") + " --resume");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_EQ(metric_losses(dir / "run/metrics.jsonl"), want);  // the same ranks: the same sums

  // Rank 0 dies after step 6; resumed by one process (another N: the same global batches).
  t0 = std::chrono::steady_clock::now();
  killed = mpirun("-np 2 BIN " + train_args(kTiny, dir / "run0"),
                  "SIMDIFF_FAULT_RANK=0 SIMDIFF_FAULT_KILL_AT=step:6");
  EXPECT_LT(seconds_since(t0), 30);
  EXPECT_NE(killed.status, 0) << killed.output;
  EXPECT_EQ(read_checkpoint(dir / "run0/ckpt.safetensors").step, 4);
  resumed = run_simdiff(train_args(kTiny, dir / "run0") + " --resume");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  expect_losses_near(metric_losses(dir / "run0/metrics.jsonl"), want, 1e-5);
}

TEST(DistMpi, AHungRankEndsTheJobAfterTheTimeout) {
  SKIP_WITHOUT_MPI();
  TempDir dir;
  auto t0 = std::chrono::steady_clock::now();
  RunResult r = mpirun("-np 2 BIN " + train_args(kTiny, dir / "run") + " --comm-timeout 2",
                       "SIMDIFF_FAULT_RANK=1 SIMDIFF_FAULT_STOP_AT=step:3");
  EXPECT_LT(seconds_since(t0), 30);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.status, 137) << "the test's own timeout ended it: " << r.output;
  EXPECT_THAT(r.output, HasSubstr("rank 0: no answer from the other ranks"));
}

TEST(DistMpi, ASignalToOneRankStopsEveryRankAtOneStep) {
  SKIP_WITHOUT_MPI();
  TempDir dir;
  RunResult r = mpirun("-np 2 BIN " + train_args(kTiny, dir / "run"),
                       "SIMDIFF_FAULT_RANK=1 SIMDIFF_FAULT_TERM_AT=step:10");
  EXPECT_EQ(r.status, 128 + SIGTERM) << r.output;
  EXPECT_EQ(count(r.output, "stopped by SIGTERM after step 10"), 1) << r.output;
  EXPECT_EQ(read_checkpoint(dir / "run/ckpt.safetensors").step, 10);
}

// ---- bad setups: one clear error, every rank exits cleanly ----

TEST(DistMpi, BadSetupsGiveOneClearErrorAndACleanExit) {
  SKIP_WITHOUT_MPI();
  TempDir dir;
  auto j = tiny_json();
  j["train"]["batch_size"] = 5;
  RunResult r = mpirun("-np 2 BIN " + train_args(write_json(dir / "b5.json", j), dir / "b5"));
  expect_one_clean_error(r, "train.batch_size 5 does not divide among 2 ranks");
  EXPECT_FALSE(fs::exists(dir / "b5"));

  j = tiny_json();
  j["train"]["lr"] = 2e-3;
  std::string other = write_json(dir / "lr.json", j);
  r = mpirun("-np 1 BIN " + train_args(kTiny, dir / "lr") + " : -np 1 BIN " +
             train_args(other, dir / "lr"));
  expect_one_clean_error(r, "rank 1: this rank was started with another config");
  EXPECT_THAT(r.output, HasSubstr("config.train.lr (0.001 on rank 0, 0.002 on rank 1)"));

  r = mpirun("-np 1 BIN " + train_args(kTiny, dir / "data") + " : -np 1 BIN " +
             train_args(kTiny, dir / "data") + " --data mnist:/no/such/dir");
  expect_one_clean_error(r, "rank 1: ");
  EXPECT_THAT(r.output, HasSubstr("/no/such/dir"));

  r = mpirun("-np 2 BIN " + train_args(kTiny, dir / "usage") + " --steps 0");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(count(r.output, "simdiff: error: "), 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--steps"));

  // sample: rank 0 reads the checkpoint for all.
  r = mpirun("-np 2 BIN sample --device cpu --ckpt " + q(dir / "none.safetensors") + " --out " +
             q(dir / "g.png"));
  expect_one_clean_error(r, dir / "none.safetensors");
  EXPECT_FALSE(fs::exists(dir / "g.png"));
}

TEST(DistMpi, DivergedRanksStopNamingTheStep) {
  SKIP_WITHOUT_MPI();
  TempDir dir;
  auto j = tiny_json();
  j["train"]["dist_check_every"] = 3;
  // Rank 1's weights go wrong after step 6, a check step; its checkpoint is never written.
  RunResult r = mpirun("-np 2 BIN " + train_args(write_json(dir / "c.json", j), dir / "run"),
                       "SIMDIFF_FAULT_RANK=1 SIMDIFF_FAULT_NAN_AT=step:6");
  expect_one_clean_error(r, "the ranks diverged: after step 6 the weights of rank 1 differ");
  EXPECT_EQ(read_checkpoint(dir / "run/ckpt.safetensors").step, 4);
}

}  // namespace
}  // namespace sd
