// Whole-file reads for dataset loaders. Gzip is decoded transparently (zlib), so MNIST's
// distributed .gz files and their unpacked forms go through one path.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sd {

// Reads `path` fully, inflating it if it is gzip. Throws sd::Error naming the path when the file
// cannot be opened, is not a regular file, or the gzip stream is corrupt or truncated.
std::vector<uint8_t> read_file_maybe_gz(const std::string& path);

}  // namespace sd
