// safetensors reader and writer: round trips of every dtype, and hostile files, each refused with
// a message that names the file and the specific problem.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>

#include "runtime/safetensors.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using namespace sd;

namespace {


void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((n >> (8 * i)) & 0xff);
  return s;
}

// A file with the given JSON header and `data_bytes` zero bytes of data.
std::string write_file(const TempDir& dir, const std::string& header, size_t data_bytes) {
  std::string path = dir / "t.safetensors";
  write_bytes(path, le64(header.size()) + header + std::string(data_bytes, '\0'));
  return path;
}

// Loading `path` throws sd::Error whose message contains the path and every needle.
void expect_load_error(const std::string& path, std::initializer_list<std::string> needles) {
  try {
    load_safetensors(path);
    ADD_FAILURE() << "expected an error loading " << path;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message lacks the path: " << msg;
    for (auto& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "message: " << msg << "\nexpected: " << n;
  }
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

}  // namespace

TEST(SafeTensors, RoundTripsEveryDtypeAndMetadata) {
  TempDir dir;
  Tensor f64 = Tensor::empty({5}, DType::F64);
  for (int i = 0; i < 5; ++i) f64.data<double>()[i] = 1.0 / (i + 3);
  Tensor bf16 = Tensor::empty({3, 1, 2}, DType::BF16);
  for (int i = 0; i < 6; ++i) bf16.data<uint16_t>()[i] = f32_to_bf16(0.5f * float(i) - 1.25f);
  std::map<std::string, Tensor> tensors = {
      {"f32", Tensor::from_floats({1, -2, 3.5f, 0, 1e-30f, -7}, {2, 3})},
      {"f64", f64},
      {"bf16", bf16},
      {"i32", Tensor::from_ints({7, -1, 0, 2147483647}, {4})},
      {"scalar", Tensor::from_floats({42}, {})},
      {"empty", Tensor::empty({0, 3})},
      {"empty_i32", Tensor::empty({0}, DType::I32)},
      {"layer.0/weight", Tensor::from_floats({9}, {1, 1})}};
  std::map<std::string, std::string> meta = {{"step", "1200"}, {"config", "{\"a\": [1, 2]}"},
                                             {"note", "caf\xc3\xa9"}};
  std::string path = dir / "rt.safetensors";
  save_safetensors(path, tensors, meta);

  SafeTensors st = load_safetensors(path);
  EXPECT_EQ(st.metadata, meta);
  ASSERT_EQ(st.tensors.size(), tensors.size());
  for (auto& [name, t] : tensors) {
    ASSERT_TRUE(st.tensors.count(name)) << name;
    EXPECT_TRUE(same_bytes(st.tensors.at(name), t)) << name << ": " << st.tensors.at(name).desc();
  }
  EXPECT_EQ(st.tensors.at("scalar").ndim(), 0);
}

TEST(SafeTensors, HeaderIsPaddedToEightBytesAndTensorsAligned) {
  TempDir dir;
  std::string path = dir / "pad.safetensors";
  save_safetensors(path, {{"a", Tensor::from_ints({1}, {1})},
                          {"b", Tensor::full({3}, 1.0, DType::F64)},
                          {"c", Tensor::empty({3}, DType::BF16)}});
  std::ifstream f(path, std::ios::binary);
  unsigned char len[8];
  f.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  EXPECT_EQ(n % 8, 0u);
  std::string header(n, '\0');
  f.read(header.data(), std::streamsize(n));
  auto j = nlohmann::json::parse(header);
  for (auto& [name, e] : j.items()) {
    uint64_t begin = e["data_offsets"][0];
    size_t size = dtype_size(dtype_from_name(e["dtype"]));
    EXPECT_EQ(begin % size, 0u) << name << " at " << begin;
  }
  EXPECT_EQ(fs::file_size(path), 8 + n + 4 + 24 + 6);
}

TEST(SafeTensors, NoMetadataAndNoTensors) {
  TempDir dir;
  std::string path = dir / "empty.safetensors";
  save_safetensors(path, {});
  SafeTensors st = load_safetensors(path);
  EXPECT_TRUE(st.tensors.empty());
  EXPECT_TRUE(st.metadata.empty());
}

TEST(SafeTensors, AcceptsGapsAndSpacePaddedHeaders) {
  TempDir dir;
  // Four bytes of gap before 'x' and after it; the header ends in spaces.
  std::string path = write_file(
      dir, R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}      )", 12);
  SafeTensors st = load_safetensors(path);
  EXPECT_EQ(st.tensors.at("x").item(), 0.0);
}

TEST(SafeTensors, WriteIsAtomicAndReplacesExistingFile) {
  TempDir dir;
  std::string path = dir / "ckpt.safetensors";
  write_bytes(path, "old contents");
  save_safetensors(path, {{"w", Tensor::from_floats({1, 2}, {2})}});
  SafeTensors st = load_safetensors(path);
  EXPECT_EQ(st.tensors.at("w").to_floats(), (std::vector<float>{1, 2}));
  save_safetensors(path, {{"w", Tensor::from_floats({3}, {1})}});
  EXPECT_EQ(load_safetensors(path).tensors.at("w").to_floats(), (std::vector<float>{3}));
  std::vector<std::string> files;
  for (auto& e : fs::directory_iterator(dir.path)) files.push_back(e.path().filename().string());
  EXPECT_EQ(files, (std::vector<std::string>{"ckpt.safetensors"}));
}

TEST(SafeTensors, WriteFailureNamesPathAndLeavesNothing) {
  TempDir dir;
  std::string path = dir / "missing_dir/x.safetensors";
  try {
    save_safetensors(path, {{"w", Tensor::from_floats({1}, {1})}});
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(dir.path));
}

TEST(SafeTensors, WriteRefusesReservedNameAndUndefinedTensor) {
  TempDir dir;
  EXPECT_THROW(save_safetensors(dir / "a", {{"__metadata__", Tensor::from_floats({1}, {1})}}),
               Error);
  EXPECT_THROW(save_safetensors(dir / "b", {{"w", Tensor()}}), Error);
  EXPECT_TRUE(fs::is_empty(dir.path));
}

TEST(SafeTensorsCorrupt, MissingFile) {
  TempDir dir;
  expect_load_error(dir / "nope.safetensors", {"cannot open"});
}

TEST(SafeTensorsCorrupt, ShorterThanHeaderLength) {
  TempDir dir;
  std::string path = dir / "short.safetensors";
  write_bytes(path, std::string("\x05\0\0", 3));
  expect_load_error(path, {"truncated", "3 bytes", "at least 8"});
}

TEST(SafeTensorsCorrupt, HeaderLengthPastEndOfFile) {
  TempDir dir;
  std::string path = dir / "cut.safetensors";
  write_bytes(path, le64(1000) + "{\"x\": {");
  expect_load_error(path, {"truncated", "header length 1000", "at byte 0", "15 bytes"});
}

TEST(SafeTensorsCorrupt, HugeHeaderLength) {
  TempDir dir;
  std::string path = dir / "huge.safetensors";
  write_bytes(path, le64(~uint64_t(0)) + "{}");
  expect_load_error(path, {"header length 18446744073709551615", "exceeds the limit"});
}

TEST(SafeTensorsCorrupt, HeaderLengthTooSmall) {
  TempDir dir;
  std::string path = dir / "tiny.safetensors";
  write_bytes(path, le64(1) + "{");
  expect_load_error(path, {"header length 1", "too small"});
}

TEST(SafeTensorsCorrupt, HeaderNotJson) {
  TempDir dir;
  expect_load_error(write_file(dir, "{\"x\": nope}", 0), {"not valid JSON", "at byte 15"});
}

TEST(SafeTensorsCorrupt, HeaderNotAnObject) {
  TempDir dir;
  expect_load_error(write_file(dir, "[1, 2]", 0), {"expected a JSON object", "array"});
}

TEST(SafeTensorsCorrupt, DeeplyNestedHeader) {
  TempDir dir;
  size_t depth = 1000000;
  std::string nested = std::string(depth, '[') + std::string(depth, ']');
  expect_load_error(write_file(dir, "{\"w\": " + nested + "}", 0),
                    {"nested deeper than 16 levels"});
}

TEST(SafeTensorsCorrupt, DuplicateKey) {
  TempDir dir;
  std::string e = R"({"dtype": "F32", "shape": [], "data_offsets": [0, 4]})";
  expect_load_error(write_file(dir, "{\"x\": " + e + ", \"x\": " + e + "}", 4),
                    {"'x' appears twice"});
}

TEST(SafeTensorsCorrupt, DataOffsetsOutOfRange) {
  TempDir dir;
  expect_load_error(
      write_file(dir, R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4),
      {"tensor 'x'", "[0, 8] out of range", "data section has 4 bytes"});
}

TEST(SafeTensorsCorrupt, DataOffsetsInconsistentWithShape) {
  TempDir dir;
  expect_load_error(
      write_file(dir, R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 24),
      {"tensor 'w'", "span 20 bytes", "expected 24 bytes", "[2, 3]"});
}

TEST(SafeTensorsCorrupt, DataOffsetsReversed) {
  TempDir dir;
  expect_load_error(
      write_file(dir, R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 8),
      {"tensor 'w'", "begin <= end"});
}

TEST(SafeTensorsCorrupt, OverlappingTensors) {
  TempDir dir;
  expect_load_error(
      write_file(dir,
                 R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                 R"( "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
                 24),
      {"'a'", "'b'", "overlap"});
}

TEST(SafeTensorsCorrupt, UnknownAndUnsupportedDtypes) {
  TempDir dir;
  expect_load_error(
      write_file(dir, R"({"q": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 1]}})", 1),
      {"tensor 'q'", "unknown dtype 'Q7'", "expected F32, F64, BF16 or I32"});
  expect_load_error(
      write_file(dir, R"({"h": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}})", 2),
      {"tensor 'h'", "F16 is not supported"});
}

TEST(SafeTensorsCorrupt, NegativeDimension) {
  TempDir dir;
  expect_load_error(
      write_file(dir, R"({"w": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 0]}})", 0),
      {"tensor 'w'", "shape dimension 1", "non-negative", "-3"});
}

TEST(SafeTensorsCorrupt, ElementCountOverflow) {
  TempDir dir;
  expect_load_error(
      write_file(dir,
                 R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 0],)"
                 R"( "data_offsets": [0, 0]}})",
                 0),
      {"tensor 'w'", "overflow"});
  expect_load_error(
      write_file(dir,
                 R"({"w": {"dtype": "F64", "shape": [4611686018427387904],)"
                 R"( "data_offsets": [0, 0]}})",
                 0),
      {"tensor 'w'", "overflow"});
}

TEST(SafeTensorsCorrupt, WrongFieldTypes) {
  TempDir dir;
  expect_load_error(write_file(dir, R"({"w": 3})", 0), {"tensor 'w'", "expected an object"});
  expect_load_error(write_file(dir, R"({"w": {"dtype": "F32", "shape": [1]}})", 0),
                    {"tensor 'w'", "missing field 'data_offsets'"});
  expect_load_error(
      write_file(dir, R"({"w": {"dtype": 1, "shape": [1], "data_offsets": [0, 4]}})", 4),
      {"tensor 'w'", "'dtype' expected a string", "number 1"});
  expect_load_error(
      write_file(dir, R"({"w": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}})", 4),
      {"tensor 'w'", "'shape' expected an array"});
  expect_load_error(
      write_file(dir, R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4),
      {"tensor 'w'", "shape dimension 0 expected a non-negative integer"});
  expect_load_error(
      write_file(dir, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4),
      {"tensor 'w'", "'data_offsets' expected an array [begin, end]"});
  expect_load_error(
      write_file(dir, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4),
      {"tensor 'w'", "'data_offsets' expected a non-negative integer"});
  expect_load_error(write_file(dir, R"({"__metadata__": {"step": 3}})", 0),
                    {"'__metadata__' entry 'step' expected a string"});
}
