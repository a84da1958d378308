// One exception type for the whole engine. Messages name the op or file, the argument, and
// expected vs got, so a user can fix their input without reading our source.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sd {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class T>
void put(std::ostringstream& os, const T& v) { os << v; }
template <class T>
void put(std::ostringstream& os, const std::vector<T>& v) {
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << ']';
}
template <class... A>
std::string cat(const A&... a) {
  std::ostringstream os;
  (put(os, a), ...);
  return os.str();
}

// A message is read by a person: one that quotes a huge value is cut, with the count of what
// was left out, rather than flooding the terminal or a log.
constexpr size_t kMaxMessage = 2000;
inline std::string capped(std::string s) {
  if (s.size() <= kMaxMessage) return s;
  size_t cut = s.size() - kMaxMessage;
  s.resize(kMaxMessage);
  return s + "... (" + std::to_string(cut) + " more characters)";
}
}  // namespace detail

template <class... A>
[[noreturn]] void fail(const A&... a) { throw Error(detail::capped(detail::cat(a...))); }

}  // namespace sd

// SD_CHECK(cond, "op: argument 'x' expected ", a, " got ", b)
#define SD_CHECK(cond, ...)                      \
  do {                                           \
    if (!(cond)) ::sd::fail(__VA_ARGS__);        \
  } while (0)
