// Per-process sampling of the kernel's own counters (/proc/PID/stat: minflt, majflt, rss; the
// process CPU clock: nanosecond CPU time), the arithmetic that turns two readings into one sample
// row, and the registry of processes being sampled. /proc/PID/stat is opened once at
// registration and re-read with pread(): cheap at 20 Hz, and the kept fd pins the process (a
// recycled pid reads as ESRCH).
#pragma once

#include <sys/types.h>
#include <time.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/fd.h"
#include "util/result.h"

namespace kscope::monitor {

// One reading of a process's counters.
struct ProcReading {
  std::string comm;
  char state = '?';
  uint64_t minflt = 0;
  uint64_t majflt = 0;
  uint64_t cpu_ticks = 0;  // utime + stime, in clock ticks (USER_HZ)
  int64_t rss_pages = 0;
  uint64_t starttime_ticks = 0;
  std::optional<uint64_t> vm_rss_kb;  // from /proc/PID/status when read; preferred over rss_pages
  // The process CPU clock (clock_gettime of clock_getcpuclockid(pid)): the sum of the kernel's
  // sum_exec_runtime over all threads, dead ones included, in ns. Preferred over cpu_ticks, which
  // is the same time truncated to 10 ms ticks.
  std::optional<uint64_t> cpu_ns;
  // The process is exiting or a zombie (PF_EXITING in stat's flags, or state Z/X): its mm is
  // gone, so stat's rss and VmRSS read 0 / absent, not its memory use.
  bool exiting = false;
  // The main thread has exited (pthread_exit) while other threads run: the leader reads Z, but
  // the process lives on (stat's num_threads still counts the others). Its counters keep coming
  // from the leader's /proc/PID/stat (they cover the whole group); its RSS comes from a live
  // thread, because the leader's own mm is gone.
  bool leader_exited = false;
  uint64_t num_threads = 0;
};

// One row of the series: a process in one period, or the aggregate (pid 0, comm "*").
struct SampleRow {
  uint64_t time_ns = 0;  // since the monitor started (CLOCK_MONOTONIC)
  uint64_t period_index = 0;
  pid_t pid = 0;
  bool aggregate = false;
  std::string comm;
  uint64_t min_faults = 0;  // since the previous sample of this process
  uint64_t maj_faults = 0;
  uint64_t min_faults_total = 0;  // the kernel's minflt (aggregate: sum of deltas since start)
  uint64_t maj_faults_total = 0;
  uint64_t cpu_time_ns = 0;        // CPU time (user+system) during this period
  uint64_t cpu_time_ns_total = 0;  // CPU time (aggregate: sum of deltas since start)
  double cpu_util = 0;             // CPU time / wall time over the period
  uint64_t rss_kb = 0;  // an exiting process's final row: the RSS of its last live reading
};

struct ClockUnits {
  uint64_t tick_ns = 10'000'000;  // 1e9 / sysconf(_SC_CLK_TCK)
  uint64_t page_kb = 4;
  static ClockUnits system();
};

// The arithmetic of one sample: deltas between two readings of the same process, over a wall
// interval of wall_ns. Counters never go backwards in the kernel; if a reading does (it cannot
// unless /proc lies), the delta is 0 rather than a huge unsigned wrap. CPU time comes from cpu_ns
// when both readings have it, else from the clock ticks.
SampleRow compute_row(const ProcReading& prev, const ProcReading& cur, uint64_t wall_ns,
                      const ClockUnits& units);

// Resident set of a reading in KiB: VmRSS when read, else stat's rss pages.
uint64_t rss_kb_of(const ProcReading& r, const ClockUnits& units);

// Adds a process row into an aggregate row (sums; cpu_util sums, so 2.0 = two full cores).
void accumulate(SampleRow& aggregate, const SampleRow& row);

// Parses /proc/PID/stat text into a reading (never trusts it to be well-formed).
Result<ProcReading> parse_reading(std::string_view stat_text);

// VmRSS in KiB from /proc/PID/status text; nullopt when absent (a zombie has no mm).
std::optional<uint64_t> parse_vm_rss_kb(std::string_view status_text);

// A registered process: its kept-open stat fd and its last reading.
struct TrackedProcess {
  pid_t pid = 0;
  Fd stat_fd;
  Fd status_fd;  // for VmRSS (--exact-rss): exact, where stat's rss is an approximate read
  std::optional<clockid_t> cpu_clock;  // clock_getcpuclockid(pid)
  ProcReading last;
  uint64_t last_time_ns = 0;
  std::optional<SampleRow> latest;  // the most recent row (for status and /metrics)
  uid_t uid = 0;
};

enum class ReadOutcome { kOk, kExited };

// Reads the process's CPU clock, then its stat through its kept fd (in that order: a stat read
// that succeeds proves the pid was not reaped, so not reused, when the clock was read). kExited
// when the process is gone or a zombie (the reading is still filled in for a zombie: its final
// counters).
Result<ReadOutcome> read_tracked(TrackedProcess& p, ProcReading& out);

// Where readings come from: /proc and the process CPU clock (ProcFsSource), or fixtures in unit
// tests.
class ProcessSource {
 public:
  virtual ~ProcessSource() = default;
  // Opens what sampling `p.pid` needs (kept fds, clock id, owner uid) and takes the first
  // reading. Errors: no such process, kernel thread, cannot open.
  virtual Result<ReadOutcome> open(TrackedProcess& p, bool exact_rss, ProcReading& first) = 0;
  virtual Result<ReadOutcome> read(TrackedProcess& p, ProcReading& out) = 0;
};

class ProcFsSource : public ProcessSource {
 public:
  Result<ReadOutcome> open(TrackedProcess& p, bool exact_rss, ProcReading& first) override;
  Result<ReadOutcome> read(TrackedProcess& p, ProcReading& out) override {
    return read_tracked(p, out);
  }
};

class Registry {
 public:
  // exact_rss: read VmRSS from /proc/PID/status (exact, about 2x the cost of reading stat);
  // otherwise stat's rss field (the kernel's approximate per-CPU counter, off by a few pages).
  explicit Registry(size_t max_processes, bool exact_rss = false,
                    std::unique_ptr<ProcessSource> source = std::make_unique<ProcFsSource>())
      : max_(max_processes), exact_rss_(exact_rss), source_(std::move(source)) {}

  // Errors: no such process, kernel thread, already registered, registry full.
  Result<const TrackedProcess*> add(pid_t pid, uint64_t now_ns);
  Status remove(pid_t pid);
  // Re-reads a registered process's name and RSS (after its execve: registered at the gate of
  // `-- COMMAND`, it was still a copy of kscope). The counters keep the registration baseline, so
  // the exec's own faults and CPU time are in the first row. Returns the current comm.
  Result<std::string> refresh_identity(pid_t pid);
  bool contains(pid_t pid) const { return procs_.count(pid) != 0; }
  bool empty() const { return procs_.empty(); }
  size_t size() const { return procs_.size(); }
  const std::map<pid_t, TrackedProcess>& processes() const { return procs_; }

  struct PeriodResult {
    std::vector<SampleRow> rows;  // one per process sampled, then the aggregate (if any)
    std::vector<std::pair<pid_t, std::string>> exited;  // left the list this period
  };
  // Samples every registered process at now_ns; processes that exited give their final row and
  // leave the list.
  PeriodResult sample_all(uint64_t now_ns, uint64_t period_index, const ClockUnits& units);

  // The row of one process outside the period schedule (its counters since its last row), for a
  // process about to be unregistered: the series ends with its counters at unregistration, not
  // at the last period before. nullopt when it is not registered or already reaped.
  std::optional<SampleRow> final_row(pid_t pid, uint64_t now_ns, uint64_t period_index,
                                     const ClockUnits& units);

  // Running sums over everything sampled since start (the aggregate's totals).
  const SampleRow& aggregate_totals() const { return totals_; }

 private:
  // Reads one process and returns its row (nullopt when reaped unread); sets exited when this
  // was its final reading.
  std::optional<SampleRow> sample_one(pid_t pid, TrackedProcess& p, uint64_t now_ns,
                                      uint64_t period_index, const ClockUnits& units, bool& exited);

  size_t max_;
  bool exact_rss_;
  std::unique_ptr<ProcessSource> source_;
  std::map<pid_t, TrackedProcess> procs_;
  SampleRow totals_;
};

}  // namespace kscope::monitor
