#include "util/signals.h"

#include <unistd.h>

#include <cerrno>
#include <initializer_list>

namespace kscope {

namespace {

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_wake_fd = -1;

void on_signal(int sig) {
  if (sig != SIGCHLD) g_stop = sig;
  if (g_wake_fd >= 0) {
    int saved = errno;
    char b = 1;
    ssize_t ignored = ::write(g_wake_fd, &b, 1);  // a full pipe already wakes the loop
    (void)ignored;
    errno = saved;
  }
}

}  // namespace

volatile sig_atomic_t* install_stop_handlers(const StopSignalOptions& options) {
  g_stop = 0;
  g_wake_fd = options.wake_fd;
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = options.restart_syscalls ? SA_RESTART : 0;
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);
  if (options.watch_children) sigaction(SIGCHLD, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return &g_stop;
}

}  // namespace kscope
