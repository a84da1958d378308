// `simdiff op` end to end through the built binary, plus the shared option parser (tools/cli.h).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/safetensors.h"
#include "tools/cli.h"
#include "tests/run_simdiff.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using namespace sd;

namespace {

using Result = RunResult;
Result simdiff(const std::string& args) { return run_simdiff(args); }

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "output: " << (haystack)

}  // namespace

TEST(CmdOp, AddRoundTripAndGradients) {
  TempDir dir;
  save_safetensors(dir / "in", {{"a", Tensor::from_floats({1, 2, 3, 4, 5, 6}, {2, 3})},
                                {"b", Tensor::from_floats({10, 20, 30}, {3})}});
  save_safetensors(dir / "g", {{"y", Tensor::from_floats({1, 1, 1, 2, 2, 2}, {2, 3})}});
  Result r = simdiff("op add --inputs " + q(dir / "in") + " --grad-outputs " + q(dir / "g") +
                     " --out " + q(dir / "out"));
  ASSERT_EQ(r.status, 0) << r.output;
  SafeTensors st = load_safetensors(dir / "out");
  EXPECT_EQ(st.tensors.at("y").shape(), (Shape{2, 3}));
  EXPECT_EQ(st.tensors.at("y").to_floats(), (std::vector<float>{11, 22, 33, 14, 25, 36}));
  EXPECT_EQ(st.tensors.at("grad.a").to_floats(), (std::vector<float>{1, 1, 1, 2, 2, 2}));
  EXPECT_EQ(st.tensors.at("grad.b").to_floats(), (std::vector<float>{3, 3, 3}));  // summed
  EXPECT_EQ(st.metadata.at("op"), "add");
  EXPECT_EQ(st.tensors.size(), 3u);
}

TEST(CmdOp, SiluGradientIsAnalyticDerivative) {
  TempDir dir;
  std::vector<float> x = {-4, -1.5f, -0.25f, 0, 0.3f, 1, 2.5f};
  std::vector<float> g = {1, -2, 0.5f, 3, 1, -1, 0.25f};
  save_safetensors(dir / "x", {{"x", Tensor::from_floats(x, {7})}});
  save_safetensors(dir / "g", {{"y", Tensor::from_floats(g, {7})}});
  Result r = simdiff("op silu --inputs " + q(dir / "x") + " --grad-outputs " + q(dir / "g") +
                     " --out " + q(dir / "out") + " --device cpu");
  ASSERT_EQ(r.status, 0) << r.output;
  SafeTensors st = load_safetensors(dir / "out");
  std::vector<float> y = st.tensors.at("y").to_floats(), dx = st.tensors.at("grad.x").to_floats();
  ASSERT_EQ(dx.size(), x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    double s = 1 / (1 + std::exp(-double(x[i])));
    EXPECT_NEAR(y[i], x[i] * s, 1e-6) << i;
    EXPECT_NEAR(dx[i], g[i] * s * (1 + x[i] * (1 - s)), 1e-6) << i;
  }
}

TEST(CmdOp, MissingGradOutputCountsAsZero) {
  TempDir dir;
  save_safetensors(dir / "x", {{"x", Tensor::from_floats({1, -2}, {2})}});
  save_safetensors(dir / "g", {});
  Result r = simdiff("op gelu --inputs " + q(dir / "x") + " --grad-outputs " + q(dir / "g") +
                     " --out " + q(dir / "out"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(load_safetensors(dir / "out").tensors.at("grad.x").to_floats(),
            (std::vector<float>{0, 0}));
}

TEST(CmdOp, AttributesAndF64Inputs) {
  TempDir dir;
  Tensor x = Tensor::empty({3}, DType::F64);
  for (int i = 0; i < 3; ++i) x.data<double>()[i] = 0.1 * (i + 1);
  save_safetensors(dir / "x", {{"x", x}});
  Result r = simdiff("op scale --inputs " + q(dir / "x") + " --attrs='{\"s\": 2.5}' --out " +
                     q(dir / "out"));
  ASSERT_EQ(r.status, 0) << r.output;
  SafeTensors st = load_safetensors(dir / "out");
  const Tensor& y = st.tensors.at("y");
  ASSERT_EQ(y.dtype(), DType::F64);
  for (int i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(y.data<double>()[i], 2.5 * 0.1 * (i + 1));
  EXPECT_EQ(nlohmann::json::parse(st.metadata.at("attrs")), nlohmann::json({{"s", 2.5}}));
}

TEST(CmdOp, ListIsJsonWithTheOps) {
  Result r = simdiff("op --list");
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  ASSERT_TRUE(j.is_array());
  bool found = false;
  for (auto& op : j) found |= op["name"] == "add";
  EXPECT_TRUE(found) << r.output;
}

TEST(CmdOp, HelpAndDescribe) {
  Result r = simdiff("op silu --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_HAS(r.output, "silu: x * sigmoid(x)");
  EXPECT_HAS(r.output, "inputs:");
  r = simdiff("op --describe scale");
  EXPECT_EQ(r.status, 0);
  EXPECT_HAS(r.output, "(required)");
  r = simdiff("op --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_HAS(r.output, "--grad-outputs FILE");
  EXPECT_HAS(r.output, "(default: cpu)");
  r = simdiff("--help");
  EXPECT_EQ(r.status, 0);
  EXPECT_HAS(r.output, "op ");
}

TEST(CmdOp, BadInvocationsNameTheProblem) {
  TempDir dir;
  save_safetensors(dir / "a_only", {{"a", Tensor::from_floats({1}, {1})}});
  save_safetensors(dir / "extra", {{"x", Tensor::from_floats({1}, {1})},
                                   {"z", Tensor::from_floats({1}, {1})}});
  std::string out = " --out " + q(dir / "out");

  Result r = simdiff("op nosuch --inputs " + q(dir / "a_only") + out);
  EXPECT_EQ(r.status, 2);
  EXPECT_HAS(r.output, "simdiff: error: unknown op 'nosuch'");
  EXPECT_HAS(r.output, "add");

  r = simdiff("op add --inputs " + q(dir / "a_only") + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_HAS(r.output, "missing input 'b'");
  EXPECT_HAS(r.output, "expected: a, b");

  r = simdiff("op silu --inputs " + q(dir / "extra") + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_HAS(r.output, "tensor 'z' is not an input of op 'silu'");

  r = simdiff("op scale --inputs " + q(dir / "extra") + " --attrs '{\"s\": 2' " + out);
  EXPECT_EQ(r.status, 2);
  EXPECT_HAS(r.output, "--attrs: not valid JSON");

  r = simdiff("op silu --inputs " + q(dir / "a_only") + " --attrs '{\"k\": 1}'" + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_HAS(r.output, "unknown attribute 'k'");

  r = simdiff("op add --inputs " + q(dir / "a_only") + " --bogus 1" + out);
  EXPECT_EQ(r.status, 2);
  EXPECT_HAS(r.output, "unknown option --bogus for 'simdiff op'; see simdiff op --help");

  r = simdiff("op add --input " + q(dir / "a_only") + out);
  EXPECT_EQ(r.status, 2);
  EXPECT_HAS(r.output, "did you mean --inputs?");

  r = simdiff("op silu --inputs " + q(dir / "a_only"));
  EXPECT_EQ(r.status, 2);
  EXPECT_HAS(r.output, "needs --out FILE");

  r = simdiff("op silu --inputs " + q(dir / "missing.safetensors") + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_HAS(r.output, "cannot open");

  r = simdiff("nosuch");
  EXPECT_EQ(r.status, 2);
  EXPECT_HAS(r.output, "unknown command 'nosuch'");
  EXPECT_FALSE(fs::exists(dir / "out"));
}

// ---- the option parser itself ----

namespace {

const cli::Command kTest{"simdiff test",
                         "FILE",
                         1,
                         "A test command.",
                         {{"steps", "N", "", "how many steps", true},
                          {"lr", "RATE", "0.001", "learning rate"},
                          {"name", "TEXT", "", "a name"},
                          {"verbose", "", "", "say more"}},
                         ""};

cli::Args parse(std::vector<std::string> words) {
  words.insert(words.begin(), "test");
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  return cli::parse(kTest, int(argv.size()), argv.data());
}

void expect_usage_error(std::vector<std::string> words, const std::string& needle) {
  try {
    parse(words);
    ADD_FAILURE() << "expected a usage error containing " << needle;
  } catch (const cli::UsageError& e) {
    EXPECT_HAS(std::string(e.what()), needle);
  }
}

}  // namespace

TEST(CliParser, ParsesValuesSwitchesDefaultsAndPositionals) {
  cli::Args a = parse({"data.bin", "--steps", "20", "--name=x=y", "--verbose"});
  EXPECT_EQ(a.get_int("steps"), 20);
  EXPECT_DOUBLE_EQ(a.get_double("lr"), 0.001);
  EXPECT_EQ(a.get("name"), "x=y");
  EXPECT_TRUE(a.flag("verbose"));
  EXPECT_EQ(a.positional, (std::vector<std::string>{"data.bin"}));
  EXPECT_FALSE(a.help);

  a = parse({"--steps", "-5", "--", "--not-an-option"});
  EXPECT_EQ(a.get_int("steps"), -5);
  EXPECT_FALSE(a.has("name"));
  EXPECT_FALSE(a.flag("verbose"));
  EXPECT_EQ(a.positional, (std::vector<std::string>{"--not-an-option"}));

  a = parse({"--help"});  // required options are not enforced under --help
  EXPECT_TRUE(a.help);
}

TEST(CliParser, RefusesMalformedCommandLines) {
  expect_usage_error({"--stepz", "3"}, "unknown option --stepz for 'simdiff test' (did you mean "
                                       "--steps?); see simdiff test --help");
  expect_usage_error({"--lr", "1"}, "'simdiff test' needs option --steps N");
  expect_usage_error({"--steps"}, "option --steps needs a value (N)");
  expect_usage_error({"--steps", "--verbose"}, "option --steps needs a value (N)");
  expect_usage_error({"--steps", "1", "--steps", "2"}, "option --steps given twice");
  expect_usage_error({"--steps", "1", "--verbose=yes"}, "--verbose is a switch");
  expect_usage_error({"--steps", "1", "a", "b"}, "unexpected argument 'b'");
  expect_usage_error({"--steps", "1", "-x"}, "unknown option -x");
  try {
    parse({"--steps", "ten"}).get_int("steps");
    ADD_FAILURE() << "expected a usage error";
  } catch (const cli::UsageError& e) {
    EXPECT_HAS(std::string(e.what()), "--steps for 'simdiff test' expected an integer, got 'ten'");
  }
}

// Numbers are parsed whole, must be finite and in range: no truncation to 32 bits, no NaN.
TEST(CliParser, NumbersAreParsedWholeAndRangeChecked) {
  auto usage_error = [](auto f) -> std::string {
    try {
      f();
    } catch (const cli::UsageError& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_HAS(usage_error([] { parse({"--steps", "4294967297"}).get_int("steps", 1, INT32_MAX); }),
             "--steps for 'simdiff test' expected an integer in 1..2147483647, got '4294967297'");
  EXPECT_HAS(usage_error([] { parse({"--steps", "0"}).get_int("steps", 1); }),
             "expected an integer >= 1, got '0'");
  for (std::string bad : {"nan", "inf", "-inf", "1e400", "2x", ""})
    EXPECT_HAS(usage_error([&] { parse({"--steps", "1", "--lr", bad}).get_double("lr"); }),
               "--lr for 'simdiff test' expected a finite number, got '" + bad + "'");
  EXPECT_HAS(usage_error([] { parse({"--steps", "1", "--lr", "-1"}).get_double("lr", 0); }),
             "expected a finite number >= 0, got '-1'");
  for (std::string bad : {"5,1", "nan,nan", "1,2x", "1", ",", "1,inf"})
    EXPECT_HAS(usage_error([&] { parse({"--steps", "1", "--name", bad}).get_interval("name"); }),
               "expected LO,HI: two finite numbers with LO <= HI, got '" + bad + "'");
  EXPECT_EQ(parse({"--steps", "1", "--name", "-1.5,2"}).get_interval("name"),
            std::make_pair(-1.5, 2.0));
}

TEST(CliParser, HelpTextListsEveryOption) {
  std::string h = cli::help_text(kTest);
  EXPECT_HAS(h, "usage: simdiff test FILE --steps N [options]");
  EXPECT_HAS(h, "A test command.");
  EXPECT_HAS(h, "--lr RATE");
  EXPECT_HAS(h, "learning rate (default: 0.001)");
  EXPECT_HAS(h, "how many steps (required)");
  EXPECT_HAS(h, "--verbose");
  EXPECT_HAS(h, "-h, --help");
}
