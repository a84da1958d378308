#include "runtime/safetensors.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "runtime/file_io.h"
#include "runtime/json_text.h"

namespace sd {
namespace {

using nlohmann::json;

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian and is copied without byte swaps");

constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's limit
constexpr int kMaxDepth = 16;
const char* const kMetadataKey = "__metadata__";

// Dtypes of the format that simdiff does not hold, so that they are refused by name rather than
// reported as garbage.
const std::set<std::string> kOtherDtypes = {"BOOL", "U8",  "I8",  "I16", "U16", "F16",     "U32",
                                            "I64",  "U64", "F8_E4M3", "F8_E5M2"};

// A JSON value for an error message with its type, cut short so that a hostile header cannot
// flood the log.
std::string typed(const json& v) { return std::string(v.type_name()) + " " + brief(v, 80); }

// pread until n bytes arrived; an early end means the file shrank after we measured it.
void read_exact(int fd, void* dst, size_t n, uint64_t offset, const std::string& path,
                const std::string& what) {
  char* p = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, off_t(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(path, ": cannot read ", what, " at byte ", offset, ": ", std::strerror(errno));
    if (r == 0) fail(path, ": file ended while reading ", what, " at byte ", offset, " (", n,
                     " bytes missing; was it truncated?)");
    p += r;
    n -= size_t(r);
    offset += uint64_t(r);
  }
}

// A non-negative JSON integer that fits int64, or an error through `bad`.
template <class Bad>
uint64_t get_count(const json& v, Bad bad) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) bad("a value below 2^63");
    return u;
  }
  if (v.is_number_integer()) {
    if (v.get<int64_t>() < 0) bad("a non-negative integer");
    return uint64_t(v.get<int64_t>());
  }
  bad("a non-negative integer");
  return 0;
}

struct Entry {
  std::string key;
  DType dtype;
  Shape shape;
  uint64_t begin, end;  // within the data section
};

// Validates one header entry against a data section of `data_size` bytes starting at file byte
// `data_start`.
Entry parse_entry(const std::string& path, const std::string& key, const json& v,
                  uint64_t data_start, uint64_t data_size) {
  const std::string where = path + ": tensor '" + key + "'";
  const std::string in_header =
      " (in the JSON header at bytes [8, " + std::to_string(data_start) + "))";
  if (!v.is_object())
    fail(where, ": expected an object with dtype, shape and data_offsets, found ", typed(v),
         in_header);
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!v.contains(field))
      fail(where, ": missing field '", field, "', found ", typed(v), in_header);

  Entry e{key, DType::F32, {}, 0, 0};
  const json& jd = v["dtype"];
  if (!jd.is_string()) fail(where, ": 'dtype' expected a string, found ", typed(jd), in_header);
  std::string dname = jd.get<std::string>();
  if (dname == "F32" || dname == "F64" || dname == "BF16" || dname == "I32")
    e.dtype = dtype_from_name(dname);
  else if (kOtherDtypes.count(dname))
    fail(where, ": dtype ", dname, " is not supported by simdiff (expected F32, F64, BF16 or I32;",
         " convert the tensor before saving)");
  else
    fail(where, ": unknown dtype '", dname, "' (expected F32, F64, BF16 or I32)");

  const json& js = v["shape"];
  if (!js.is_array())
    fail(where, ": 'shape' expected an array of integers, found ", typed(js), in_header);
  // Elements = product of the dimensions, checked for overflow even when a zero dimension would
  // make it 0, so that no later shape arithmetic can overflow either.
  uint64_t numel = 1, nonzero = 1;
  for (size_t i = 0; i < js.size(); ++i) {
    uint64_t d = get_count(js[i], [&](const char* expected) {
      fail(where, ": shape dimension ", i, " expected ", expected, ", found ", typed(js[i]),
           in_header);
    });
    e.shape.push_back(int64_t(d));
    if (d == 0) numel = 0;
    else if (__builtin_mul_overflow(nonzero, d, &nonzero) ||
             nonzero > uint64_t(std::numeric_limits<int64_t>::max()))
      fail(where, ": shape ", shape_str(e.shape), "... has too many elements (overflow)");
  }
  if (numel) numel = nonzero;
  uint64_t nbytes;
  if (__builtin_mul_overflow(numel, uint64_t(dtype_size(e.dtype)), &nbytes))
    fail(where, ": shape ", shape_str(e.shape), " of ", dname, " overflows the byte count");

  const json& jo = v["data_offsets"];
  if (!jo.is_array() || jo.size() != 2)
    fail(where, ": 'data_offsets' expected an array [begin, end], found ", typed(jo), in_header);
  auto bad_offset = [&](const char* expected) {
    fail(where, ": 'data_offsets' expected ", expected, ", found ", typed(jo), in_header);
  };
  e.begin = get_count(jo[0], bad_offset);
  e.end = get_count(jo[1], bad_offset);
  if (e.begin > e.end)
    fail(where, ": data_offsets [", e.begin, ", ", e.end, "] expected begin <= end");
  if (e.end > data_size)
    fail(where, ": data_offsets [", e.begin, ", ", e.end, "] out of range: the data section has ",
         data_size, " bytes (file bytes [", data_start, ", ", data_start + data_size,
         ")), the tensor would end at file byte ", data_start + e.end, " (truncated file?)");
  if (e.end - e.begin != nbytes)
    fail(where, ": data_offsets [", e.begin, ", ", e.end, "] at file byte ", data_start + e.begin,
         " span ", e.end - e.begin, " bytes, expected ", nbytes, " bytes for ", dname, " shape ",
         shape_str(e.shape));
  return e;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& m) {
  std::map<std::string, std::string> out;
  if (!m.is_object())
    fail(path, ": '", kMetadataKey, "' expected an object of strings, found ", typed(m));
  for (auto& [k, v] : m.items()) {
    if (!v.is_string())
      fail(path, ": '", kMetadataKey, "' entry '", k, "' expected a string, found ", typed(v));
    out[k] = v.get<std::string>();
  }
  return out;
}

}  // namespace

SafeTensors load_safetensors(const std::string& path) {
  Fd f = open_regular_file(path, "safetensors file");
  struct stat st;
  if (::fstat(f.get(), &st) != 0) fail("cannot stat '", path, "': ", std::strerror(errno));
  const uint64_t size = uint64_t(st.st_size);

  if (size < 8)
    fail(path, ": truncated: the file has ", size, " bytes, expected at least 8 for the header ",
         "length at byte 0 (not a safetensors file?)");
  unsigned char len_bytes[8];
  read_exact(f.get(), len_bytes, 8, 0, path, "the header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > kMaxHeader)
    fail(path, ": header length ", n, " at byte 0 exceeds the limit of ", kMaxHeader,
         " bytes (corrupt, or not a safetensors file)");
  if (n < 2) fail(path, ": header length ", n, " at byte 0 is too small, expected at least 2");
  if (n > size - 8)
    fail(path, ": truncated: header length ", n, " at byte 0 runs past the end of the file (",
         size, " bytes, so at most ", size - 8, " header bytes)");

  std::string text(n, '\0');
  read_exact(f.get(), text.data(), n, 8, path, "the JSON header");
  // Bounded nesting and no duplicate keys (runtime/json_text.h): a duplicated tensor name
  // would otherwise silently hide a tensor.
  json header = parse_json(text, path + ": the header (bytes [8, " + std::to_string(8 + n) + "))",
                           kMaxDepth, 8);
  if (!header.is_object())
    fail(path, ": the header (bytes [8, ", 8 + n, ")) expected a JSON object, found ",
         typed(header));

  const uint64_t data_start = 8 + n, data_size = size - data_start;
  SafeTensors out;
  std::vector<Entry> entries;
  for (auto& [key, v] : header.items()) {
    if (key == kMetadataKey) out.metadata = parse_metadata(path, v);
    else entries.push_back(parse_entry(path, key, v, data_start, data_size));
  }

  // Overlap: sorted by begin, each non-empty range must start at or after the previous end.
  std::vector<const Entry*> order;
  for (auto& e : entries)
    if (e.end > e.begin) order.push_back(&e);
  std::sort(order.begin(), order.end(),
            [](const Entry* a, const Entry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < order.size(); ++i) {
    const Entry& a = *order[i - 1];
    const Entry& b = *order[i];
    if (b.begin < a.end)
      fail(path, ": tensors '", a.key, "' (data bytes [", a.begin, ", ", a.end, ")) and '", b.key,
           "' (data bytes [", b.begin, ", ", b.end, ")) overlap, starting at file byte ",
           data_start + b.begin);
  }

  for (auto& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    if (t.nbytes())
      read_exact(f.get(), t.raw(), t.nbytes(), data_start + e.begin, path, "tensor '" + e.key + "'");
    out.tensors.emplace(e.key, std::move(t));
  }
  return out;
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Larger elements first, so that every tensor starts aligned to its element size (the data
  // section itself starts at a multiple of 8), as the reference writer does.
  std::vector<std::pair<std::string, Tensor>> order;
  for (auto& [name, t] : tensors) {
    SD_CHECK(name != kMetadataKey, "save_safetensors '", path, "': '", kMetadataKey,
             "' is reserved and cannot name a tensor");
    SD_CHECK(t.defined(), "save_safetensors '", path, "': tensor '", name, "' is undefined");
    order.emplace_back(name, t.to(Device::CPU));
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second.dtype()) > dtype_size(b.second.dtype());
  });

  json header = json::object();
  uint64_t offset = 0;
  for (auto& [name, t] : order) {
    header[name] = {{"dtype", dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {  // a name or metadata string that is not UTF-8
    std::string reason = e.what();  // "[json.exception.type_error.316] invalid UTF-8 byte ..."
    fail("save_safetensors '", path, "': cannot encode the header: ",
         reason.substr(reason.find("] ") + 2));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = (uint64_t(text.size()) >> (8 * i)) & 0xff;

  AtomicFile f(path);
  f.write(len_bytes, 8);
  f.write(text);
  for (auto& [name, t] : order) f.write(t.raw(), t.nbytes());
  f.commit();
}

}  // namespace sd
