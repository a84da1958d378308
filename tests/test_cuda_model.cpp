// The U-ViT on the CUDA path against the CPU reference, through the command-line tool: one traced
// training step (every saved activation, its gradient, every parameter gradient) from weights
// trained for a few steps (fresh ones give most layers no gradient: the output layer starts at
// zero), and a few training steps (the loss of each). Skipped without a CUDA device; in CI this runs under the
// emulated backend (SIMDIFF_CUDA=EMULATE), which is "passes under emulation", not "runs on a GPU".
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "runtime/safetensors.h"
#include "tests/rel_error.h"
#include "tests/run_simdiff.h"
#include "tests/temp_dir.h"

namespace sd {
namespace {

const std::string kTiny = std::string(SIMDIFF_SOURCE_DIR) + "/tests/data/tiny.json";

// Tolerances relative to each tensor's largest magnitude. The CUDA path multiplies in TF32
// (operands rounded to a 10-bit mantissa) where the CPU uses f32: measured under emulation with
// TF32 rounding, activations differ by up to 7e-4, gradients by up to 5e-3, the loss by 1e-5.
// With exact f32 products (the emulator's SIMDIFF_EMU_TF32=0) everything agrees to 4e-6, which
// the emulation build checks too, at kExactTol.
constexpr double kActivationTol = 2e-3, kGradientTol = 2e-2, kLossTol = 1e-3, kExactTol = 5e-5;

// Traces one step on both devices from the same trained weights and compares every tensor.
void compare_traces(const TempDir& dir, const std::string& config, const std::string& cuda_env,
                    double act_tol, double grad_tol) {
  const std::string trace = "trace --config " + config + " --ckpt " + dir / "run/ckpt.safetensors";
  ASSERT_EQ(run_simdiff_status(trace + " --device cpu --out " + dir / "cpu.safetensors"), 0);
  ASSERT_EQ(std::system((cuda_env + " " + SIMDIFF_BINARY + " " + trace + " --device cuda --out " +
                         dir / "cuda.safetensors").c_str()), 0);
  SafeTensors ref = load_safetensors(dir / "cpu.safetensors");
  SafeTensors got = load_safetensors(dir / "cuda.safetensors");
  ASSERT_EQ(ref.tensors.size(), got.tensors.size());
  for (auto& [name, want] : ref.tensors) {
    ASSERT_TRUE(got.tensors.count(name)) << name << " missing from the cuda trace";
    const Tensor& have = got.tensors.at(name);
    ASSERT_EQ(have.shape(), want.shape()) << name;
    bool grad = name.rfind("grad", 0) == 0;
    EXPECT_LE(rel_error(have, want), grad ? grad_tol : act_tol) << name << " " << cuda_env;
    if (name.rfind("act.", 0) == 0 || name.rfind("grad_param.", 0) == 0) {
      EXPECT_GT(rel_error(Tensor::zeros(want.shape(), want.dtype()), want), 0)
          << name << " is zero: comparing it proves nothing";
    }
  }
}

// The tiny config in f32 on both devices (train.precision "auto" trains in bf16 on CUDA): the
// kernels' f32 path against the CPU's, at the tolerances above.
std::string f32_config(const TempDir& dir) {
  std::ifstream in(kTiny);
  nlohmann::json j = nlohmann::json::parse(in);
  j["train"]["precision"] = "f32";
  const std::string path = dir / "tiny_f32.json";
  std::ofstream(path) << j.dump(2);
  return path;
}

TEST(CudaModel, TraceMatchesCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  TempDir dir;
  const std::string config = f32_config(dir);
  ASSERT_EQ(run_simdiff_status("train --quiet --device cpu --config " + config + " --steps 4 --out " + dir / "run"), 0);
  compare_traces(dir, config, "", kActivationTol, kGradientTol);
#ifdef SIMDIFF_CUDA_EMULATE
  compare_traces(dir, config, "SIMDIFF_EMU_TF32=0", kExactTol, kExactTol);
#endif
}

TEST(CudaModel, TrainingLossesMatchCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  TempDir dir;
  const std::string common = "train --quiet --config " + kTiny + " --steps 6 ";
  ASSERT_EQ(run_simdiff_status(common + "--device cpu --out " + dir / "cpu"), 0);
  ASSERT_EQ(run_simdiff_status(common + "--device cuda --out " + dir / "cuda"), 0);
  std::vector<double> want = metric_losses(dir / "cpu/metrics.jsonl"), got = metric_losses(dir / "cuda/metrics.jsonl");
  ASSERT_EQ(want.size(), 6u);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], kLossTol * std::abs(want[i])) << "step " << i + 1;
}

}  // namespace
}  // namespace sd
