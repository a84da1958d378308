#include "tools/data/read_file.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "runtime/error.h"

namespace sd {

std::vector<uint8_t> read_file_maybe_gz(const std::string& path) {
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail("cannot open '", path, "': ", errno ? std::strerror(errno) : "out of memory");

  std::vector<uint8_t> bytes;
  const size_t chunk = size_t(1) << 20;
  for (;;) {
    size_t have = bytes.size();
    bytes.resize(have + chunk);
    int n = gzread(f, bytes.data() + have, unsigned(chunk));
    bytes.resize(have + size_t(n > 0 ? n : 0));
    if (n <= 0) break;
  }
  int errnum = Z_OK;
  std::string msg = gzerror(f, &errnum);
  gzclose(f);
  // A gzip stream cut short reads as Z_BUF_ERROR ("unexpected end of file").
  if (errnum != Z_OK) fail("cannot read '", path, "': ", msg, " (corrupt or truncated gzip?)");
  return bytes;
}

}  // namespace sd
