// safetensors files: checkpoints, `simdiff op` inputs and outputs, and tensors exchanged with
// Python. Layout: 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value"}}
// padded with spaces, then the raw little-endian tensor data; offsets count from the start of
// the data section. Files are untrusted: every size and offset is checked before it is used.
#pragma once
#include <map>
#include <string>

#include "runtime/tensor.h"

namespace sd {

struct SafeTensors {
  std::map<std::string, Tensor> tensors;  // CPU tensors
  std::map<std::string, std::string> metadata;
};

// Reads and validates `path`. Dtypes F32, F64, BF16 and I32 load; any other dtype (F16, I64, ...)
// is refused naming the tensor. Errors name the path, the tensor, expected vs found, and the byte
// offset for structural problems.
SafeTensors load_safetensors(const std::string& path);

// Writes atomically: to `path`.tmp.<pid>, fsync, then rename over `path`, so a reader never sees
// a partial file and a crash leaves the previous file intact. Device tensors are copied to the
// host. The result loads in Python's `safetensors`.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace sd
