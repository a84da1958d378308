// Files on disk with every error checked and named (path and OS error): reads that open only
// regular files (a FIFO would block forever, a directory fails obscurely), atomic replacement
// (temp file + fsync + rename), checked appends, and output paths checked before long work.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace sd {

// An open file descriptor, closed on destruction (use close() where the result matters).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  void close(const std::string& path);  // throws naming `path` when close reports an error

 private:
  int fd_ = -1;
};

// Opens `path` for reading if it is a regular file; `what` names it in errors ("config file").
Fd open_regular_file(const std::string& path, const std::string& what);
// The whole file, refused (naming the size) above max_bytes.
std::string read_regular_file(const std::string& path, const std::string& what,
                              size_t max_bytes);

// Writes all n bytes (retrying short writes and EINTR) or throws naming `path`.
void write_all(int fd, const void* data, size_t n, const std::string& path);

// Replaces `path` atomically: bytes go to `path`.tmp.<pid> in the same directory; commit()
// fsyncs it, renames it over `path` and fsyncs the directory, so that a reader, or a process
// killed at any moment, sees the old file or the new one, never a part. Destroyed without
// commit(), it removes its temp file.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n) { write_all(fd_.get(), data, n, tmp_); }
  void write(std::string_view s) { write(s.data(), s.size()); }
  void commit();

 private:
  std::string path_, tmp_;
  Fd fd_;
  bool committed_ = false;
};

void write_file_atomic(const std::string& path, std::string_view bytes);

// The temp files that a killed AtomicFile leaves: `<name>.tmp.<pid>` in `dir`, for each of
// `names` (empty: any name). Removes those whose process no longer exists and returns their
// paths; a live process's are left alone.
std::vector<std::string> remove_stale_temp_files(const std::string& dir,
                                                 const std::vector<std::string>& names);

// Appends to a log file, each write checked; sync() makes what was appended durable.
class AppendFile {
 public:
  explicit AppendFile(std::string path);
  void append(std::string_view s) { write_all(fd_.get(), s.data(), s.size(), path_); }
  void sync();
  void close() { fd_.close(path_); }

 private:
  std::string path_;
  Fd fd_;
};

// For an output file the user names: throws (naming `what`, the path and the reason) unless it
// can be written: its directory exists and is writable, and it is not a directory. Called
// before long work so that the work is not lost to a typo.
void check_output_path(const std::string& path, const std::string& what);
// Writes an output file: atomically when it is a regular file or new, in place when it is a
// device, a pipe or a symlink (/dev/stdout); every write and the close are checked.
void write_output_file(const std::string& path, std::string_view bytes);

}  // namespace sd
