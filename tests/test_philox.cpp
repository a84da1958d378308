// Philox4x32-10 (runtime/philox.h): known-answer vectors, the statistics of the derived uniform
// and normal streams, and the stream's independence of how it is drawn.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/registry.h"
#include "runtime/philox.h"

using namespace sd;

namespace {

void expect_block(PhiloxBlock b, uint32_t e0, uint32_t e1, uint32_t e2, uint32_t e3) {
  EXPECT_EQ(b.v[0], e0);
  EXPECT_EQ(b.v[1], e1);
  EXPECT_EQ(b.v[2], e2);
  EXPECT_EQ(b.v[3], e3);
}

// The philox4x32 10-round vectors of Random123's kat_vectors file.
TEST(Philox, KnownAnswerVectors) {
  expect_block(philox4x32_10(0, 0, 0, 0, 0, 0), 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8);
  expect_block(philox4x32_10(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
                             0xffffffff),
               0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd);
  expect_block(philox4x32_10(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822,
                             0x299f31d0),
               0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1);
}

// Stream layout: word i of (seed, offset) is lane i % 4 of the block with counter
// (lo(i/4), hi(i/4), lo(offset), hi(offset)) and key (lo(seed), hi(seed)).
TEST(Philox, StreamLayout) {
  PhiloxBlock b = philox_block(0x299f31d0a4093822ULL, 0x0370734413198a2eULL, 0x85a308d3243f6a88ULL);
  expect_block(b, 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1);
  const uint32_t zero_kat[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
  for (int lane = 0; lane < 4; ++lane) {
    EXPECT_EQ(philox_uniform(0, 0, lane), philox_u01(zero_kat[lane]));
    uint64_t j = 0x123456789abULL;
    EXPECT_EQ(philox_uniform(77, 5, 4 * j + lane), philox_u01(philox_block(77, 5, j).v[lane]));
  }
}

// The extreme 32-bit words must still map strictly inside (0, 1) (Box-Muller takes log(u)).
TEST(Philox, UniformExtremesStayInsideOpenInterval) {
  EXPECT_GT(philox_u01(0u), 0.0f);
  EXPECT_LT(philox_u01(0xffffffffu), 1.0f);
  EXPECT_LT(philox_u01(0xffffff00u), 1.0f);
}

TEST(Philox, UniformStreamStatistics) {
  const int n = 100000;
  double sum = 0, sq = 0;
  for (int i = 0; i < n; ++i) {
    float u = philox_uniform(42, 7, uint64_t(i));
    ASSERT_GT(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
    sq += double(u) * u;
  }
  double mean = sum / n, var = sq / n - mean * mean;
  EXPECT_NEAR(mean, 0.5, 0.005);  // sd of the mean = sqrt(1/12 / n) ~ 0.0009
  EXPECT_NEAR(var, 1.0 / 12, 0.002);
}

TEST(Philox, NormalStreamStatistics) {
  const int n = 100000;
  double sum = 0, sq = 0;
  int beyond3 = 0;
  for (int i = 0; i < n; ++i) {
    double z = philox_normal(3, 1, uint64_t(i));
    ASSERT_TRUE(std::isfinite(z));
    sum += z;
    sq += z * z;
    beyond3 += std::abs(z) > 3;
  }
  double mean = sum / n, var = sq / n - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.015);  // sd of the mean ~ 0.003
  EXPECT_NEAR(var, 1.0, 0.02);    // sd of the variance ~ sqrt(2 / n) ~ 0.0045
  EXPECT_NEAR(beyond3 / double(n), 0.0027, 0.001);
}

// Element i of a draw does not depend on how many elements are drawn, and equals the stream
// function; different offsets or seeds give different streams.
TEST(Philox, DrawsAreIndependentOfDrawSize) {
  for (const char* op : {"random_uniform", "random_normal"}) {
    bool normal = std::string(op) == "random_normal";
    Attrs small = {{"shape", {10}}, {"seed", 9}, {"offset", 4}};
    Attrs big = {{"shape", {3, 1000}}, {"seed", 9}, {"offset", 4}};
    std::vector<float> a = run_forward_on(Device::CPU, op, small)[0].to_floats();
    std::vector<float> b = run_forward_on(Device::CPU, op, big)[0].to_floats();
    ASSERT_EQ(b.size(), 3000u);
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(a[i], b[i]) << op << " element " << i;
      EXPECT_EQ(a[i], normal ? philox_normal(9, 4, i) : philox_uniform(9, 4, i));
    }
    for (int i = 0; i < 3000; ++i)
      ASSERT_EQ(b[i], normal ? philox_normal(9, 4, i) : philox_uniform(9, 4, i));
    Attrs other = {{"shape", {10}}, {"seed", 9}, {"offset", 5}};
    std::vector<float> c = run_forward_on(Device::CPU, op, other)[0].to_floats();
    int same = 0;
    for (int i = 0; i < 10; ++i) same += a[i] == c[i];
    EXPECT_EQ(same, 0) << op << ": offset 5 repeats offset 4";
  }
}

TEST(Philox, DrawShapeAndBadAttributes) {
  Tensor t = run_forward_on(Device::CPU, "random_normal",
                            {{"shape", {2, 3, 4}}, {"seed", 1}, {"offset", 0}})[0];
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(t.dtype(), DType::F32);
  try {
    run_forward_on(Device::CPU, "random_uniform", {{"shape", {2, -1}}, {"seed", 1}, {"offset", 0}});
    FAIL() << "negative dimension accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
  }
  try {
    run_forward_on(Device::CPU, "random_uniform", {{"shape", {2}}, {"seed", -3}, {"offset", 0}});
    FAIL() << "negative seed accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("seed"), std::string::npos) << e.what();
  }
}

}  // namespace
