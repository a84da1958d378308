#include "runtime/file_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>

#include "runtime/error.h"
#include "runtime/fault.h"

namespace sd {
namespace {

std::string os_error(int err = errno) { return std::strerror(err); }

std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void Fd::close(const std::string& path) {
  int fd = fd_;
  fd_ = -1;
  // Delayed write errors (NFS, some full disks) surface only here.
  if (fd >= 0 && ::close(fd) != 0) fail("cannot write '", path, "': ", os_error());
}

Fd open_regular_file(const std::string& path, const std::string& what) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!f.is_open()) fail("cannot open ", what, " '", path, "': ", os_error());
  struct stat st;
  if (::fstat(f.get(), &st) != 0) fail("cannot stat ", what, " '", path, "': ", os_error());
  if (S_ISDIR(st.st_mode)) fail(what, " '", path, "' is a directory, not a file");
  if (!S_ISREG(st.st_mode))
    fail(what, " '", path, "' is not a regular file (a pipe or a device cannot be read as one)");
  int flags = ::fcntl(f.get(), F_GETFL);
  if (flags >= 0) ::fcntl(f.get(), F_SETFL, flags & ~O_NONBLOCK);
  return f;
}

std::string read_regular_file(const std::string& path, const std::string& what,
                              size_t max_bytes) {
  Fd f = open_regular_file(path, what);
  struct stat st;
  if (::fstat(f.get(), &st) != 0) fail("cannot stat ", what, " '", path, "': ", os_error());
  if (uint64_t(st.st_size) > max_bytes)
    fail(what, " '", path, "' has ", st.st_size, " bytes, more than the limit of ", max_bytes);
  std::string text(size_t(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t r = ::read(f.get(), text.data() + got, text.size() - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("cannot read ", what, " '", path, "': ", os_error());
    if (r == 0) break;  // shrank while we read: take what is there
    got += size_t(r);
  }
  text.resize(got);
  return text;
}

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("cannot write '", path, "': ", os_error());
    p += w;
    n -= size_t(w);
  }
}

AtomicFile::AtomicFile(std::string path)
    : path_(std::move(path)), tmp_(path_ + ".tmp." + std::to_string(::getpid())) {
  fd_ = Fd(::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd_.is_open()) fail("cannot create '", tmp_, "': ", os_error());
}

AtomicFile::~AtomicFile() {
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::commit() {
  if (::fsync(fd_.get()) != 0) fail("cannot write '", tmp_, "' (fsync): ", os_error());
  fd_.close(tmp_);
  fault::point("rename:" + base_of(path_));
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail("cannot rename '", tmp_, "' to '", path_, "': ", os_error());
  committed_ = true;
  // Make the rename itself durable. Some filesystems refuse fsync on a directory; the file is
  // in place by now either way, so that is not an error.
  Fd d(::open(dir_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.is_open()) (void)::fsync(d.get());
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

std::vector<std::string> remove_stale_temp_files(const std::string& dir,
                                                 const std::vector<std::string>& names) {
  std::vector<std::string> removed;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return removed;
  while (dirent* e = ::readdir(d)) {
    std::string file = e->d_name;
    size_t at = file.rfind(".tmp.");
    if (at == std::string::npos || at == 0) continue;
    if (!names.empty() && std::find(names.begin(), names.end(), file.substr(0, at)) == names.end())
      continue;
    const char* first = file.data() + at + 5;
    const char* last = file.data() + file.size();
    pid_t pid = 0;
    auto [end, ec] = std::from_chars(first, last, pid);
    if (ec != std::errc() || end != last || first == last || pid <= 0) continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to ask)
    std::string p = dir + "/" + file;
    if (::unlink(p.c_str()) == 0) removed.push_back(p);
  }
  ::closedir(d);
  return removed;
}

AppendFile::AppendFile(std::string path) : path_(std::move(path)) {
  fd_ = Fd(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!fd_.is_open()) fail("cannot open '", path_, "' for appending: ", os_error());
}

void AppendFile::sync() {
  if (::fsync(fd_.get()) != 0) fail("cannot write '", path_, "' (fsync): ", os_error());
}

void check_output_path(const std::string& path, const std::string& what) {
  SD_CHECK(!path.empty(), what, ": the path is empty");
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) fail(what, " '", path, "' is a directory; name a file");
    if (::access(path.c_str(), W_OK) != 0)
      fail(what, " '", path, "' cannot be written: ", os_error());
    if (!S_ISREG(st.st_mode)) return;  // a device or pipe is written in place
  } else if (errno != ENOENT) {
    fail(what, " '", path, "': ", os_error());
  }
  std::string dir = dir_of(path);
  if (::stat(dir.c_str(), &st) != 0)
    fail(what, " '", path, "': its directory '", dir, "' ",
         errno == ENOENT ? "does not exist" : os_error());
  if (!S_ISDIR(st.st_mode)) fail(what, " '", path, "': '", dir, "' is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    fail(what, " '", path, "': cannot create files in '", dir, "': ", os_error());
}

void write_output_file(const std::string& path, std::string_view bytes) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode)) {
    write_file_atomic(path, bytes);
    return;
  }
  // Renaming over a device, a pipe or a symlink would replace it rather than write to it.
  Fd f(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!f.is_open()) fail("cannot open '", path, "' for writing: ", os_error());
  write_all(f.get(), bytes.data(), bytes.size(), path);
  f.close(path);
}

}  // namespace sd
