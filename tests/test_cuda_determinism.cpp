// Bit-identical results from run to run on the CUDA backend: every op's outputs and gradients
// computed twice on the same inputs (with the device's grids and with capped ones, so the split
// reductions run), and a few training steps of the tiny model run twice through the binary (the
// loss and gradient norm of each step, every tensor of the checkpoint), compared bit for bit.
// A float atomic sums in whatever order the threads arrive, which changes from run to run on a
// GPU; under emulation (SIMDIFF_CUDA=EMULATE, in CI) the blocks and threads run in a new random
// order for every launch here (the emulator's SIMDIFF_EMU_RANDOM_ORDER), so such a sum differs
// between the two runs there too. AtomicsAreCaught shows it: with the kernels' float atomics
// switched back on (SIMDIFF_CUDA_ATOMICS=1) the same comparison finds differences. On a GPU
// (tools/gpu_check.sh) the ops also run at their bench shapes, with thousands of blocks in flight.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "kernels/op_inputs.h"
#include "runtime/cuda_atomics.h"
#include "runtime/cuda_limits.h"
#include "runtime/safetensors.h"
#include "tests/rel_error.h"
#include "tests/temp_dir.h"
#ifdef SIMDIFF_CUDA_EMULATE
#include <cuda_runtime.h>  // sd_emu::options()
#endif

namespace sd {
namespace {

#ifdef SIMDIFF_WITH_CUDA

constexpr bool kEmulated =
#ifdef SIMDIFF_CUDA_EMULATE
    true;
#else
    false;
#endif

// Blocks and threads in a random order for the guard's lifetime (emulation only; a GPU has its
// own). Each launch draws a new order.
struct RandomOrder {
#ifdef SIMDIFF_CUDA_EMULATE
  bool saved = sd_emu::options().random_order;
  RandomOrder() { sd_emu::options().random_order = true; }
  ~RandomOrder() { sd_emu::options().random_order = saved; }
#endif
};

struct FloatAtomics {
  bool saved = cuda_float_atomics();
  explicit FloatAtomics(bool on) { set_cuda_float_atomics(on); }
  ~FloatAtomics() { set_cuda_float_atomics(saved); }
};

struct Limits {
  CudaLimits saved = cuda_limits();
  explicit Limits(CudaLimits l) { cuda_limits() = l; }
  ~Limits() { cuda_limits() = saved; }
};

// Everything one run of a case computes, named, on the host: the outputs, then the gradient of
// every differentiable input from fixed output gradients.
std::vector<std::pair<std::string, Tensor>> run_case(const OpDef& def, const TestCase& tc,
                                                     Device dev, uint64_t seed) {
  std::vector<Tensor> in;
  for (const Tensor& t : make_op_inputs(tc, seed, DType::F32)) in.push_back(t.defined() ? t.to(dev) : t);
  std::vector<Tensor> out = def.inputs.empty() ? run_forward_on(dev, def.name, tc.attrs)
                                               : run_forward(def.name, in, tc.attrs);
  std::vector<std::pair<std::string, Tensor>> r;
  for (size_t j = 0; j < out.size(); ++j) r.push_back({def.outputs[j].name, out[j].to(Device::CPU)});
  if (!def.differentiable()) return r;
  std::vector<Tensor> gout;
  for (size_t j = 0; j < out.size(); ++j)
    gout.push_back(def.outputs[j].differentiable
                       ? random_uniform_tensor(out[j].shape(), seed + 99, j, out[j].dtype()).to(dev)
                       : Tensor());
  std::vector<bool> need;
  for (size_t i = 0; i < in.size(); ++i) need.push_back(in[i].defined() && def.inputs[i].differentiable);
  std::vector<Tensor> grads = run_backward(def.name, in, out, gout, need, tc.attrs);
  for (size_t i = 0; i < grads.size(); ++i)
    if (grads[i].defined()) r.push_back({"d" + def.inputs[i].name, grads[i].to(Device::CPU)});
  return r;
}

// "" when both runs' tensors are bitwise the same, else where they first differ.
std::string first_difference(const std::vector<std::pair<std::string, Tensor>>& a,
                             const std::vector<std::pair<std::string, Tensor>>& b) {
  for (size_t k = 0; k < a.size(); ++k) {
    const Tensor &x = a[k].second, &y = b[k].second;
    if (std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0) continue;
    std::vector<float> u = x.to_floats(), v = y.to_floats();
    size_t i = 0;
    while (i < u.size() && std::memcmp(&u[i], &v[i], sizeof(float)) == 0) ++i;
    std::ostringstream s;
    s.precision(9);
    s << "'" << a[k].first << "' element " << i << ": " << u[i] << " then " << v[i];
    return s.str();
  }
  return "";
}

// The cases of an op to run twice: its test cases, the determinism cases below, and on a GPU its
// bench cases (in f32, like every case here).
std::vector<TestCase> cases_of(const OpDef& def, const std::vector<TestCase>& extra) {
  std::vector<TestCase> v = def.tests;
  v.insert(v.end(), extra.begin(), extra.end());
  if (!kEmulated) v.insert(v.end(), def.bench_cases.begin(), def.bench_cases.end());
  return v;
}

// Shapes that reach the multi-block reductions the registry's small test cases do not: long
// broadcasts (split into chunks), many lookups of few rows, layer norms of many rows (several
// row groups per block). They are also checked against the CPU here, as the parity loop checks
// the registry's cases.
std::map<std::string, std::vector<TestCase>> determinism_cases() {
  return {{"add",
           {{"bias over 300 rows", {{{300, 5}}, {{5}}}},
            {"per-channel 2x3x20x20", {{{2, 3, 20, 20}}, {{1, 3, 1, 1}}}}}},
          {"mul",
           {{"bias over 300 rows", {{{300, 5}}, {{5}}}},
            {"outer 40x50", {{{40, 1}}, {{1, 50}}}},
            {"per-sample 6x300", {{{6, 1}}, {{6, 300}}}}}},
          {"embedding", {{"V=4 D=40 B=300", {{{4, 40}}, {{300}, true, 0, 3}}}}},
          {"layer_norm",
           {{"300x40", {{{300, 40}}, {{40}}, {{40}}}}, {"100x37", {{{100, 37}}, {{37}}, {{37}}}}}},
          {"layer_norm_mod",
           {{"B=2 N=150 C=36 silu",
             {{{2, 150, 36}}, {{36}}, {{36}}, {{2, 36}}, {{2, 36}}},
             {{"silu", true}}}}}};
}

// The ops whose backward reduced with float atomics before (and does with SIMDIFF_CUDA_ATOMICS=1),
// with a case whose sums are long enough to come out differently in two random orders.
const std::vector<std::pair<std::string, std::string>> kAtomicOps = {
    {"add", "bias over 300 rows"},      {"mul", "per-sample 6x300"},
    {"embedding", "V=4 D=40 B=300"},    {"layer_norm", "300x40"},
    {"layer_norm_mod", "B=2 N=150 C=36 silu"}, {"scale_shift", "nlc N=300"}};

// Runs every case twice with the device's grids and twice with capped ones: "" when all agree
// bitwise, else the first difference.
std::string twice(const OpDef& def, const TestCase& tc, uint64_t seed) {
  for (CudaLimits l : {CudaLimits{}, CudaLimits{2, 3, 1}}) {
    Limits limits(l);
    auto a = run_case(def, tc, Device::CUDA, seed), b = run_case(def, tc, Device::CUDA, seed);
    std::string d = first_difference(a, b);
    if (!d.empty()) return d + (l.max_grid ? " (capped grids)" : "");
  }
  return "";
}

TEST(CudaDeterminism, OpsAreBitIdenticalAcrossRuns) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  [[maybe_unused]] RandomOrder random_order;
  auto extra = determinism_cases();
  int compared = 0;
  for (const OpDef* def : Registry::get().all()) {
    uint64_t seed = 4242;
    for (const TestCase& tc : cases_of(*def, extra[def->name])) {
      EXPECT_EQ(twice(*def, tc, seed++), "")
          << def->name << " [" << tc.label << "] differs between two runs";
      ++compared;
    }
  }
  EXPECT_GT(compared, 100);
}

// The determinism cases against the CPU reference, at the op's parity tolerance.
TEST(CudaDeterminism, SplitReductionsMatchCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  for (auto& [op, cases] : determinism_cases()) {
    const OpDef& def = Registry::get().at(op);
    for (const TestCase& tc : cases)
      for (CudaLimits l : {CudaLimits{}, CudaLimits{2, 3, 1}}) {
        Limits limits(l);
        auto ref = run_case(def, tc, Device::CPU, 7), got = run_case(def, tc, Device::CUDA, 7);
        ASSERT_EQ(ref.size(), got.size());
        for (size_t k = 0; k < ref.size(); ++k)
          EXPECT_LE(rel_error(got[k].second, ref[k].second), def.parity_tol)
              << op << " [" << tc.label << "] '" << ref[k].first << "'"
              << (l.max_grid ? " with capped grids" : "");
      }
  }
}

// The check above can fail: with the float atomics back on, the same two runs differ for every
// op that had them. Emulation only: the random order makes the atomics' order change on demand,
// where on a GPU it may or may not in a given run.
TEST(CudaDeterminism, AtomicsAreCaught) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  if (!kEmulated) GTEST_SKIP() << "needs the emulator's random order (on a GPU, two runs with "
                                  "atomics may happen to agree)";
  [[maybe_unused]] RandomOrder random_order;
  FloatAtomics atomics(true);
  auto extra = determinism_cases();
  for (auto& [op, label] : kAtomicOps) {
    const OpDef& def = Registry::get().at(op);
    int found = 0;
    for (const TestCase& tc : cases_of(def, extra[op]))
      if (tc.label == label) {
        ++found;
        EXPECT_NE(twice(def, tc, 4242), "")
            << op << " [" << label << "] gave the same bits twice with float atomics";
      }
    EXPECT_EQ(found, 1) << op << " has no case '" << label << "'";
  }
}

std::vector<nlohmann::json> metrics(const std::string& path) {
  std::vector<nlohmann::json> v;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) v.push_back(nlohmann::json::parse(line));
  return v;
}

// A few training steps of the tiny model, twice (two processes; under emulation two different
// random orders): the same loss and gradient norm at every step, bitwise, and the same bits in
// every tensor of the checkpoint (weights, EMA, AdamW moments). SIMDIFF_CUDA_ATOMICS=1 in the
// environment makes this fail.
TEST(CudaDeterminism, TrainingIsBitIdenticalAcrossRuns) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  TempDir dir;
  const std::string tiny = std::string(SIMDIFF_SOURCE_DIR) + "/tests/data/tiny.json";
  const int steps = 3;
  for (int run = 1; run <= 2; ++run) {
    std::string env = kEmulated ? "SIMDIFF_EMU_RANDOM_ORDER=1 SIMDIFF_EMU_SEED=" +
                                      std::to_string(run * 7919) + " "
                                : "";
    std::string cmd = env + SIMDIFF_BINARY + " train --quiet --device cuda --config " + tiny +
                      " --steps " + std::to_string(steps) + " --out " + dir / ("run" + std::to_string(run));
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  auto m1 = metrics(dir / "run1/metrics.jsonl"), m2 = metrics(dir / "run2/metrics.jsonl");
  ASSERT_EQ(m1.size(), size_t(steps));
  ASSERT_EQ(m2.size(), m1.size());
  for (size_t i = 0; i < m1.size(); ++i)
    for (const char* key : {"loss", "grad_norm"}) {
      double a = m1[i][key].get<double>(), b = m2[i][key].get<double>();
      EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0) << "step " << i + 1 << " " << key << ": " << a
                                                  << " then " << b;
    }
  SafeTensors c1 = load_safetensors(dir / "run1/ckpt.safetensors");
  SafeTensors c2 = load_safetensors(dir / "run2/ckpt.safetensors");
  ASSERT_EQ(c1.tensors.size(), c2.tensors.size());
  ASSERT_GT(c1.tensors.size(), 0u);
  for (auto& [name, t] : c1.tensors) {
    ASSERT_TRUE(c2.tensors.count(name)) << name;
    const Tensor& u = c2.tensors.at(name);
    ASSERT_EQ(t.nbytes(), u.nbytes()) << name;
    EXPECT_EQ(std::memcmp(t.raw(), u.raw(), t.nbytes()), 0) << name << " differs between two runs";
  }
}

#else
TEST(CudaDeterminism, OpsAreBitIdenticalAcrossRuns) {
  GTEST_SKIP() << "built without CUDA: the CPU backend reduces in a fixed order";
}
#endif

}  // namespace
}  // namespace sd
