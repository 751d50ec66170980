// kscope study locality|thrashing: the two classic virtual-memory case studies, run end to end
// with kscope monitor and kscope-work on this machine: raw CSV, SVG plots, a markdown summary.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "monitor/protocol.h"
#include "render/svg_chart.h"
#include "trace/command_launcher.h"
#include "trace/proc.h"
#include "util/csv.h"
#include "util/fd.h"

namespace kscope::cli {

namespace {

volatile sig_atomic_t g_study_stop = 0;
void on_study_stop(int) { g_study_stop = 1; }

double mono_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

void sleep_ms(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

Status write_file(const std::string& path, const std::string& text) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return errno_error(fmt::format("cannot write {}", path));
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(fmt::format("cannot write {}", path));
    off += static_cast<size_t>(n);
  }
  return {};
}

Status write_sysfs(const std::string& path, const std::string& value) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno_error(fmt::format("cannot open {}", path));
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    return errno_error(fmt::format("cannot write '{}' to {}", value, path));
  return {};
}

std::string self_dir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "kscope";
}

Result<std::string> find_work_binary(const std::string& given) {
  if (!given.empty()) return find_executable(given);
  std::string beside = self_dir() + "/kscope-work";
  if (::access(beside.c_str(), X_OK) == 0) return beside;
  return find_executable("kscope-work");
}

// Runs a program to completion with stdout/stderr to /dev/null; returns its exit status.
int run_quiet(const std::vector<std::string>& argv) {
  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execvp(a[0], a.data());
    ::_exit(127);
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// ---- CSV of the monitor ---------------------------------------------------------------------

struct CsvRow {
  double time_s = 0;
  std::string pid;  // "all" for aggregate rows
  std::string comm;
  uint64_t min_faults = 0, maj_faults = 0, min_total = 0, maj_total = 0;
  double cpu_util = 0;
  uint64_t rss_kb = 0;
};

Result<std::vector<CsvRow>> read_monitor_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(fmt::format("cannot read {}", path));
  std::string line;
  std::getline(in, line);
  std::vector<CsvRow> rows;
  while (std::getline(in, line)) {
    auto f = split_csv_line(line);
    if (f.size() != 9) return make_error(fmt::format("{}: malformed line '{}'", path, line));
    CsvRow r;
    try {
      r.time_s = std::stod(f[0]) / 1e3;
      r.pid = f[1];
      r.comm = f[2];
      r.min_faults = std::stoull(f[3]);
      r.maj_faults = std::stoull(f[4]);
      r.min_total = std::stoull(f[5]);
      r.maj_total = std::stoull(f[6]);
      r.cpu_util = std::stod(f[7]);
      r.rss_kb = std::stoull(f[8]);
    } catch (const std::exception&) {
      return make_error(fmt::format("{}: malformed line '{}'", path, line));
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

// ---- one experiment: a monitor and some workers ---------------------------------------------

struct WorkerSpec {
  std::string label;              // e.g. "A: random 1024 MB x 50000"
  std::vector<std::string> args;  // kscope-work arguments
};

struct WorkerResult {
  std::string label;
  pid_t pid = 0;
  int exit_status = -1;
  double elapsed_ms = -1;  // as kscope-work reports it
  uint64_t min_faults = 0, maj_faults = 0;
  double cpu_ms = 0;
  double user_ms = 0;
  double wall_s = 0;  // from release to exit, as the study saw it
};

struct RunResult {
  std::vector<WorkerResult> workers;
  std::vector<CsvRow> rows;
  double wall_s = 0;  // release to last exit
  std::string csv_path;
};

void parse_work_report(const std::string& text, WorkerResult& w) {
  auto get = [&](const std::string& key) -> std::string {
    size_t p = text.find(" " + key + "=");
    if (p == std::string::npos) return {};
    p += key.size() + 2;
    size_t e = text.find_first_of(" \n", p);
    return text.substr(p, e == std::string::npos ? std::string::npos : e - p);
  };
  try {
    if (auto v = get("elapsed_ms"); !v.empty()) w.elapsed_ms = std::stod(v);
    if (auto v = get("min_faults"); !v.empty()) w.min_faults = std::stoull(v);
    if (auto v = get("maj_faults"); !v.empty()) w.maj_faults = std::stoull(v);
    if (auto v = get("cpu_ms"); !v.empty()) w.cpu_ms = std::stod(v);
    if (auto v = get("user_ms"); !v.empty()) w.user_ms = std::stod(v);
  } catch (const std::exception&) {
  }
}

class MonitorProcess {
 public:
  ~MonitorProcess() { stop(); }
  Status start(const std::string& socket, const std::string& csv, const std::string& log,
               int period_ms) {
    socket_ = socket;
    pid_ = ::fork();
    if (pid_ < 0) return errno_error("fork");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // no orphaned monitor if the study is killed
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) ::dup2(fd, 2);
      std::string exe = self_exe();
      std::string period = std::to_string(period_ms);
      ::execl(exe.c_str(), "kscope", "monitor", "--socket", socket.c_str(), "--no-shm", "-q", "-o",
              csv.c_str(), "--period-ms", period.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Ready when it answers.
    for (int i = 0; i < 100; ++i) {
      auto r = monitor::call_monitor(socket_, "status", 1000);
      if (r && r->ok) return {};
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return make_error(fmt::format("the monitor failed to start; see {}", log));
      }
      sleep_ms(50);
    }
    return make_error(fmt::format("the monitor did not come up; see {}", log));
  }
  Status register_pid(pid_t pid) {
    KSCOPE_ASSIGN_OR_RETURN(auto r,
                            monitor::call_monitor(socket_, fmt::format("register {}", pid)));
    if (!r.ok) return make_error(fmt::format("monitor refused pid {}: {}", pid, r.message));
    return {};
  }
  int stop() {
    if (pid_ <= 0) return 0;
    ::kill(pid_, SIGTERM);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

 private:
  pid_t pid_ = -1;
  std::string socket_;
};

// Starts the workers one after another: each is created stopped at its exec gate, moved into
// `cgroup_procs` when given, registered with a fresh monitor, then released. (Releasing them all
// at once is not possible: a worker still at its gate holds a copy of the gate pipes of the
// workers forked before it, so those would never see their gate close.) Released workers wait
// on a start pipe (kscope-work --start-fd) that is closed once all are ready, so they begin
// their work at the same moment. Waits for all to exit.
Result<RunResult> run_experiment(const std::string& out_dir, const std::string& name,
                                 const std::string& work_binary,
                                 const std::vector<WorkerSpec>& specs, int period_ms,
                                 const std::string& cgroup_procs) {
  RunResult result;
  result.csv_path = fmt::format("{}/{}.csv", out_dir, name);
  std::string socket = fmt::format("{}/.{}.sock", out_dir, name);
  if (socket.size() > 100) socket = fmt::format("/tmp/kscope-study-{}-{}.sock", ::getpid(), name);
  MonitorProcess mon;
  KSCOPE_TRY(mon.start(socket, result.csv_path, fmt::format("{}/.{}.monitor.log", out_dir, name),
                       period_ms));
  int start_pipe[2];
  if (::pipe(start_pipe) != 0) return errno_error("pipe");
  Fd start_read(start_pipe[0]);   // inherited by the workers
  Fd start_write(start_pipe[1]);  // closed at their exec, and by us to start them
  ::fcntl(start_write.get(), F_SETFD, FD_CLOEXEC);
  std::vector<LaunchedCommand> cmds;
  std::vector<std::string> logs;
  for (size_t i = 0; i < specs.size(); ++i) {
    std::vector<std::string> argv = {work_binary, "--start-fd", std::to_string(start_read.get())};
    argv.insert(argv.end(), specs[i].args.begin(), specs[i].args.end());
    std::string log = fmt::format("{}/.{}.worker{}.out", out_dir, name, i);
    logs.push_back(log);
    // The worker's stdout (its final report) goes to a file: swap it in around the fork.
    Fd out(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!out) return errno_error(fmt::format("cannot write {}", log));
    std::fflush(stdout);
    Fd saved(::dup(1));
    ::dup2(out.get(), 1);
    auto cmd = LaunchedCommand::start(argv);
    ::dup2(saved.get(), 1);
    if (!cmd) return std::move(cmd).error();
    cmds.push_back(std::move(*cmd));
    if (!cgroup_procs.empty())
      KSCOPE_TRY(write_sysfs(cgroup_procs, std::to_string(cmds.back().pid())));
    KSCOPE_TRY(mon.register_pid(cmds.back().pid()));
    KSCOPE_TRY(cmds.back().release());
  }
  start_read.reset();
  double t0 = mono_s();
  start_write.reset();  // all workers start now
  std::vector<double> exit_time(cmds.size(), -1);
  size_t remaining = cmds.size();
  while (remaining > 0) {
    if (g_study_stop) {
      for (auto& c : cmds) c.terminate();
      for (auto& c : cmds)
        if (!c.has_exited()) ::kill(c.pid(), SIGKILL);
      return Error{"interrupted; the workers were stopped", 0, ExitCode::kFailure, {}};
    }
    for (size_t i = 0; i < cmds.size(); ++i)
      if (exit_time[i] < 0 && cmds[i].has_exited()) {
        exit_time[i] = mono_s() - t0;
        --remaining;
      }
    sleep_ms(10);
  }
  result.wall_s = mono_s() - t0;
  // Give the monitor one more period to see the zombies' final counters, then reap.
  sleep_ms(period_ms * 2 + 20);
  for (size_t i = 0; i < cmds.size(); ++i) {
    WorkerResult w;
    w.label = specs[i].label;
    w.pid = cmds[i].pid();
    auto st = cmds[i].reap();
    w.exit_status = st ? *st : -1;
    w.wall_s = exit_time[i];
    auto text = proc::read_text_file(logs[i], 4096);
    if (text) parse_work_report(*text, w);
    result.workers.push_back(w);
  }
  int mst = mon.stop();
  if (mst != 0) return make_error(fmt::format("the monitor exited with status {}", mst));
  KSCOPE_ASSIGN_OR_RETURN(result.rows, read_monitor_csv(result.csv_path));
  return result;
}

// Cumulative series of one pid: (time s, total).
ChartSeries cumulative(const std::vector<CsvRow>& rows, const std::string& pid,
                       const std::string& name, bool major) {
  ChartSeries s;
  s.name = name;
  s.dashed = major;
  for (const auto& r : rows)
    if (r.pid == pid)
      s.points.emplace_back(r.time_s, static_cast<double>(major ? r.maj_total : r.min_total));
  return s;
}

Status ensure_out_dir(const std::string& dir) {
  if (dir.empty()) return usage_error("--out DIR must not be empty");
  std::string acc;
  std::stringstream ss(dir);
  std::string part;
  if (dir[0] == '/') acc = "/";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    acc += part + "/";
    if (::mkdir(acc.c_str(), 0755) != 0 && errno != EEXIST)
      return errno_error(fmt::format("cannot create {}", acc));
  }
  return {};
}

void install_study_signals() {
  g_study_stop = 0;
  struct sigaction sa = {};
  sa.sa_handler = on_study_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
}

// ---- locality ------------------------------------------------------------------------------

struct LocalityOptions {
  std::string out = "study-locality";
  uint64_t mb = 1024;
  uint64_t accesses_a = 50000;
  uint64_t accesses_b = 10000;
  uint64_t iterations = 20;
  int period_ms = 50;
  std::string work;
};

Result<int> run_locality(const LocalityOptions& o) {
  if (o.mb < 1 || o.accesses_a < 1 || o.accesses_b < 1 || o.iterations < 1)
    return usage_error("--mb, --accesses-a, --accesses-b and --iterations must be positive");
  if (o.period_ms < 1 || o.period_ms > 60000) return usage_error("--period-ms must be 1..60000");
  KSCOPE_TRY(ensure_out_dir(o.out));
  KSCOPE_ASSIGN_OR_RETURN(auto work, find_work_binary(o.work));
  install_study_signals();
  auto spec = [&](const std::string& tag, const char* pattern, uint64_t acc) {
    return WorkerSpec{fmt::format("{}: {} {} MB x {}", tag, pattern, o.mb, acc),
                      {"--mb", std::to_string(o.mb), "--pattern", pattern, "--accesses",
                       std::to_string(acc), "--iterations", std::to_string(o.iterations)}};
  };
  std::vector<std::vector<WorkerSpec>> runs = {
      {spec("A", "random", o.accesses_a), spec("B", "random", o.accesses_b)},
      {spec("A", "random", o.accesses_a), spec("B", "locality", o.accesses_b)}};
  std::vector<RunResult> results;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::fprintf(stderr, "kscope: study locality: run %zu of 2 (%s + %s)\n", i + 1,
                 runs[i][0].label.c_str(), runs[i][1].label.c_str());
    KSCOPE_ASSIGN_OR_RETURN(auto r, run_experiment(o.out, fmt::format("locality-run{}", i + 1),
                                                   work, runs[i], o.period_ms, ""));
    results.push_back(std::move(r));
  }
  std::string md = "# Locality study\n\n";
  md += fmt::format(
      "Two runs of two concurrent `kscope-work` processes each, sampled by `kscope monitor` "
      "every {} ms; {} iterations per process. Run 1: {} and {}. Run 2: {} and {}.\n\n",
      o.period_ms, o.iterations, runs[0][0].label, runs[0][1].label, runs[1][0].label,
      runs[1][1].label);
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    std::vector<ChartSeries> series;
    for (const auto& w : r.workers) {
      series.push_back(cumulative(r.rows, std::to_string(w.pid), w.label + " - minor", false));
    }
    for (const auto& w : r.workers)
      series.push_back(cumulative(r.rows, std::to_string(w.pid), w.label + " - major", true));
    ChartOptions co;
    co.title = fmt::format("Locality study, run {}: cumulative page faults", i + 1);
    co.x_label = "time since the monitor started (s)";
    co.y_label = "cumulative faults (count)";
    co.x_from_zero = true;
    KSCOPE_TRY(write_file(fmt::format("{}/locality-run{}.svg", o.out, i + 1),
                          render_svg_chart(series, co)));
    md += fmt::format("## Run {}\n\n![run {}](locality-run{}.svg)\n\n", i + 1, i + 1, i + 1);
    md +=
        "| process | completion (s) | minor faults | major faults | CPU (s) | monitor's last minor "
        "total |\n";
    md += "| --- | ---: | ---: | ---: | ---: | ---: |\n";
    for (const auto& w : r.workers) {
      uint64_t last = 0;
      for (const auto& row : r.rows)
        if (row.pid == std::to_string(w.pid)) last = row.min_total;
      md += fmt::format("| {} | {:.2f} | {} | {} | {:.2f} | {} |\n", w.label, w.elapsed_ms / 1e3,
                        w.min_faults, w.maj_faults, w.cpu_ms / 1e3, last);
    }
    md += fmt::format("\nBoth processes finished {:.2f} s after they were started.\n\n", r.wall_s);
  }
  // Comparison of the second process of each run: same size and accesses, random vs locality.
  const auto& rb = results[0].workers[1];
  const auto& lb = results[1].workers[1];
  ChartSeries s1 = cumulative(results[0].rows, std::to_string(rb.pid), "run 1 B: random", false);
  ChartSeries s2 = cumulative(results[1].rows, std::to_string(lb.pid), "run 2 B: locality", false);
  ChartOptions co;
  co.title = "Random vs locality access: cumulative minor faults";
  co.x_label = "time since the monitor started (s)";
  co.y_label = "cumulative minor faults (count)";
  co.x_from_zero = true;
  KSCOPE_TRY(
      write_file(fmt::format("{}/locality-compare.svg", o.out), render_svg_chart({s1, s2}, co)));
  md += "## Comparison\n\n![compare](locality-compare.svg)\n\n";
  double ratio = lb.min_faults ? static_cast<double>(rb.min_faults) / lb.min_faults : 0;
  md += fmt::format(
      "With the same size and number of accesses, the random process B of run 1 took {} minor "
      "faults and finished in {:.2f} s; the locality process B of run 2 took {} minor faults "
      "({:.1f}x fewer) and finished in {:.2f} s. Process A (random, {} accesses) took {} and {} "
      "minor faults and finished in {:.2f} s and {:.2f} s. Major faults: {} / {} (run 1) and "
      "{} / {} (run 2): the machine has enough memory, so every fault is a first touch.\n",
      rb.min_faults, rb.elapsed_ms / 1e3, lb.min_faults, ratio, lb.elapsed_ms / 1e3, o.accesses_a,
      results[0].workers[0].min_faults, results[1].workers[0].min_faults,
      results[0].workers[0].elapsed_ms / 1e3, results[1].workers[0].elapsed_ms / 1e3,
      results[0].workers[0].maj_faults, rb.maj_faults, results[1].workers[0].maj_faults,
      lb.maj_faults);
  md +=
      "\nFault counts, completion time and CPU are what each `kscope-work` reported about "
      "itself (getrusage); the plots are the monitor's samples. Raw samples: `locality-run1.csv`, "
      "`locality-run2.csv`.\n";
  KSCOPE_TRY(write_file(o.out + "/locality.md", md));
  std::fputs(md.c_str(), stdout);
  return 0;
}

// ---- thrashing -----------------------------------------------------------------------------

struct ThrashingOptions {
  std::string out = "study-thrashing";
  std::string n_list = "1,5,11,21,28";
  uint64_t mb = 200;
  uint64_t accesses = 10000;
  uint64_t iterations = 20;
  uint64_t limit_mb = 1536;
  uint64_t swap_mb = 0;  // 0: enough for the largest N
  std::string swap = "auto";
  int period_ms = 50;
  std::string work;
};

// One state file per running study: /run/kscope/study-state.PID.
constexpr const char* kStudyStateDir = "/run/kscope";
constexpr const char* kStudyStatePrefix = "study-state.";

std::string study_state_path(pid_t pid) {
  return fmt::format("{}/{}{}", kStudyStateDir, kStudyStatePrefix, pid);
}

// The memory pressure of the thrashing study: a memory cgroup with a limit and swap (zram, or a
// file on disk when zram is not available). Everything is undone by the destructor; the undo
// steps are also written to /run/kscope/study-state.PID before each change, so a study killed
// with SIGKILL is cleaned up by the next one.
class Pressure {
 public:
  ~Pressure() { restore(); }

  Status setup(uint64_t limit_mb, uint64_t swap_mb, const std::string& mode,
               const std::string& out_dir) {
    KSCOPE_TRY(setup_cgroup(limit_mb));
    KSCOPE_TRY(setup_swap(swap_mb, mode, out_dir));
    return {};
  }
  const std::string& procs_file() const { return procs_file_; }
  std::string describe() const { return description_; }

  void restore() {
    if (swap_on_) {
      if (::swapoff(swap_path_.c_str()) != 0)
        std::fprintf(stderr, "kscope: warning: swapoff %s: %s\n", swap_path_.c_str(),
                     std::strerror(errno));
      swap_on_ = false;
    }
    if (zram_index_ >= 0) {
      auto ignored = write_sysfs(fmt::format("/sys/block/zram{}/reset", zram_index_), "1");
      if (zram_hot_added_) {
        auto ignored2 =
            write_sysfs("/sys/class/zram-control/hot_remove", std::to_string(zram_index_));
        (void)ignored2;
      }
      (void)ignored;
      zram_index_ = -1;
    }
    if (!swap_file_.empty()) {
      ::unlink(swap_file_.c_str());
      swap_file_.clear();
    }
    if (!cgroup_dir_.empty()) {
      for (int i = 0; i < 50 && ::rmdir(cgroup_dir_.c_str()) != 0 && errno == EBUSY; ++i)
        sleep_ms(100);
      cgroup_dir_.clear();
    }
    ::unlink(study_state_path(::getpid()).c_str());
  }

  // Undoes what studies killed with SIGKILL left behind (their state files name it).
  static void recover_leftovers() {
    DIR* dir = ::opendir(kStudyStateDir);
    if (!dir) return;
    std::vector<std::string> files;
    while (auto* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name.rfind(kStudyStatePrefix, 0) == 0)
        files.push_back(std::string(kStudyStateDir) + "/" + name);
    }
    ::closedir(dir);
    for (const auto& f : files) recover_one(f);
  }

  static void recover_one(const std::string& path) {
    auto text = proc::read_text_file(path, 4096);
    if (!text) return;
    std::istringstream in(*text);
    std::string key, value;
    pid_t owner = 0;
    std::vector<std::pair<std::string, std::string>> steps;
    while (in >> key >> value) {
      if (key == "pid")
        owner = std::atoi(value.c_str());
      else
        steps.emplace_back(key, value);
    }
    if (owner > 0 && ::kill(owner, 0) == 0) return;  // still running
    std::fprintf(stderr, "kscope: cleaning up after a study that did not finish (pid %d)\n", owner);
    // Its workers may still run inside the cgroup: stop them first, or swapoff and rmdir fail.
    for (auto& [k, v] : steps) {
      if (k != "cgroup") continue;
      for (int round = 0; round < 50; ++round) {
        auto procs = proc::read_text_file(v + "/cgroup.procs", 1 << 16);
        if (!procs || procs->empty()) break;
        std::istringstream ps(*procs);
        pid_t p;
        while (ps >> p) ::kill(p, SIGKILL);
        sleep_ms(100);
      }
    }
    for (auto& [k, v] : steps)
      if (k == "swap") ::swapoff(v.c_str());
    for (auto& [k, v] : steps) {
      if (k == "zram") {
        auto a = write_sysfs(fmt::format("/sys/block/zram{}/reset", v), "1");
        auto b = write_sysfs("/sys/class/zram-control/hot_remove", v);
        (void)a;
        (void)b;
      } else if (k == "zram-reused") {
        auto a = write_sysfs(fmt::format("/sys/block/zram{}/reset", v), "1");
        (void)a;
      } else if (k == "swapfile") {
        ::unlink(v.c_str());
      } else if (k == "cgroup") {
        ::rmdir(v.c_str());
      }
    }
    ::unlink(path.c_str());
  }

 private:
  void save_state() {
    std::string s = fmt::format("pid {}\n", ::getpid());
    if (!cgroup_dir_.empty()) s += "cgroup " + cgroup_dir_ + "\n";
    if (zram_index_ >= 0)
      s += fmt::format("{} {}\n", zram_hot_added_ ? "zram" : "zram-reused", zram_index_);
    if (!swap_file_.empty()) s += "swapfile " + swap_file_ + "\n";
    if (swap_on_) s += "swap " + swap_path_ + "\n";
    ::mkdir(kStudyStateDir, 0755);
    auto ignored = write_file(study_state_path(::getpid()), s);
    (void)ignored;
  }

  Status setup_cgroup(uint64_t limit_mb) {
    std::string name = fmt::format("kscope-study-{}", ::getpid());
    struct stat st;
    if (::stat("/sys/fs/cgroup/memory/memory.limit_in_bytes", &st) == 0) {
      cgroup_dir_ = "/sys/fs/cgroup/memory/" + name;  // cgroup v1
      if (::mkdir(cgroup_dir_.c_str(), 0755) != 0) {
        cgroup_dir_.clear();
        return errno_error("cannot create a memory cgroup under /sys/fs/cgroup/memory");
      }
      save_state();
      KSCOPE_TRY(
          write_sysfs(cgroup_dir_ + "/memory.limit_in_bytes", std::to_string(limit_mb << 20)));
      procs_file_ = cgroup_dir_ + "/cgroup.procs";
    } else {
      std::string root;
      for (const char* r : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
        auto c = proc::read_text_file(std::string(r) + "/cgroup.subtree_control", 4096);
        if (c && c->find("memory") != std::string::npos) {
          root = r;
          break;
        }
      }
      if (root.empty())
        return make_error("no memory cgroup controller (neither cgroup v1 memory nor v2 memory)");
      cgroup_dir_ = root + "/" + name;
      if (::mkdir(cgroup_dir_.c_str(), 0755) != 0) {
        cgroup_dir_.clear();
        return errno_error("cannot create a memory cgroup");
      }
      save_state();
      KSCOPE_TRY(write_sysfs(cgroup_dir_ + "/memory.max", std::to_string(limit_mb << 20)));
      procs_file_ = cgroup_dir_ + "/cgroup.procs";
    }
    description_ = fmt::format("memory cgroup {} limited to {} MiB", cgroup_dir_, limit_mb);
    return {};
  }

  Status setup_swap(uint64_t swap_mb, const std::string& mode, const std::string& out_dir) {
    std::string why_not_zram;
    if (mode == "zram" || mode == "auto") {
      auto st = setup_zram(swap_mb);
      if (st) return {};
      why_not_zram = st.error().describe();
      if (mode == "zram") return std::move(st).error();
      std::fprintf(stderr, "kscope: zram not usable (%s); using a swap file on disk\n",
                   why_not_zram.c_str());
    }
    (void)out_dir;
    swap_file_ = fmt::format("/var/tmp/kscope-study-swap-{}", ::getpid());
    Fd fd(::open(swap_file_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) {
      swap_file_.clear();
      return errno_error("cannot create a swap file in /var/tmp");
    }
    save_state();
    if (::posix_fallocate(fd.get(), 0, static_cast<off_t>(swap_mb << 20)) != 0)
      return make_error(fmt::format("cannot allocate {} MiB for the swap file", swap_mb));
    fd.reset();
    if (run_quiet({"mkswap", swap_file_}) != 0) return make_error("mkswap failed on the swap file");
    swap_path_ = swap_file_;
    if (::swapon(swap_path_.c_str(), 0) != 0) return errno_error("swapon of the swap file");
    swap_on_ = true;
    save_state();
    description_ += fmt::format("; swap: a {} MiB file on disk ({})", swap_mb, swap_file_);
    return {};
  }

  Status setup_zram(uint64_t swap_mb) {
    struct stat st;
    if (::stat("/sys/class/zram-control/hot_add", &st) == 0) {
      auto idx = proc::read_text_file("/sys/class/zram-control/hot_add", 64);
      if (!idx) return std::move(idx).error();
      zram_index_ = std::atoi(idx->c_str());
      zram_hot_added_ = true;
    } else if (::stat("/sys/block/zram0/disksize", &st) == 0) {
      auto size = proc::read_text_file("/sys/block/zram0/disksize", 64);
      if (!size || std::atoll(size->c_str()) != 0) return make_error("zram0 is already in use");
      zram_index_ = 0;
    } else {
      return make_error("no zram device (CONFIG_ZRAM off?)");
    }
    save_state();
    std::string dev = fmt::format("/dev/zram{}", zram_index_);
    for (int i = 0; i < 20 && ::stat(dev.c_str(), &st) != 0; ++i) sleep_ms(50);
    KSCOPE_TRY(write_sysfs(fmt::format("/sys/block/zram{}/disksize", zram_index_),
                           std::to_string(swap_mb << 20)));
    if (run_quiet({"mkswap", dev}) != 0) return make_error(fmt::format("mkswap {} failed", dev));
    swap_path_ = dev;
    if (::swapon(dev.c_str(),
                 SWAP_FLAG_PREFER | ((100 << SWAP_FLAG_PRIO_SHIFT) & SWAP_FLAG_PRIO_MASK)) != 0)
      return errno_error(fmt::format("swapon {}", dev));
    swap_on_ = true;
    save_state();
    description_ += fmt::format("; swap: {} with {} MiB (compressed in RAM)", dev, swap_mb);
    return {};
  }

  std::string cgroup_dir_;
  std::string procs_file_;
  int zram_index_ = -1;
  bool zram_hot_added_ = false;
  std::string swap_path_;
  std::string swap_file_;
  bool swap_on_ = false;
  std::string description_;
};

Result<int> run_thrashing(const ThrashingOptions& o) {
  KSCOPE_ASSIGN_OR_RETURN(auto ns, proc::parse_pid_list(o.n_list));  // positive integers
  if (o.mb < 1 || o.accesses < 1 || o.iterations < 1 || o.limit_mb < 8)
    return usage_error("--mb, --accesses and --iterations must be positive, --limit-mb >= 8");
  for (auto n : ns)
    if (n > 512) return usage_error("--n: at most 512 processes per step");
  if (o.swap != "auto" && o.swap != "zram" && o.swap != "file")
    return usage_error("--swap must be auto, zram or file");
  if (o.period_ms < 1 || o.period_ms > 60000) return usage_error("--period-ms must be 1..60000");
  if (::geteuid() != 0)
    return make_error(
        "kscope study thrashing needs root: it creates a memory cgroup and enables "
        "swap for the run",
        0, "run it with sudo");
  KSCOPE_TRY(ensure_out_dir(o.out));
  KSCOPE_ASSIGN_OR_RETURN(auto work, find_work_binary(o.work));
  uint64_t max_n = *std::max_element(ns.begin(), ns.end());
  uint64_t swap_mb = o.swap_mb ? o.swap_mb : max_n * o.mb + 512;
  install_study_signals();
  Pressure::recover_leftovers();
  Pressure pressure;
  KSCOPE_TRY(pressure.setup(o.limit_mb, swap_mb, o.swap, o.out));
  std::fprintf(stderr, "kscope: study thrashing: %s\n", pressure.describe().c_str());
  long ncpu = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1) ncpu = 1;

  struct Point {
    int n;
    double wall_s;
    double util_monitor;  // mean aggregate cpu_util / ncpu, percent
    double util_self;     // sum of workers' own CPU / (wall * ncpu), percent
    double util_user;     // the same, user-mode time only: the work itself
    uint64_t maj, min;
    int failed;
    std::string failed_status;  // exit statuses of the failed workers
  };
  std::vector<Point> points;
  std::string table =
      "n,completion_s,cpu_util_pct,cpu_util_self_reported_pct,user_cpu_util_pct,maj_faults,"
      "min_faults,failed\n";
  for (pid_t n : ns) {
    std::vector<WorkerSpec> specs;
    for (int i = 0; i < n; ++i)
      specs.push_back({fmt::format("w{}", i),
                       {"--mb", std::to_string(o.mb), "--pattern", "random", "--accesses",
                        std::to_string(o.accesses), "--iterations", std::to_string(o.iterations),
                        "--seed", std::to_string(i + 1)}});
    std::fprintf(stderr, "kscope: study thrashing: N=%d ...\n", n);
    KSCOPE_ASSIGN_OR_RETURN(auto r, run_experiment(o.out, fmt::format("thrashing-n{}", n), work,
                                                   specs, o.period_ms, pressure.procs_file()));
    Point p{n, r.wall_s, 0, 0, 0, 0, 0, 0};
    double cpu_ms = 0, user_ms = 0;
    for (const auto& w : r.workers) {
      user_ms += w.user_ms;
      p.maj += w.maj_faults;
      p.min += w.min_faults;
      cpu_ms += w.cpu_ms;
      if (w.exit_status != 0) {
        ++p.failed;
        p.failed_status += (p.failed_status.empty() ? "" : ", ") + std::to_string(w.exit_status);
      }
    }
    // Mean of the aggregate utilization over the active interval: from the first period with
    // CPU use to the last (the workers are registered before they start, so the first rows are
    // idle waiting for the start signal, and the last ones are exit teardown).
    std::vector<double> agg;
    for (const auto& row : r.rows)
      if (row.pid == "all") agg.push_back(row.cpu_util);
    size_t first = 0, last = agg.size();
    while (first < agg.size() && agg[first] <= 0) ++first;
    while (last > first && agg[last - 1] <= 0) --last;
    double sum = 0;
    for (size_t i = first; i < last; ++i) sum += agg[i];
    p.util_monitor = last > first ? 100.0 * sum / static_cast<double>(last - first) / ncpu : 0;
    p.util_self = r.wall_s > 0 ? 100.0 * cpu_ms / 1e3 / r.wall_s / ncpu : 0;
    p.util_user = r.wall_s > 0 ? 100.0 * user_ms / 1e3 / r.wall_s / ncpu : 0;
    points.push_back(p);
    table += fmt::format("{},{:.3f},{:.1f},{:.1f},{:.1f},{},{},{}\n", p.n, p.wall_s, p.util_monitor,
                         p.util_self, p.util_user, p.maj, p.min, p.failed);
    std::fprintf(stderr,
                 "kscope: study thrashing: N=%d done in %.2f s, CPU %.1f%%, %llu major faults%s\n",
                 n, p.wall_s, p.util_monitor, static_cast<unsigned long long>(p.maj),
                 p.failed ? " (some workers failed)" : "");
  }
  pressure.restore();
  KSCOPE_TRY(write_file(o.out + "/thrashing.csv", table));

  ChartSeries util{"CPU utilization (monitor samples)", {}, true, false};
  ChartSeries util_self{"CPU utilization (workers' own getrusage)", {}, true, true};
  ChartSeries util_user{"user-mode CPU utilization: the work itself (getrusage)", {}, true, false};
  ChartSeries wall{"completion time of all N processes", {}, true, false};
  ChartSeries maj{"major faults, all processes", {}, true, false};
  for (const auto& p : points) {
    util.points.emplace_back(p.n, p.util_monitor);
    util_self.points.emplace_back(p.n, p.util_self);
    util_user.points.emplace_back(p.n, p.util_user);
    wall.points.emplace_back(p.n, p.wall_s);
    maj.points.emplace_back(p.n, static_cast<double>(p.maj));
  }
  ChartOptions co;
  co.x_from_zero = true;
  co.x_label = "concurrent processes N";
  co.title = fmt::format("Thrashing: total CPU utilization vs N ({} MiB each, {} MiB limit)", o.mb,
                         o.limit_mb);
  co.y_label = fmt::format("CPU utilization (% of {} CPUs)", ncpu);
  KSCOPE_TRY(
      write_file(o.out + "/thrashing-cpu.svg", render_svg_chart({util, util_self, util_user}, co)));
  co.title = "Thrashing: completion time vs N";
  co.y_label = "completion time (s)";
  KSCOPE_TRY(write_file(o.out + "/thrashing-time.svg", render_svg_chart({wall}, co)));
  co.title = "Thrashing: major faults vs N";
  co.y_label = "major faults (count)";
  KSCOPE_TRY(write_file(o.out + "/thrashing-faults.svg", render_svg_chart({maj}, co)));

  std::string md = "# Thrashing study\n\n";
  md += fmt::format(
      "N concurrent `kscope-work --mb {} --pattern random --accesses {} --iterations {}` for N = "
      "{}, in a {} (set up by the study and removed afterwards). Sampled by `kscope monitor` every "
      "{} ms. {} CPUs online.\n\n",
      o.mb, o.accesses, o.iterations, o.n_list, pressure.describe(), o.period_ms, ncpu);
  md +=
      "| N | completion (s) | CPU utilization, monitor (% of all CPUs) | same, workers' getrusage "
      "| user-mode part | major faults | minor faults | failed |\n"
      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& p : points)
    md += fmt::format("| {} | {:.2f} | {:.1f} | {:.1f} | {:.1f} | {} | {} | {} |\n", p.n, p.wall_s,
                      p.util_monitor, p.util_self, p.util_user, p.maj, p.min, p.failed);
  md +=
      "\n![CPU utilization](thrashing-cpu.svg)\n\n![completion time](thrashing-time.svg)\n\n"
      "![major faults](thrashing-faults.svg)\n\n";
  // Where it peaks and where it collapses (below 70% of the peak), for total and user-mode CPU.
  auto describe = [&](const char* what, double Point::*field) {
    auto peak = std::max_element(points.begin(), points.end(), [&](const Point& a, const Point& b) {
      return a.*field < b.*field;
    });
    std::string out = fmt::format("{} peaks at N = {} ({:.1f}%)", what, peak->n, (*peak).*field);
    auto after = std::find_if(peak, points.end(),
                              [&](const Point& p) { return p.*field < 0.7 * ((*peak).*field); });
    if (after != points.end())
      out += fmt::format(" and collapses at N = {} ({:.1f}%, {:.0f}% of the peak; {} major faults)",
                         after->n, (*after).*field, 100 * ((*after).*field) / ((*peak).*field),
                         after->maj);
    else
      out += " and does not fall below 70% of the peak within the N measured";
    return out + ".";
  };
  md += describe("Total CPU utilization (monitor)", &Point::util_monitor) + " " +
        describe("User-mode CPU utilization, the workers' actual work,", &Point::util_user) + "\n";
  for (const auto& p : points)
    if (p.failed)
      md += fmt::format(
          "\nAt N = {}, {} worker(s) did not finish normally (exit status {}; 137 = killed by "
          "SIGKILL, here the cgroup's OOM killer when reclaim cannot keep up): their own counts "
          "are missing from the totals, the monitor's samples still have them.\n",
          p.n, p.failed, p.failed_status);
  auto fastest = points.front();
  auto slowest = points.back();
  if (points.size() > 1 && fastest.n > 0 && slowest.n > 0)
    md += fmt::format(
        "\nCompletion time per process-worth of work: {:.3f} s at N = {}, {:.3f} s at N = {} "
        "({:.0f}x).\n",
        fastest.wall_s / fastest.n, fastest.n, slowest.wall_s / slowest.n, slowest.n,
        fastest.wall_s > 0 ? (slowest.wall_s / slowest.n) / (fastest.wall_s / fastest.n) : 0.0);
  md +=
      "\nUtilization is the workers' user+system CPU time divided by wall time and by the "
      "number of CPUs. Reclaiming and swapping a process's pages (including zram compression "
      "and decompression) is done by the kernel in that process's context and counted as its "
      "system time: with swap on zram the CPUs stay busy under thrashing, but with the kernel's "
      "paging rather than the work. The user-mode part is what collapses, together with the "
      "completion time.\n";
  KSCOPE_TRY(write_file(o.out + "/thrashing.md", md));
  std::fputs(md.c_str(), stdout);
  return 0;
}

}  // namespace

Subcommand setup_study(CLI::App& parent) {
  auto* app = parent.add_subcommand(
      "study",
      "Run a classic virtual-memory case study end to end with kscope monitor and kscope-work: "
      "raw CSV, SVG plots and a markdown summary in --out DIR.\n"
      "  kscope study locality [--out DIR] [--mb 1024] [--accesses-a 50000] [--accesses-b 10000]\n"
      "  kscope study thrashing [--out DIR] [--n 1,5,11,21,28] [--mb 200] [--limit-mb 1536] "
      "(root)");
  app->require_subcommand(1);
  auto lo = std::make_shared<LocalityOptions>();
  auto* loc = app->add_subcommand("locality",
                                  "Two runs of two processes: random+random, then random+locality");
  loc->add_option("--out", lo->out, "Output directory (default study-locality)");
  loc->add_option("--mb", lo->mb, "MiB per process (default 1024)");
  loc->add_option("--accesses-a", lo->accesses_a, "Accesses per iteration of process A (50000)");
  loc->add_option("--accesses-b", lo->accesses_b, "Accesses per iteration of process B (10000)");
  loc->add_option("--iterations", lo->iterations, "Iterations per process (default 20)");
  loc->add_option("--period-ms", lo->period_ms, "Sampling period (default 50)");
  loc->add_option("--work", lo->work, "kscope-work binary (default: next to kscope, then PATH)");
  auto to = std::make_shared<ThrashingOptions>();
  auto* thr = app->add_subcommand(
      "thrashing",
      "N concurrent random-access processes in a memory cgroup with swap: CPU utilization, "
      "completion time and major faults against N. Needs root; restores cgroup and swap after.");
  thr->add_option("--out", to->out, "Output directory (default study-thrashing)");
  thr->add_option("--n", to->n_list, "Comma-separated process counts (default 1,5,11,21,28)");
  thr->add_option("--mb", to->mb, "MiB per process (default 200)");
  thr->add_option("--accesses", to->accesses, "Accesses per iteration (default 10000)");
  thr->add_option("--iterations", to->iterations, "Iterations per process (default 20)");
  thr->add_option("--limit-mb", to->limit_mb, "Memory limit of the cgroup in MiB (default 1536)");
  thr->add_option("--swap-mb", to->swap_mb, "Swap size in MiB (default: max N x --mb + 512)");
  thr->add_option("--swap", to->swap, "auto (zram, else a file), zram or file");
  thr->add_option("--period-ms", to->period_ms, "Sampling period (default 50)");
  thr->add_option("--work", to->work, "kscope-work binary (default: next to kscope, then PATH)");
  return {app, [=]() -> int {
            Result<int> r = loc->parsed() ? run_locality(*lo) : run_thrashing(*to);
            if (!r) {
              int code = report_error(r.error());
              return g_study_stop ? 130 : code;
            }
            return *r;
          }};
}

}  // namespace kscope::cli
