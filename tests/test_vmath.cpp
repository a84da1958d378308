// kernels/cpu/vmath.h: the vectorisable f32 exp, sigmoid and erf that the fused norm and GELU
// kernels use, against libm in double over their whole range, with the stated error bounds, and
// their behaviour at the ends (no NaN from infinities, saturation where the model needs it).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/cpu/vmath.h"

using sd::cpu::verf;
using sd::cpu::vexp;
using sd::cpu::vsigmoid;

namespace {

TEST(Vmath, ExpWithinTwoUlpOnItsRange) {
  double worst = 0;
  for (float x = -87.f; x <= 88.f; x += 1.37e-3f) {
    double want = std::exp(double(x));
    worst = std::max(worst, std::abs(vexp(x) - want) / want);
  }
  EXPECT_LE(worst, 2.4e-7) << "relative error (2 ulp of f32 is 2.4e-7)";
  EXPECT_EQ(vexp(0.f), 1.f);
}

TEST(Vmath, ExpAndSigmoidAtTheEnds) {
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_GE(vexp(-inf), 0.f);
  EXPECT_LT(vexp(-inf), 1e-37f);
  EXPECT_TRUE(std::isfinite(vexp(inf)));
  EXPECT_EQ(vsigmoid(-inf), vsigmoid(-1e30f));
  EXPECT_LT(vsigmoid(-100.f), 1e-37f);
  EXPECT_EQ(vsigmoid(100.f), 1.f);
  EXPECT_EQ(vsigmoid(inf), 1.f);
  for (float x = -30.f; x <= 30.f; x += 0.0137f) {
    double want = 1 / (1 + std::exp(-double(x)));
    EXPECT_NEAR(vsigmoid(x), want, 4e-7 * want) << x;
  }
}

TEST(Vmath, ErfWithinFourUlp) {
  double worst = 0;
  for (float x = -6.f; x <= 6.f; x += 1.1e-4f) {
    double want = std::erf(double(x));
    if (want == 0) continue;
    worst = std::max(worst, std::abs(verf(x) - want) / std::abs(want));
  }
  EXPECT_LE(worst, 4.8e-7) << "relative error (4 ulp of f32 is 4.8e-7)";
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(verf(inf), 1.f);
  EXPECT_EQ(verf(-inf), -1.f);
  EXPECT_EQ(verf(0.f), 0.f);
}

TEST(Vmath, DoubleKeepsLibm) {
  EXPECT_EQ(vexp(0.7), std::exp(0.7));
  EXPECT_EQ(verf(0.7), std::erf(0.7));
}

}  // namespace
