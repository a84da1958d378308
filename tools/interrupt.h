// A graceful stop for long work on SIGTERM, SIGINT (Ctrl-C) and SIGHUP, for the life of the
// guard: the first signal is only recorded, so the training loop finishes its step, writes a
// checkpoint and exits; a second one ends the process at once (the default action), for a user
// who does not want to wait.
#pragma once

namespace sd {

class InterruptGuard {
 public:
  InterruptGuard();   // installs the handlers
  ~InterruptGuard();  // restores the previous ones
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

  int signal() const;  // the first signal received, or 0
};

const char* signal_name(int sig);  // "SIGTERM"

}  // namespace sd
