// Which kernels ran, for test failure messages. A kernel that computes wrong values (one that
// relies on an undocumented wmma fragment layout, say, which the emulation build scrambles) shows
// only as a wrong number, and one op may launch several kernels: a test keeps a KernelLog alive
// around the CUDA calls it checks and prints take() with each failure. Every launch through
// SD_LAUNCH (kernels/cuda/launch.cuh) is recorded into every live log, on a GPU and in the
// emulation build, where the name is the instantiation ("attn_bwd_dq_bf16<64>") rather than the
// launch site's spelling ("attn_bwd_dq_bf16<DP>"). Plain C++: tests include it in every build.
#pragma once
#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

namespace sd::cuda {

class KernelLog {
 public:
  KernelLog() {
    std::lock_guard<std::mutex> lock(registry().mu);
    registry().live.push_back(this);
    registry().count.fetch_add(1);
  }
  ~KernelLog() {
    std::lock_guard<std::mutex> lock(registry().mu);
    auto& v = registry().live;
    v.erase(std::find(v.begin(), v.end(), this));
    registry().count.fetch_sub(1);
  }
  KernelLog(const KernelLog&) = delete;
  KernelLog& operator=(const KernelLog&) = delete;

  // "cuda kernels: a, b" for the distinct kernels launched since the last take() (or since
  // construction), in the order of their first launch; "cuda kernels: none" when none was.
  std::string take() {
    std::lock_guard<std::mutex> lock(registry().mu);
    std::string s;
    for (const std::string& n : names_) s += (s.empty() ? "" : ", ") + n;
    names_.clear();
    return "cuda kernels: " + (s.empty() ? std::string("none") : s);
  }

  // The launch helper's side: whether any log listens, and the record.
  static bool listening() { return registry().count.load(std::memory_order_relaxed) > 0; }
  static void record(const std::string& kernel) {
    std::lock_guard<std::mutex> lock(registry().mu);
    for (KernelLog* log : registry().live)
      if (std::find(log->names_.begin(), log->names_.end(), kernel) == log->names_.end())
        log->names_.push_back(kernel);
  }

 private:
  struct Registry {
    std::mutex mu;
    std::vector<KernelLog*> live;
    std::atomic<int> count{0};
  };
  static Registry& registry() {
    static Registry r;
    return r;
  }
  std::vector<std::string> names_;
};

}  // namespace sd::cuda
