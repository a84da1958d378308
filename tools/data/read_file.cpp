#include "tools/data/read_file.h"

#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "runtime/error.h"
#include "runtime/file_io.h"

namespace sd {

std::vector<uint8_t> read_file_maybe_gz(const std::string& path) {
  Fd file = open_regular_file(path, "data file");  // a FIFO would block, a directory mislead
  int fd = ::dup(file.get());
  if (fd < 0) fail("cannot open '", path, "': ", std::strerror(errno));
  gzFile f = gzdopen(fd, "rb");  // owns fd from here
  if (!f) {
    ::close(fd);
    fail("cannot open '", path, "': out of memory");
  }

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
