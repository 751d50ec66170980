#include "monitor/sampler.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "trace/proc.h"
#include "util/file.h"

namespace kscope::monitor {

ClockUnits ClockUnits::system() {
  ClockUnits u;
  long hz = ::sysconf(_SC_CLK_TCK);
  if (hz > 0) u.tick_ns = 1'000'000'000ull / static_cast<uint64_t>(hz);
  long page = ::sysconf(_SC_PAGESIZE);
  if (page > 0) u.page_kb = static_cast<uint64_t>(page) / 1024;
  return u;
}

namespace {
uint64_t delta(uint64_t prev, uint64_t cur) { return cur >= prev ? cur - prev : 0; }

// PF_EXITING (include/linux/sched.h): set by exit_signals() at the start of do_exit(), before
// exit_mm() drops the memory.
constexpr uint64_t kPfExiting = 0x00000004;
}  // namespace

uint64_t rss_kb_of(const ProcReading& r, const ClockUnits& units) {
  if (r.vm_rss_kb) return *r.vm_rss_kb;
  return r.rss_pages > 0 ? static_cast<uint64_t>(r.rss_pages) * units.page_kb : 0;
}

SampleRow compute_row(const ProcReading& prev, const ProcReading& cur, uint64_t wall_ns,
                      const ClockUnits& units) {
  SampleRow r;
  r.comm = cur.comm;
  r.min_faults = delta(prev.minflt, cur.minflt);
  r.maj_faults = delta(prev.majflt, cur.majflt);
  r.min_faults_total = cur.minflt;
  r.maj_faults_total = cur.majflt;
  uint64_t cpu_ns;
  if (prev.cpu_ns && cur.cpu_ns) {
    r.cpu_time_ns_total = *cur.cpu_ns;
    cpu_ns = delta(*prev.cpu_ns, *cur.cpu_ns);
  } else {
    // Only when the CPU clock could not be read (never seen on Linux >= 2.6.12): 10 ms ticks.
    r.cpu_time_ns_total = cur.cpu_ns ? *cur.cpu_ns : cur.cpu_ticks * units.tick_ns;
    cpu_ns = delta(prev.cpu_ticks, cur.cpu_ticks) * units.tick_ns;
  }
  r.cpu_time_ns = cpu_ns;
  r.cpu_util = wall_ns > 0 ? static_cast<double>(cpu_ns) / static_cast<double>(wall_ns) : 0.0;
  r.rss_kb = rss_kb_of(cur, units);
  return r;
}

void accumulate(SampleRow& a, const SampleRow& row) {
  a.min_faults += row.min_faults;
  a.maj_faults += row.maj_faults;
  a.cpu_time_ns += row.cpu_time_ns;
  a.cpu_util += row.cpu_util;
  a.rss_kb += row.rss_kb;
}

Result<ProcReading> parse_reading(std::string_view stat_text) {
  KSCOPE_ASSIGN_OR_RETURN(auto s, proc::parse_stat(stat_text));
  ProcReading r;
  r.comm = s.comm.substr(0, 15);
  r.state = s.state;
  r.minflt = s.minflt;
  r.majflt = s.majflt;
  r.cpu_ticks = s.utime_ticks + s.stime_ticks;
  r.rss_pages = s.rss_pages;
  r.starttime_ticks = s.starttime_ticks;
  r.num_threads = s.num_threads;
  // A zombie leader whose group still has other threads (the leader stays counted in
  // nr_threads until the group dies, so more than 1 means others live).
  r.leader_exited = s.state == 'Z' && s.num_threads > 1;
  r.exiting = !r.leader_exited && ((s.flags & kPfExiting) != 0 || s.state == 'Z' || s.state == 'X');
  return r;
}

std::optional<uint64_t> parse_vm_rss_kb(std::string_view text) {
  size_t p = text.find("\nVmRSS:");
  if (p == std::string_view::npos) return std::nullopt;
  p += 7;
  while (p < text.size() && (text[p] == ' ' || text[p] == '\t')) ++p;
  uint64_t v = 0;
  size_t digits = 0;
  while (p < text.size() && text[p] >= '0' && text[p] <= '9' && digits < 19) {
    v = v * 10 + static_cast<uint64_t>(text[p] - '0');
    ++p;
    ++digits;
  }
  if (digits == 0 || text.substr(p, 3) != " kB") return std::nullopt;
  return v;
}

namespace {
// The RSS of a process whose main thread has exited: any live thread's stat (rss is the shared
// mm's) and, with exact RSS, its status. Leaves rss 0 / VmRSS unset when every thread is gone
// by now (the next reading sees the group dead).
void read_live_thread_rss(pid_t pid, bool exact, ProcReading& out) {
  out.rss_pages = 0;
  out.vm_rss_kb.reset();
  auto tids = proc::list_threads(pid);
  if (!tids) return;
  for (pid_t tid : *tids) {
    if (tid == pid) continue;
    auto st = proc::read_thread_stat(pid, tid);
    if (!st || st->state == 'Z' || st->state == 'X' || st->rss_pages <= 0) continue;
    out.rss_pages = st->rss_pages;
    if (exact) {
      auto text = read_file(fmt::format("/proc/{}/task/{}/status", pid, tid));
      if (text) out.vm_rss_kb = parse_vm_rss_kb(*text);
    }
    return;
  }
}
}  // namespace

Result<ReadOutcome> read_tracked(TrackedProcess& p, ProcReading& out) {
  // The clock first: see the header. The kernel sums se.sum_exec_runtime over the threads
  // (thread_group_cputime()); a thread running on another CPU at this moment has its current
  // slice counted up to its last scheduler tick or switch (at most one tick, 4 ms at HZ=250).
  std::optional<uint64_t> cpu_ns;
  if (p.cpu_clock) {
    timespec ts;
    if (::clock_gettime(*p.cpu_clock, &ts) == 0)
      cpu_ns =
          static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
  }
  char buf[2048];
  ssize_t n;
  do {
    n = ::pread(p.stat_fd.get(), buf, sizeof(buf) - 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == ESRCH) return ReadOutcome::kExited;  // reaped: the pid is gone
    return errno_error(fmt::format("cannot read /proc/{}/stat", p.pid));
  }
  if (n == 0) return ReadOutcome::kExited;
  auto r = parse_reading(std::string_view(buf, static_cast<size_t>(n)));
  if (!r) return make_error(fmt::format("/proc/{}/stat: {}", p.pid, r.error().message));
  out = std::move(*r);
  out.cpu_ns = cpu_ns;
  if (out.leader_exited) {
    read_live_thread_rss(p.pid, p.status_fd.valid(), out);
    return ReadOutcome::kOk;
  }
  if (out.state == 'Z' || out.state == 'X') return ReadOutcome::kExited;
  if (p.status_fd) {
    char sbuf[4096];
    ssize_t m;
    do {
      m = ::pread(p.status_fd.get(), sbuf, sizeof(sbuf) - 1, 0);
    } while (m < 0 && errno == EINTR);
    if (m > 0) out.vm_rss_kb = parse_vm_rss_kb(std::string_view(sbuf, static_cast<size_t>(m)));
  }
  return ReadOutcome::kOk;
}

Result<ReadOutcome> ProcFsSource::open(TrackedProcess& p, bool exact_rss, ProcReading& first) {
  pid_t pid = p.pid;
  p.stat_fd.reset(::open(fmt::format("/proc/{}/stat", pid).c_str(), O_RDONLY | O_CLOEXEC));
  if (!p.stat_fd) {
    // The words kscope faults and top use (trace/targets.h): no /proc entry is "no such
    // process"; one that was there and is gone or a zombie "has exited".
    if (errno == ENOENT) return make_error(fmt::format("no such process: {}", pid));
    return errno_error(fmt::format("cannot open /proc/{}/stat", pid));
  }
  if (exact_rss)
    p.status_fd.reset(::open(fmt::format("/proc/{}/status", pid).c_str(), O_RDONLY | O_CLOEXEC));
  clockid_t clock;
  if (::clock_getcpuclockid(pid, &clock) == 0) p.cpu_clock = clock;
  struct stat st;
  if (::fstat(p.stat_fd.get(), &st) == 0) p.uid = st.st_uid;
  KSCOPE_ASSIGN_OR_RETURN(auto outcome, read_tracked(p, first));
  if (outcome == ReadOutcome::kOk) {
    auto full = proc::read_stat(pid);
    if (full && proc::is_kernel_thread(*full))
      return make_error(fmt::format("pid {} is a kernel thread: it has no user memory", pid));
  }
  return outcome;
}

Result<const TrackedProcess*> Registry::add(pid_t pid, uint64_t now_ns) {
  if (pid <= 0) return usage_error(fmt::format("invalid PID {}", pid));
  if (procs_.count(pid)) return make_error(fmt::format("pid {} is already registered", pid));
  if (procs_.size() >= max_)
    return make_error(
        fmt::format("cannot register pid {}: already {} processes registered "
                    "(the limit, --max-procs)",
                    pid, max_));
  TrackedProcess p;
  p.pid = pid;
  ProcReading first;
  KSCOPE_ASSIGN_OR_RETURN(auto outcome, source_->open(p, exact_rss_, first));
  if (outcome == ReadOutcome::kExited || first.exiting)
    return make_error(fmt::format("process {} has exited", pid));
  p.last = first;
  p.last_time_ns = now_ns;
  auto [it, ok] = procs_.emplace(pid, std::move(p));
  return &it->second;
}

Status Registry::remove(pid_t pid) {
  if (procs_.erase(pid) == 0) return make_error(fmt::format("pid {} is not registered", pid));
  return {};
}

Result<std::string> Registry::refresh_identity(pid_t pid) {
  auto it = procs_.find(pid);
  if (it == procs_.end()) return make_error(fmt::format("pid {} is not registered", pid));
  TrackedProcess& p = it->second;
  ProcReading now;
  KSCOPE_ASSIGN_OR_RETURN(auto outcome, source_->read(p, now));
  // Reaped already: keep what registration read (sample_all removes it next period).
  if (now.comm.empty()) return p.last.comm;
  p.last.comm = now.comm;
  if (outcome == ReadOutcome::kOk && !now.exiting) {
    p.last.rss_pages = now.rss_pages;
    p.last.vm_rss_kb = now.vm_rss_kb;
  }
  return p.last.comm;
}

std::optional<SampleRow> Registry::sample_one(pid_t pid, TrackedProcess& p, uint64_t now_ns,
                                              uint64_t period_index, const ClockUnits& units,
                                              bool& exited) {
  ProcReading cur;
  auto outcome = source_->read(p, cur);
  if (!outcome || (*outcome == ReadOutcome::kExited && cur.comm.empty())) {
    // Reaped before we could read its final counters: nothing more to report.
    exited = true;
    return std::nullopt;
  }
  SampleRow row = compute_row(p.last, cur, now_ns - p.last_time_ns, units);
  if (cur.exiting) {
    // Its memory is already released (exit_mm()): stat reads rss 0 and status has no VmRSS.
    // The final row carries the RSS of the last live reading instead of a 0 it never had.
    row.rss_kb = p.latest ? p.latest->rss_kb : rss_kb_of(p.last, units);
  }
  row.time_ns = now_ns;
  row.period_index = period_index;
  row.pid = pid;
  p.last = cur;
  p.last_time_ns = now_ns;
  p.latest = row;
  totals_.min_faults_total += row.min_faults;
  totals_.maj_faults_total += row.maj_faults;
  totals_.cpu_time_ns_total += row.cpu_time_ns;
  exited = *outcome == ReadOutcome::kExited;
  return row;
}

std::optional<SampleRow> Registry::final_row(pid_t pid, uint64_t now_ns, uint64_t period_index,
                                             const ClockUnits& units) {
  auto it = procs_.find(pid);
  if (it == procs_.end()) return std::nullopt;
  bool exited = false;
  auto row = sample_one(pid, it->second, now_ns, period_index, units, exited);
  return row;
}

Registry::PeriodResult Registry::sample_all(uint64_t now_ns, uint64_t period_index,
                                            const ClockUnits& units) {
  PeriodResult out;
  SampleRow agg;
  agg.aggregate = true;
  agg.comm = "*";
  agg.time_ns = now_ns;
  agg.period_index = period_index;
  std::vector<pid_t> gone;
  for (auto& [pid, p] : procs_) {
    bool exited = false;
    auto row = sample_one(pid, p, now_ns, period_index, units, exited);
    if (row) {
      accumulate(agg, *row);
      out.rows.push_back(std::move(*row));
    }
    if (exited) {
      gone.push_back(pid);
      out.exited.emplace_back(pid, p.last.comm);
    }
  }
  if (!out.rows.empty()) {
    agg.min_faults_total = totals_.min_faults_total;
    agg.maj_faults_total = totals_.maj_faults_total;
    agg.cpu_time_ns_total = totals_.cpu_time_ns_total;
    out.rows.push_back(agg);
  }
  for (pid_t pid : gone) procs_.erase(pid);
  return out;
}

}  // namespace kscope::monitor
