#include "kernels/op_profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

#include "runtime/allocator.h"

namespace sd::op_profile {
namespace {

struct Entry {
  int64_t calls = 0;
  double ms = 0;
};

struct State {
  std::mutex mu;
  std::map<std::pair<std::string, bool>, Entry> table;  // (op, backward)
};

State& state() {
  static auto* s = new State;  // never destroyed: the atexit report may run after statics die
  return *s;
}

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

bool g_on = [] {
  const char* v = std::getenv("SIMDIFF_PROFILE");
  bool on = v && *v && std::string(v) != "0";
  if (on) std::atexit([] { std::fputs(report().c_str(), stderr); });
  return on;
}();

}  // namespace

bool enabled() { return g_on; }
void enable(bool on) { g_on = on; }

void reset() {
  std::lock_guard<std::mutex> lk(state().mu);
  state().table.clear();
}

Scope::Scope(const std::string& op, bool backward, bool cuda) {
  if (!g_on) return;
  op_ = &op;
  backward_ = backward;
  cuda_ = cuda;
  if (cuda_) device_synchronize();
  t0_ = now_ms();
}

Scope::~Scope() {
  if (!op_) return;
  if (cuda_) device_synchronize();
  double dt = now_ms() - t0_;
  std::lock_guard<std::mutex> lk(state().mu);
  Entry& e = state().table[{*op_, backward_}];
  e.calls += 1;
  e.ms += dt;
}

std::string report(double wall_ms) {
  std::vector<std::pair<std::pair<std::string, bool>, Entry>> rows;
  {
    std::lock_guard<std::mutex> lk(state().mu);
    rows.assign(state().table.begin(), state().table.end());
  }
  std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.ms > b.second.ms; });
  double total = 0;
  for (auto& r : rows) total += r.second.ms;
  std::ostringstream os;
  char line[256];
  std::snprintf(line, sizeof line, "%-24s %-4s %9s %11s %10s %7s\n", "op", "dir", "calls",
                "total ms", "ms/call", "share");
  os << "per-op profile (wall clock per registry call)\n" << line;
  for (auto& [key, e] : rows) {
    std::snprintf(line, sizeof line, "%-24s %-4s %9lld %11.1f %10.3f %6.1f%%\n", key.first.c_str(),
                  key.second ? "bwd" : "fwd", static_cast<long long>(e.calls), e.ms,
                  e.ms / double(std::max<int64_t>(e.calls, 1)), total > 0 ? 100 * e.ms / total : 0.0);
    os << line;
  }
  std::snprintf(line, sizeof line, "%-24s %-4s %9s %11.1f\n", "all ops", "", "", total);
  os << line;
  if (wall_ms > 0) {
    std::snprintf(line, sizeof line, "%-24s %-4s %9s %11.1f %10s %6.1f%% of %.1f ms\n",
                  "outside ops", "", "", wall_ms - total, "", 100 * (wall_ms - total) / wall_ms,
                  wall_ms);
    os << line;
  }
  return os.str();
}

}  // namespace sd::op_profile
