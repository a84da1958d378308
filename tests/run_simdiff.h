// Runs the built `simdiff` binary for end-to-end tests: output captured (stdout and stderr
// together), exit status or killing signal reported, with optional environment variables and a
// file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored, so a write past it fails with EFBIG the way
// a full disk fails with ENOSPC, without root or a mount).
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

struct RunResult {
  int status = -1;  // exit status, or -1 when a signal ended the process
  int signal = 0;   // the signal that ended it, or 0
  std::string output;
};

// Runs `cmd` with /bin/sh -c, its output captured.
inline RunResult run_shell(const std::string& cmd, long fsize_limit = 0) {
  int fds[2];
  if (pipe(fds) != 0) return {-1, 0, "pipe failed"};
  pid_t pid = fork();
  if (pid == 0) {
    if (fsize_limit > 0) {
      signal(SIGXFSZ, SIG_IGN);
      rlimit r{rlim_t(fsize_limit), rlim_t(fsize_limit)};
      setrlimit(RLIMIT_FSIZE, &r);
    }
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, STDIN_FILENO);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)nullptr);
    _exit(127);
  }
  close(fds[1]);
  RunResult r;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) r.output.append(buf, size_t(n));
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  if (WIFEXITED(st)) r.status = WEXITSTATUS(st);
  if (WIFSIGNALED(st)) r.signal = WTERMSIG(st);
  return r;
}

// `args` go to the shell as written (quote paths with q()); `env` is "NAME=value ..." or empty.
// A `timeout_s` > 0 kills a hung process (status 137) so that a hang fails instead of blocking.
inline RunResult run_simdiff(const std::string& args, const std::string& env = "",
                             long fsize_limit = 0, int timeout_s = 0) {
  return run_shell("exec " + (env.empty() ? "" : "env " + env + " ") +
                       (timeout_s > 0 ? "timeout -s KILL " + std::to_string(timeout_s) + " " : "") +
                       "'" + SIMDIFF_BINARY + "' " + args + " 2>&1",
                   fsize_limit);
}

// Single-quotes a path for the shell.
inline std::string q(const std::string& s) { return "'" + s + "'"; }

// Runs simdiff with `args` through the shell, its output going to the test's own (for commands
// whose output the test does not read); returns std::system's status (0: success).
inline int run_simdiff_status(const std::string& args) {
  return std::system((std::string(SIMDIFF_BINARY) + " " + args).c_str());
}

// The "loss" of every line of a run's metrics.jsonl, in order.
inline std::vector<double> metric_losses(const std::string& metrics_jsonl) {
  std::vector<double> v;
  std::ifstream f(metrics_jsonl);
  for (std::string line; std::getline(f, line);)
    v.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return v;
}
