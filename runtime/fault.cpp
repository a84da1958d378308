#include "runtime/fault.h"

#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>

namespace sd::fault {
namespace {

// How many entries of the comma-separated list in `var` name this arrival (K-th) at `name`.
int matches(const char* var, const std::string& name, int k) {
  const char* v = std::getenv(var);
  if (!v) return 0;
  int n = 0;
  std::stringstream list(v);
  for (std::string item; std::getline(list, item, ',');)
    n += item == name || item == name + "#" + std::to_string(k);
  return n;
}

}  // namespace

bool point(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, int> arrivals;
  int k;
  {
    std::lock_guard<std::mutex> lock(mu);
    k = ++arrivals[name];
  }
  if (matches("SIMDIFF_FAULT_KILL_AT", name, k)) std::raise(SIGKILL);
  if (matches("SIMDIFF_FAULT_STOP_AT", name, k)) std::raise(SIGSTOP);
  for (int i = matches("SIMDIFF_FAULT_TERM_AT", name, k); i > 0; --i) std::raise(SIGTERM);
  return matches("SIMDIFF_FAULT_NAN_AT", name, k) > 0;
}

}  // namespace sd::fault
