#include "tools/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "runtime/json_text.h"
#include "tools/plot.h"

namespace sd {

namespace fs = std::filesystem;

namespace {

constexpr const char* kLock = "train.lock";
const std::vector<std::string> kRunFiles = {"ckpt.safetensors", "metrics.jsonl", "config.json",
                                            "loss.svg"};

bool path_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// The metrics lines of steps <= upto that parse (a killed writer may leave a cut last line).
std::vector<std::string> kept_metrics(const std::string& path, int64_t upto,
                                      std::vector<std::pair<int64_t, double>>& points) {
  std::vector<std::string> lines;
  if (!path_exists(path)) return lines;
  std::string text = read_regular_file(path, "metrics log", size_t(1) << 32);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;  // no newline: a cut last line
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    nlohmann::json j;
    try {
      j = parse_json(line, path, 4);
    } catch (const Error&) {
      continue;
    }
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer() ||
        !j.contains("loss") || !j["loss"].is_number())
      continue;
    int64_t step = j["step"].get<int64_t>();
    if (step > upto) break;
    points.push_back({step, j["loss"].get<double>()});
    lines.push_back(line);
  }
  return lines;
}

}  // namespace

RunDir::RunDir(std::string path) : path_(std::move(path)) {
  SD_CHECK(!path_.empty(), "the output directory (--out) is empty");
  while (path_.size() > 1 && path_.back() == '/') path_.pop_back();
  struct stat st;
  if (::stat(path_.c_str(), &st) == 0)
    SD_CHECK(S_ISDIR(st.st_mode), "output directory '", path_, "' exists and is not a directory");
}

bool RunDir::exists() const { return path_exists(path_); }
bool RunDir::has_checkpoint() const { return path_exists(checkpoint_path()); }
bool RunDir::has_metrics() const { return path_exists(file("metrics.jsonl")); }

bool RunDir::holds_run() const {
  for (auto& f : kRunFiles)
    if (path_exists(file(f))) return true;
  return false;
}

void RunDir::lock() {
  if (lock_.is_open()) return;
  std::error_code ec;
  fs::create_directories(path_, ec);
  if (ec) fail("cannot create output directory '", path_, "': ", ec.message());
  std::string lp = file(kLock);
  lock_ = Fd(::open(lp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock_.is_open()) fail("cannot open lock file '", lp, "': ", std::strerror(errno));
  if (::flock(lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char buf[32];
    ssize_t n = ::pread(lock_.get(), buf, sizeof buf, 0);
    std::string pid(buf, n > 0 ? size_t(n) : 0);
    pid.erase(pid.find_last_not_of(" \n") + 1);
    std::string holder = pid.empty() ? "" : " (pid " + pid + ")";
    lock_ = Fd();
    if (err == EWOULDBLOCK)
      fail("another process", holder, " is training into '", path_, "' (it holds ", lp,
           "); wait for it to finish or choose another --out");
    fail("cannot lock '", lp, "': ", std::strerror(err));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_.get(), 0) == 0) (void)::pwrite(lock_.get(), pid.data(), pid.size(), 0);
  remove_stale_temp_files(path_, kRunFiles);
  remove_stale_temp_files(file("samples"), {});  // absent in a new directory: nothing to do
}

void RunDir::clear_run() {
  SD_CHECK(lock_.is_open(), "RunDir::clear_run before lock()");
  for (auto& f : kRunFiles)
    if (::unlink(file(f).c_str()) != 0 && errno != ENOENT)
      fail("--overwrite: cannot remove '", file(f), "': ", std::strerror(errno));
  std::error_code ec;
  for (auto& e : fs::directory_iterator(file("samples"), ec))
    if (e.path().extension() == ".png" && !fs::remove(e.path(), ec))
      fail("--overwrite: cannot remove '", e.path().string(), "': ", ec.message());
  checkpoint_step_ = -1;
}

std::vector<std::pair<int64_t, double>> RunDir::begin(const Config& cfg, int64_t step,
                                                      bool resumed) {
  SD_CHECK(lock_.is_open(), "RunDir::begin before lock()");
  std::error_code ec;
  fs::create_directories(file("samples"), ec);
  if (ec) fail("cannot create '", file("samples"), "': ", ec.message());
  std::vector<std::pair<int64_t, double>> points;
  std::string metrics = file("metrics.jsonl");
  std::string kept;
  for (auto& line : kept_metrics(metrics, step, points)) kept += line + "\n";
  write_file_atomic(metrics, kept);
  write_file_atomic(file("config.json"), cfg.to_json().dump(2) + "\n");
  metrics_.emplace(metrics);
  checkpoint_step_ = resumed ? step : -1;
  return points;
}

void RunDir::log_step(const nlohmann::json& line) { metrics_->append(line.dump() + "\n"); }

void RunDir::save(const Config& cfg, const ParamStore& ps, const TrainState& st,
                  const std::vector<std::pair<int64_t, double>>& curve) {
  if (std::string bad = non_finite_state(ps, st); !bad.empty())
    fail("training stopped at step ", st.step, ": the update left values that are not finite in ",
         bad, "; ", checkpoint_note());
  metrics_->sync();
  save_checkpoint(checkpoint_path(), cfg, ps, st);
  checkpoint_step_ = st.step;
  write_loss_svg(file("loss.svg"), curve, "training loss", {.log_y = true});
}

void RunDir::finish() {
  if (metrics_) metrics_->close();
  metrics_.reset();
}

std::string RunDir::checkpoint_note() const {
  if (checkpoint_step_ < 0) return "no checkpoint was written";
  return "the last checkpoint, " + checkpoint_path() + " (step " +
         std::to_string(checkpoint_step_) + "), is left as it was";
}

}  // namespace sd
