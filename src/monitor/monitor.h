// The monitor's event loop: a timerfd on CLOCK_MONOTONIC absolute deadlines drives sampling;
// the control socket, the optional /metrics listener and stop signals share one epoll.
// Single-threaded: requests are handled between samples, never during one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "monitor/jitter.h"
#include "monitor/prometheus.h"
#include "monitor/protocol.h"
#include "monitor/ring.h"
#include "monitor/sampler.h"
#include "util/result.h"

namespace kscope::monitor {

struct MonitorOptions {
  std::vector<pid_t> pids;
  std::vector<std::string> command;
  uint64_t period_ns = 50'000'000;
  std::string csv_path;             // empty: no CSV
  std::string socket_path;          // resolved
  bool socket_default_dir = false;  // create the private default directory
  std::string shm_name;             // empty: no ring
  uint32_t ring_slots = 65536;
  std::optional<ListenAddress> listen;
  double duration_s = 0;  // 0: until stopped (or COMMAND exits)
  size_t max_processes = 1024;
  bool quiet = false;      // no per-event messages on stderr
  bool exact_rss = false;  // VmRSS from /proc/PID/status (else stat's approximate rss)
  bool realtime = true;    // as root: SCHED_FIFO for the sampling loop (not inherited)
};

// The CSV header, exactly.
inline constexpr const char* kCsvHeader =
    "time_ms,pid,comm,min_faults,maj_faults,min_faults_total,maj_faults_total,cpu_util,rss_kb";
// One CSV line for a row (comm quoted when it holds a comma, quote or newline).
std::string format_csv_row(const SampleRow& r);
// A ring slot for a row.
kscope_ring_slot to_ring_slot(const SampleRow& r);

// Runs until SIGINT/SIGTERM/SIGHUP, --duration, or the COMMAND exits. Returns the exit status
// (the command's own with COMMAND).
Result<int> run_monitor(const MonitorOptions& options);

}  // namespace kscope::monitor
