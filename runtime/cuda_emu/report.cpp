#include "report.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

// AddressSanitizer's symboliser (weak: a build without it still links and reports addresses).
extern "C" __attribute__((weak)) void __sanitizer_symbolize_pc(void* pc, const char* fmt,
                                                               char* out, size_t size);

namespace sd_emu {
namespace {

// Paths relative to the source tree, as the project's own messages print them.
const char* relative(const char* file) {
  constexpr const char* kRoot = SD_EMU_SOURCE_DIR;
  size_t n = std::strlen(kRoot);
  return file && std::strncmp(file, kRoot, n) == 0 ? file + n : file;
}

struct Frame {
  std::string fn, file;
  int line = 0;
};

// The frames at pc, innermost (most inlined) first.
std::vector<Frame> symbolize(const void* pc) {
  std::vector<Frame> frames;
  if (!__sanitizer_symbolize_pc) return frames;
  char buf[8192] = {};
  __sanitizer_symbolize_pc(const_cast<void*>(pc), "%f\x1f%s\x1f%l", buf, sizeof buf);
  for (const char* p = buf; *p && p < buf + sizeof buf; p += std::strlen(p) + 1) {
    const char* a = std::strchr(p, '\x1f');
    const char* b = a ? std::strchr(a + 1, '\x1f') : nullptr;
    if (!b) break;
    frames.push_back({std::string(p, a), relative(std::string(a + 1, b).c_str()), std::atoi(b + 1)});
  }
  return frames;
}

// "sd::(anonymous namespace)::attn_fwd_f32<32>(float const*, ...)" -> "attn_fwd_f32<32>".
std::string short_name(std::string s) {
  for (size_t at; (at = s.find("(anonymous namespace)::")) != std::string::npos;) s.erase(at, 23);
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '<') ++depth;
    else if (c == '>') --depth;
    else if (c == '(' && depth == 0) return s.substr(start, i - start);
    else if (c == ':' && depth == 0 && i + 1 < s.size() && s[i + 1] == ':') start = i + 2;
  }
  return s.substr(start);
}

}  // namespace

void problem(const std::string& what, bool fatal) {
  if (g.problems++ == 0) g.error = what;
  if (fatal) g.abort = true;
}

std::string site_str(Site s) {
  return s.file ? std::string(relative(s.file)) + ":" + std::to_string(s.line) : "?";
}

std::string thread_str(const Thread& t) {
  auto v = [](unsigned x, unsigned y, unsigned z) {
    return "(" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
  };
  return "thread " + v(t.idx.x, t.idx.y, t.idx.z) + " of block " +
         v(g.block_idx.x, g.block_idx.y, g.block_idx.z);
}

std::string lanes_str(const std::vector<int>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    s += (s.empty() ? "" : ", ") + std::to_string(ids[i]);
    if (j > i) s += "-" + std::to_string(ids[j]);
    i = j + 1;
  }
  return s;
}

std::string code_at(const void* return_address) {
  // The innermost frame outside the emulator's own headers is the kernel code that made the
  // access (the emulator's wmma and vector-copy helpers are inlined into it); the outermost is
  // the function the code is inlined into, usually the kernel.
  std::vector<Frame> frames = symbolize(return_address);
  for (const Frame& f : frames)
    if (f.line > 0 && f.file.find("runtime/cuda_emu/") == std::string::npos &&
        f.file.find("/usr/") != 0) {
      std::string s = f.file + ":" + std::to_string(f.line) + " (in " + short_name(f.fn);
      const Frame& outer = frames.back();
      if (&outer != &f && outer.line > 0)
        s += ", inlined into " + short_name(outer.fn) + " at " + outer.file + ":" +
             std::to_string(outer.line);
      return s + ")";
    }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", return_address);
  return std::string("code address ") + buf + " (no symboliser: install llvm-symbolizer)";
}

std::string function_name(const void* fn) {
  // A return address points after a call, so the symboliser looks one byte back: ask for fn + 1.
  std::vector<Frame> f = symbolize(static_cast<const char*>(fn) + 1);
  return f.empty() || f[0].fn.empty() || f[0].fn == "??" ? "" : short_name(f[0].fn);
}

std::string kernel_name(const KernelSite& k) {
  static std::mutex mu;
  static std::map<const void*, std::string> known;  // the symboliser is slow: once per kernel
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(k.fn);
  if (it == known.end()) {
    std::string name = function_name(k.fn);
    it = known.emplace(k.fn, name.empty() ? std::string(k.name) : name).first;
  }
  return it->second;
}

}  // namespace sd_emu
