#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

#include "cli/commands.h"
#include "kscope/version.h"
#include "trace/proc.h"

namespace kscope::cli {

namespace {
volatile sig_atomic_t g_stop = 0;
void on_stop_signal(int) { g_stop = 1; }
}  // namespace

volatile sig_atomic_t* install_stop_handlers() {
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return &g_stop;
}

int report_error(const Error& error) {
  std::fprintf(stderr, "kscope: %s\n", error.describe().c_str());
  if (!error.hint.empty()) std::fprintf(stderr, "kscope: %s\n", error.hint.c_str());
  return static_cast<int>(error.exit_code);
}

RecordingMeta make_recording_meta(const std::vector<uint32_t>& pids) {
  RecordingMeta meta;
  meta.kscope_version = KSCOPE_VERSION;
  if (auto cmdline = proc::read_text_file("/proc/self/cmdline")) {
    std::string arg;
    for (char c : *cmdline) {
      if (c == '\0') {
        meta.command_line.push_back(arg);
        arg.clear();
      } else {
        arg.push_back(c);
      }
    }
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  meta.hostname = host;
  utsname u{};
  uname(&u);
  meta.kernel_release = u.release;
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  meta.start_wall_ns =
      static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
  meta.target_pids = pids;
  return meta;
}

GlobalOptions& global_options() {
  static GlobalOptions options;
  return options;
}

}  // namespace kscope::cli
