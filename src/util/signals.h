// One set of stop-signal handlers for every long-running command (faults, top, monitor, study).
#pragma once

#include <signal.h>

namespace kscope {

struct StopSignalOptions {
  // When >= 0, every handled signal also writes one byte to this fd (a non-blocking self-pipe),
  // so a poll/epoll loop wakes up at once.
  int wake_fd = -1;
  // Also handle SIGCHLD (only to wake the loop through wake_fd; it does not set the flag).
  bool watch_children = false;
  // SA_RESTART: interrupted blocking calls resume (poll/epoll_wait/nanosleep never do; see
  // signal(7)). Without it they fail with EINTR, which loops that wait in waitpid() or read()
  // need to see the stop at once.
  bool restart_syscalls = false;
};

// Ctrl-C, SIGTERM and SIGHUP set the returned flag to the signal's number (so tracing stops,
// flushes and reports); SIGPIPE is ignored, so a closed output pipe surfaces as EPIPE on write
// instead of killing kscope before it has flushed. Resets the flag to 0.
volatile sig_atomic_t* install_stop_handlers(const StopSignalOptions& options = {});

}  // namespace kscope
