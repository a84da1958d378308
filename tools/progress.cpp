#include "tools/progress.h"

#include <unistd.h>

#include <cstdio>

namespace sd {

std::string format_duration(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) / 60) % 60);
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, int64_t start)
    : label_(std::move(label)), total_(total), start_(start), tty_(isatty(STDERR_FILENO)),
      t0_(std::chrono::steady_clock::now()), last_print_(t0_) {}

void ProgressBar::update(int64_t done, const std::string& extra, double items_per_unit) {
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_print_).count();
  if (!(tty_ ? since >= 0.1 : since >= 5.0) && done < total_) return;
  last_print_ = now;
  double el = std::chrono::duration<double>(now - t0_).count();
  double rate = el > 0 ? double(done - start_) / el : 0;  // units per second
  double eta = rate > 0 ? double(total_ - done) / rate : 0;
  int width = 24, filled = total_ ? int(width * done / total_) : width;
  std::string bar(size_t(filled), '=');
  if (filled < width) bar += '>' + std::string(size_t(width - filled - 1), ' ');
  char rate_s[64] = "";
  if (items_per_unit > 0) std::snprintf(rate_s, sizeof rate_s, " | %.1f img/s", rate * items_per_unit);
  std::fprintf(stderr, "%s%s %lld/%lld [%s] %3d%% %s%s | ETA %s%s", tty_ ? "\r" : "",
               label_.c_str(), (long long)done, (long long)total_, bar.c_str(),
               total_ ? int(100 * done / total_) : 100, extra.c_str(), rate_s,
               format_duration(eta).c_str(), tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void ProgressBar::finish(const std::string& extra) {
  double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  std::fprintf(stderr, "%s%s done in %s %s%s\n", tty_ ? "\r" : "", label_.c_str(),
               format_duration(el).c_str(), extra.c_str(), tty_ ? "\033[K" : "");
}

void ProgressBar::note(const std::string& line) {
  std::fprintf(stderr, "%s%s\n", tty_ ? "\r\033[K" : "", line.c_str());
  std::fflush(stderr);
}

}  // namespace sd
