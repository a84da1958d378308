// The training run directory, the checkpoint and the command line under hostile and careless
// use, end to end through the built binary: kills and signals at chosen points, concurrent
// runs, full disks, changed configs, malformed numbers and files that are not files. Each test
// checks both the outcome (exit status, what is on disk) and that the message names the problem.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>

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

nlohmann::json tiny_json() {
  std::ifstream f(kTiny);
  return nlohmann::json::parse(f);
}

std::string write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string write_json(const std::string& path, const nlohmann::json& j) {
  return write_text(path, j.dump(2));
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// Every refusal is one clean line: no leaked exception text, no crash.
void expect_clean_error(const RunResult& r, int status = 1) {
  EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << "; output: " << r.output;
  EXPECT_EQ(r.status, status) << r.output;
  EXPECT_THAT(r.output, HasSubstr("simdiff: error: "));
  EXPECT_THAT(r.output, Not(HasSubstr("internal")));
  EXPECT_THAT(r.output, Not(HasSubstr("json.exception")));
  EXPECT_THAT(r.output, Not(HasSubstr("filesystem error")));
}

std::string train_args(const std::string& config, const std::string& out) {
  return "train --quiet --device cpu --config " + q(config) + " --out " + q(out);
}

int64_t ckpt_step(const std::string& dir) {
  return read_checkpoint(dir + "/ckpt.safetensors").step;
}

// Every float in the checkpoint is finite.
bool all_finite(const std::string& ckpt) {
  for (auto& [name, t] : load_safetensors(ckpt).tensors)
    for (float v : t.to_floats())
      if (!std::isfinite(v)) return false;
  return true;
}

// A run directory with an 8-step run of the tiny config (checkpoints at steps 4 and 8).
std::string trained_run(const TempDir& dir, const std::string& name = "run") {
  std::string out = dir / name;
  RunResult r = run_simdiff(train_args(kTiny, out) + " --steps 8");
  EXPECT_EQ(r.status, 0) << r.output;
  return out;
}

// ---- 1. deeply nested JSON from every place JSON comes in ----

std::string deep_json(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(CliHardening, DeeplyNestedJsonIsRefusedEverywhere) {
  TempDir dir;
  std::string cfg = write_text(dir / "deep.json", "{\"model\": " + deep_json(60000) + "}");
  RunResult r = run_simdiff(train_args(cfg, dir / "out"));
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr(cfg));
  EXPECT_THAT(r.output, HasSubstr("nested deeper than"));

  r = run_simdiff("op scale --attrs '" + deep_json(60000) + "' --out " + q(dir / "o"));
  expect_clean_error(r, 2);
  EXPECT_THAT(r.output, HasSubstr("nested deeper than"));

  // A checkpoint whose config metadata nests 60000 deep: info, sample and train --resume.
  std::string ck = dir / "ck/ckpt.safetensors";
  fs::create_directories(dir / "ck");
  save_safetensors(ck, {{"x", Tensor::zeros({1})}},
                   {{"format", "simdiff-checkpoint-1"}, {"config", deep_json(60000)},
                    {"step", "1"}, {"seed", "0"}});
  for (std::string cmd : {"info --ckpt " + q(ck), "sample --ckpt " + q(ck) + " --out " + q(dir / "s.png"),
                          "train --quiet --resume --config " + q(kTiny) + " --out " + q(dir / "ck")}) {
    r = run_simdiff(cmd);
    expect_clean_error(r);
    EXPECT_THAT(r.output, HasSubstr("nested deeper than")) << cmd;
  }
}

TEST(CliHardening, MessagesAreCutShort) {
  TempDir dir;
  auto j = tiny_json();
  j["model"]["heads"] = std::string(200000, 'x');
  RunResult r = run_simdiff(train_args(write_text(dir / "long.json", j.dump()), dir / "out"));
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("model.heads"));
  EXPECT_LT(r.output.size(), 1000u) << r.output.substr(0, 300);

  j = tiny_json();
  j["model"]["channel_mult"] = std::vector<int>(200000, 0);
  r = run_simdiff(train_args(write_text(dir / "wide.json", j.dump()), dir / "out"));
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("model.channel_mult"));
  EXPECT_LT(r.output.size(), 1000u) << r.output.substr(0, 300);
}

// ---- 2. a diverging update never reaches the checkpoint ----

TEST(CliHardening, DivergenceOnACheckpointStepKeepsTheLastGoodCheckpoint) {
  TempDir dir;
  std::string out = dir / "run";
  // The update of step 8 (a checkpoint step: ckpt_every 4) leaves NaN in the weights.
  RunResult r = run_simdiff(train_args(kTiny, out), "SIMDIFF_FAULT_NAN_AT=step:8");
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("step 8"));
  EXPECT_THAT(r.output, HasSubstr("not finite"));
  EXPECT_EQ(ckpt_step(out), 4);
  EXPECT_TRUE(all_finite(out + "/ckpt.safetensors"));
}

// ---- 3. every command-line override is validated like the key it overrides ----

TEST(CliHardening, StepsOverrideIsValidated) {
  TempDir dir;
  for (std::string bad : {"0", "-3"}) {
    RunResult r = run_simdiff(train_args(kTiny, dir / "new") + " --steps " + bad);
    expect_clean_error(r, 2);
    EXPECT_THAT(r.output, HasSubstr("--steps"));
    EXPECT_FALSE(fs::exists(dir / "new"));
  }
  std::string out = trained_run(dir);
  std::string before = read_text(out + "/ckpt.safetensors");
  RunResult r = run_simdiff(train_args(kTiny, out) + " --resume --steps 0");
  expect_clean_error(r, 2);
  EXPECT_EQ(read_text(out + "/ckpt.safetensors"), before);
  EXPECT_EQ(ckpt_step(out), 8);
}

// ---- 4. one run directory, one process ----

TEST(CliHardening, SecondTrainerOnTheSameDirectoryIsRefused) {
  TempDir dir;
  std::string out = trained_run(dir);
  std::string before = read_text(out + "/metrics.jsonl");
  // This process holds the lock, as a running `simdiff train` would.
  int fd = open((out + "/train.lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  RunResult r = run_simdiff(train_args(kTiny, out) + " --resume --steps 12");
  close(fd);
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("another"));
  EXPECT_THAT(r.output, HasSubstr(out));
  EXPECT_EQ(read_text(out + "/metrics.jsonl"), before);
  EXPECT_EQ(ckpt_step(out), 8);
}

// ---- 5. an existing run is never emptied or replaced by accident ----

TEST(CliHardening, ExistingRunIsNeitherEmptiedNorReplaced) {
  TempDir dir;
  std::string out = trained_run(dir);
  std::string metrics = read_text(out + "/metrics.jsonl"), config = read_text(out + "/config.json");
  // A failing start (bad data spec) touches nothing.
  RunResult r = run_simdiff(train_args(kTiny, out) + " --data nosuchkind:x");
  expect_clean_error(r);
  EXPECT_EQ(read_text(out + "/metrics.jsonl"), metrics);
  EXPECT_EQ(read_text(out + "/config.json"), config);
  // A valid start without --resume is refused, naming the way out.
  r = run_simdiff(train_args(kTiny, out) + " --steps 4");
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("--resume"));
  EXPECT_THAT(r.output, HasSubstr("--overwrite"));
  EXPECT_EQ(read_text(out + "/metrics.jsonl"), metrics);
  EXPECT_EQ(ckpt_step(out), 8);
  // --overwrite starts over.
  r = run_simdiff(train_args(kTiny, out) + " --steps 4 --overwrite");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(metric_losses(out + "/metrics.jsonl").size(), 4u);
  EXPECT_EQ(ckpt_step(out), 4);
}

// ---- 6 and 9. kills inside the metrics rewrite and inside a checkpoint write ----

TEST(CliHardening, KillDuringMetricsRewriteLosesNoHistory) {
  TempDir dir;
  RunResult r = run_simdiff(train_args(kTiny, dir / "full"));
  ASSERT_EQ(r.status, 0) << r.output;
  std::string out = dir / "run";
  r = run_simdiff(train_args(kTiny, out), "SIMDIFF_FAULT_KILL_AT=step:10");
  ASSERT_EQ(r.signal, SIGKILL) << r.output;
  ASSERT_EQ(metric_losses(out + "/metrics.jsonl").size(), 10u);
  // The resume drops steps 9 and 10 (past the checkpoint at 8) from metrics.jsonl; it is
  // killed at that moment.
  r = run_simdiff(train_args(kTiny, out) + " --resume", "SIMDIFF_FAULT_KILL_AT=rename:metrics.jsonl");
  ASSERT_EQ(r.signal, SIGKILL) << r.output;
  EXPECT_GE(metric_losses(out + "/metrics.jsonl").size(), 8u);
  r = run_simdiff(train_args(kTiny, out) + " --resume");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(metric_losses(out + "/metrics.jsonl"), metric_losses(dir / "full/metrics.jsonl"));
}

TEST(CliHardening, KillInsideACheckpointWriteResumesExactlyAndCleansUp) {
  TempDir dir;
  RunResult r = run_simdiff(train_args(kTiny, dir / "full"));
  ASSERT_EQ(r.status, 0) << r.output;
  std::vector<double> full = metric_losses(dir / "full/metrics.jsonl");

  std::string out = dir / "killed";
  // Killed in the second checkpoint write (step 8): its temp file is complete, not renamed.
  r = run_simdiff(train_args(kTiny, out), "SIMDIFF_FAULT_KILL_AT=rename:ckpt.safetensors#2");
  ASSERT_EQ(r.signal, SIGKILL) << r.output;
  EXPECT_EQ(ckpt_step(out), 4);
  std::vector<std::string> stale;
  for (auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().rfind("ckpt.safetensors.tmp.", 0) == 0)
      stale.push_back(e.path().string());
  ASSERT_EQ(stale.size(), 1u);
  // A temp file of a live process (this one) is not ours to remove.
  std::string live = out + "/ckpt.safetensors.tmp." + std::to_string(getpid());
  write_text(live, "x");

  r = run_simdiff(train_args(kTiny, out) + " --resume");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_FALSE(fs::exists(stale[0]));
  EXPECT_TRUE(fs::exists(live));
  std::vector<double> resumed = metric_losses(out + "/metrics.jsonl");
  ASSERT_EQ(resumed.size(), full.size());
  for (size_t i = 0; i < full.size(); ++i) EXPECT_EQ(resumed[i], full[i]) << "step " << i + 1;
}

// ---- 7. write errors ----

TEST(CliHardening, WritesToAFullDeviceFail) {
  TempDir dir;
  std::string ck = trained_run(dir) + "/ckpt.safetensors";
  RunResult r = run_simdiff("sample --device cpu --ckpt " + q(ck) + " --n 1 --steps 1 --out /dev/full");
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("/dev/full"));
  EXPECT_THAT(r.output, HasSubstr("No space left on device"));
  // Standard output on a full device: the report is lost, so the status must say so.
  r = run_simdiff("info --ckpt " + q(ck) + " >/dev/full");
  EXPECT_EQ(r.status, 1);
}

TEST(CliHardening, SampleChecksTheOutputBeforeSampling) {
  TempDir dir;
  std::string ck = trained_run(dir) + "/ckpt.safetensors";
  std::string bad = dir / "no/such/dir/g.png";
  RunResult r = run_simdiff("sample --device cpu --ckpt " + q(ck) + " --n 1 --steps 2 --out " + q(bad));
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr(bad));
  EXPECT_THAT(r.output, Not(HasSubstr("done in")));  // the sampler's progress line: it never ran
}

TEST(CliHardening, MetricsWriteErrorStopsTraining) {
  TempDir dir;
  auto j = tiny_json();
  j["train"]["ckpt_every"] = 1000;  // only the final checkpoint: metrics.jsonl outgrows the limit first
  std::string cfg = write_json(dir / "c.json", j);
  std::string out = dir / "run";
  // config.json fits; metrics.jsonl passes 2500 bytes after about 20 of its 24 lines.
  RunResult r = run_simdiff(train_args(cfg, out), "", 2500);
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr(out + "/metrics.jsonl"));
  EXPECT_THAT(r.output, HasSubstr("File too large"));
}

// ---- 8. resume refuses a changed configuration ----

TEST(CliHardening, ResumeRefusesChangedConfigNamingEachKey) {
  TempDir dir;
  std::string out = trained_run(dir);
  auto j = tiny_json();
  j["train"]["lr"] = 2e-3;
  j["train"]["seed"] = 5;
  j["train"]["batch_size"] = 2;
  RunResult r = run_simdiff(train_args(write_json(dir / "changed.json", j), out) + " --resume --steps 12");
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("train.lr"));
  EXPECT_THAT(r.output, HasSubstr("train.seed"));
  EXPECT_THAT(r.output, HasSubstr("train.batch_size"));
  EXPECT_EQ(ckpt_step(out), 8);

  // train.steps in the file differs from the checkpoint's (8, set by --steps): refused without
  // the flag, which is how it may change.
  r = run_simdiff(train_args(kTiny, out) + " --resume");
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("train.steps"));
  EXPECT_THAT(r.output, HasSubstr("--steps"));
  // Other data is refused; the same data spelled otherwise is not.
  r = run_simdiff(train_args(kTiny, out) + " --resume --steps 12 --data shapes:32");
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("train.data"));
  r = run_simdiff(train_args(kTiny, out) + " --resume --steps 12 --data shapes:64");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(ckpt_step(out), 12);
  // Without --config the checkpoint's own config is used.
  r = run_simdiff("train --quiet --device cpu --resume --out " + q(out) + " --steps 16");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(ckpt_step(out), 16);
}

// ---- 10. signals ----

TEST(CliHardening, FirstSignalCheckpointsAndExitsSecondExitsAtOnce) {
  TempDir dir;
  RunResult r = run_simdiff(train_args(kTiny, dir / "full"));
  ASSERT_EQ(r.status, 0) << r.output;
  std::vector<double> full = metric_losses(dir / "full/metrics.jsonl");

  std::string out = dir / "run";
  r = run_simdiff(train_args(kTiny, out), "SIMDIFF_FAULT_TERM_AT=step:10");
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.status, 128 + SIGTERM) << r.output;
  EXPECT_THAT(r.output, HasSubstr("SIGTERM"));
  EXPECT_THAT(r.output, HasSubstr("--resume"));
  EXPECT_EQ(ckpt_step(out), 10);
  r = run_simdiff(train_args(kTiny, out) + " --resume");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(metric_losses(out + "/metrics.jsonl"), full);

  std::string out2 = dir / "run2";
  r = run_simdiff(train_args(kTiny, out2), "SIMDIFF_FAULT_TERM_AT=step:10,step:10");
  EXPECT_EQ(r.signal, SIGTERM) << r.output;
  EXPECT_EQ(ckpt_step(out2), 8);
}

// ---- 11 and 12. numbers on the command line ----

TEST(CliHardening, OutOfRangeAndNonFiniteOptionsAreRefused) {
  TempDir dir;
  std::string ck = trained_run(dir) + "/ckpt.safetensors";
  std::string sample = "sample --device cpu --ckpt " + q(ck) + " --n 1 --steps 1 --out " + q(dir / "g.png") + " ";
  for (std::string bad : {"--n 4294967297", "--steps 4294967297", "--n 0", "--class -3",
                          "--class 6", "--guidance nan", "--guidance inf", "--guidance -inf",
                          "--guidance-interval nan,nan", "--guidance-interval 5,1",
                          "--guidance-interval 1,2x", "--guidance-interval 1", "--seed -1"}) {
    RunResult r = run_simdiff(sample + bad);
    expect_clean_error(r, 2);
    EXPECT_THAT(r.output, HasSubstr(bad.substr(0, bad.find(' ')))) << bad;
    EXPECT_FALSE(fs::exists(dir / "g.png")) << bad;
  }
  RunResult r = run_simdiff(sample + "--guidance-interval -5,5 --class 2");
  EXPECT_EQ(r.status, 0) << r.output;

  r = run_simdiff("trace --config " + q(kTiny) + " --batch 4294967297 --out " + q(dir / "t.safetensors"));
  expect_clean_error(r, 2);
  EXPECT_THAT(r.output, HasSubstr("--batch"));
  r = run_simdiff(train_args(kTiny, dir / "x") + " --stop-after -5");
  expect_clean_error(r, 2);
  EXPECT_THAT(r.output, HasSubstr("--stop-after"));
}

// ---- 14. a model too large for the machine is refused with the figure ----

TEST(CliHardening, ModelTooLargeForTheMachineIsRefused) {
  TempDir dir;
  auto j = tiny_json();
  j["model"]["transformer_depth"] = 4000;
  j["model"]["transformer_width"] = 8192;
  j["model"]["heads"] = 8;
  RunResult r = run_simdiff(train_args(write_json(dir / "big.json", j), dir / "out"));
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("parameters"));
  EXPECT_THAT(r.output, HasSubstr("GiB"));
  EXPECT_FALSE(fs::exists(dir / "out"));
}

// ---- 15. messages that name the file, the key or the flag ----

TEST(CliHardening, BadInputsAreNamed) {
  TempDir dir;
  auto j = tiny_json();
  std::string cfg = write_text(dir / "overflow.json",
                               "{\"model\": {\"dropout\": 1e400}}");
  RunResult r = run_simdiff(train_args(cfg, dir / "o"));
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr(cfg));
  EXPECT_THAT(r.output, HasSubstr("model.dropout"));

  r = run_simdiff(train_args(dir.path.string(), dir / "o"));  // a directory as the config
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("is a directory"));

  r = run_simdiff(train_args(kTiny, "/dev/null"));
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("/dev/null"));
  EXPECT_THAT(r.output, HasSubstr("not a directory"));

  r = run_simdiff(train_args(kTiny, dir / "o") + " --data shapes:9223372036854775807");
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("shapes:9223372036854775807"));

  j["model"]["transformer_width"] = -8;
  r = run_simdiff(train_args(write_json(dir / "neg.json", j), dir / "o"));
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("model.transformer_width"));

  std::string dup = read_text(kTiny);  // the tiny config with model.heads given twice
  dup.replace(dup.find("\"model\": {"), 10, "\"model\": {\"heads\": 2, ");
  r = run_simdiff(train_args(write_text(dir / "dup.json", dup), dir / "o"));
  expect_clean_error(r);
  EXPECT_THAT(r.output, HasSubstr("'model.heads' appears twice"));
  r = run_simdiff("op scale --attrs '{\"s\": 2, \"s\": 3}' --out " + q(dir / "o.safetensors"));
  expect_clean_error(r, 2);
  EXPECT_THAT(r.output, HasSubstr("'s' appears twice"));
  EXPECT_FALSE(fs::exists(dir / "o"));
}

TEST(CliHardening, FifoInputsAreRefusedNotWaitedOn) {
  TempDir dir;
  std::string fifo = dir / "fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  // `timeout` turns a hang into status 137 instead of a stuck suite.
  for (std::string cmd : {"train --config " + q(fifo) + " --out " + q(dir / "o"),
                          "info --ckpt " + q(fifo)}) {
    RunResult r = run_simdiff(cmd, "", 0, 30);
    expect_clean_error(r);
    EXPECT_THAT(r.output, HasSubstr("not a regular file")) << cmd;
  }
}

}  // namespace
}  // namespace sd
