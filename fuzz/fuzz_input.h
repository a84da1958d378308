// The fuzzer's bytes as a file for readers that take a path: a memfd (a regular file in memory,
// no disk I/O), reopened through /proc/self/fd so that every read starts at offset 0.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

inline std::string fuzz_file(const uint8_t* data, size_t size) {
  static int fd = memfd_create("simdiff-fuzz", 0);
  if (fd < 0 || ftruncate(fd, 0) != 0 ||
      (size > 0 && pwrite(fd, data, size, 0) != ssize_t(size)))
    abort();
  return "/proc/self/fd/" + std::to_string(fd);
}
