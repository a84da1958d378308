// The device allocator on the CUDA backend (its policy is tested on a pretend device in
// tests/test_size_classes.cpp): a failed cudaMalloc gives a clear error and leaves no pending CUDA
// error for the next launch to be blamed for, the statistics count what tensors hold, and
// `simdiff info --device cuda` shows one training step's device memory. Under
// emulation (SIMDIFF_CUDA=EMULATE, in CI) the emulated device has 80 GiB and no cache.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "kernels/op_inputs.h"
#include "kernels/registry.h"
#include "runtime/allocator.h"
#include "runtime/error.h"
#include "tests/temp_dir.h"
#ifdef SIMDIFF_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace sd {
namespace {

#ifdef SIMDIFF_WITH_CUDA

// compute-sanitizer (tools/gpu_check.sh runs this set under memcheck with SIMDIFF_CUDA_NO_CACHE=1,
// and under racecheck; a tool attaches through CUDA_INJECTION64_PATH) counts the failed
// cudaMalloc as an API error and would fail the run: the test runs plain and under emulation.
#ifndef SIMDIFF_CUDA_EMULATE
bool under_compute_sanitizer() {
  const char* nc = std::getenv("SIMDIFF_CUDA_NO_CACHE");
  return std::getenv("CUDA_INJECTION64_PATH") || (nc && std::string(nc) == "1");
}
#endif

TEST(CudaAllocator, FailedMallocIsReportedAndCleared) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
#ifndef SIMDIFF_CUDA_EMULATE
  if (under_compute_sanitizer()) GTEST_SKIP() << "under compute-sanitizer (see above)";
#endif
  Tensor a = random_uniform_tensor({1000}, 5, 0).to(Device::CUDA);
  // 2^38 floats: 1 TiB, more than any GPU (or the emulated device) has.
  try {
    Tensor t = Tensor::empty({int64_t(1) << 38}, DType::F32, Device::CUDA);
    FAIL() << "allocated 1 TiB of device memory";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("out of device memory: cudaMalloc of 1.00 TiB"), std::string::npos) << m;
    EXPECT_NE(m.find("held by live tensors"), std::string::npos) << m;
  }
  EXPECT_EQ(cudaGetLastError(), cudaSuccess) << "the failed cudaMalloc's error is still pending";
  // The next op's launches run and are not blamed for it.
  std::vector<Tensor> y = run_forward("add", {a, a});
  std::vector<float> x = a.to_floats(), s = y[0].to_floats();
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(s[i], 2 * x[i]) << i;
}

// 1 MiB is its own size class, so with or without the cache a live tensor of 1 MiB adds exactly
// that to the bytes in use, and its requests and peaks are counted.
TEST(CudaAllocator, StatisticsCountLiveTensors) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  DeviceAllocStats before = device_alloc_stats();
  DeviceAllocStats during;
  {
    Tensor t = Tensor::empty({1 << 18}, DType::F32, Device::CUDA);
    during = device_alloc_stats();
  }
  DeviceAllocStats after = device_alloc_stats();
  EXPECT_EQ(during.bytes_in_use - before.bytes_in_use, size_t(1) << 20);
  EXPECT_EQ(during.bytes_requested - before.bytes_requested, size_t(1) << 20);
  EXPECT_EQ(during.allocations, before.allocations + 1);
  EXPECT_GE(during.peak_in_use, during.bytes_in_use);
  EXPECT_GE(during.peak_held, during.bytes_in_use + during.bytes_cached);
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
  EXPECT_NE(describe_device_memory(after).find(" in use, "), std::string::npos);
}

// `simdiff info --device cuda` runs one training step of a checkpoint's model on the device and
// prints the allocator's statistics.
TEST(CudaAllocator, InfoPrintsOneStepsDeviceMemory) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present";
  TempDir dir;
  const std::string bin = SIMDIFF_BINARY, tiny = std::string(SIMDIFF_SOURCE_DIR) + "/tests/data/tiny.json";
  std::string train = bin + " train --quiet --device cpu --config " + tiny + " --steps 1 --out " +
                      dir / "run";
  ASSERT_EQ(std::system(train.c_str()), 0) << train;
  std::string info = bin + " info --ckpt " + dir / "run/ckpt.safetensors" +
                     " --device cuda --batch 2 > " + dir / "info.txt";
  ASSERT_EQ(std::system(info.c_str()), 0) << info;
  std::ifstream f(dir / "info.txt");
  std::stringstream text;
  text << f.rdbuf();
  const std::string out = text.str();
  EXPECT_NE(out.find("one training step on cuda, batch 2:"), std::string::npos) << out;
  EXPECT_NE(out.find("device memory: peak "), std::string::npos) << out;
  EXPECT_NE(out.find(" cached; "), std::string::npos) << out;
  EXPECT_NE(out.find("for the EMA and the AdamW moments"), std::string::npos) << out;
}

#else
TEST(CudaAllocator, FailedMallocIsReportedAndCleared) {
  GTEST_SKIP() << "built without CUDA";
}
#endif

}  // namespace
}  // namespace sd
