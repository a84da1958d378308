// One loop over the registry: every differentiable op, every test case, fresh random inputs,
// finite differences in double precision against the hand-written backward.
#include <gtest/gtest.h>

#include "autograd/gradcheck.h"
#include "runtime/allocator.h"

namespace sd {
namespace {

std::vector<std::string> op_names() {
  std::vector<std::string> v;
  for (auto* d : Registry::get().all()) v.push_back(d->name);
  return v;
}

class OpGradcheck : public ::testing::TestWithParam<std::string> {};

TEST_P(OpGradcheck, MatchesFiniteDifferences) {
  const OpDef& def = Registry::get().at(GetParam());
  ASSERT_FALSE(def.tests.empty()) << def.name << " has no test cases";
  if (!def.differentiable()) GTEST_SKIP() << def.name << " is not differentiable";
  set_alloc_poison(true);
  uint64_t seed = 1234;
  for (const TestCase& tc : def.tests) {
    GradcheckResult r = gradcheck_op(def, tc, seed++);
    EXPECT_TRUE(r.ok) << def.name << " [" << tc.label << "] attrs " << tc.attrs.dump()
                      << ": max abs err " << r.max_abs_err << ", worst " << r.worst;
  }
  set_alloc_poison(false);
}

INSTANTIATE_TEST_SUITE_P(Registry, OpGradcheck, ::testing::ValuesIn(op_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace sd
