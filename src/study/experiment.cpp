#include "study/experiment.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <optional>
#include <sstream>

#include "monitor/protocol.h"
#include "trace/command_launcher.h"
#include "util/clock.h"
#include "util/fd.h"
#include "util/file.h"
#include "util/invoking_user.h"
#include "util/output_file.h"

namespace kscope::study {

namespace {

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "kscope";
}

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

// `kscope monitor` as a child process of the study, on its own socket, writing CSV.
class MonitorProcess {
 public:
  ~MonitorProcess() { stop(); }
  Status start(const std::string& kscope, const std::string& socket, const std::string& csv,
               const std::string& log, int period_ms) {
    socket_ = socket;
    KSCOPE_ASSIGN_OR_RETURN(Fd log_fd, create_output_file(log, 0644));
    LaunchOptions lo;
    lo.stderr_fd = log_fd.get();
    lo.die_with_parent = true;  // no orphaned monitor if the study is killed
    lo.keep_privileges = true;  // it registers (and reads /proc of) the study's workers
    KSCOPE_ASSIGN_OR_RETURN(
        auto cmd, LaunchedCommand::start({kscope, "monitor", "--socket", socket, "--no-shm", "-q",
                                          "-o", csv, "--period-ms", std::to_string(period_ms)},
                                         lo));
    cmd_.emplace(std::move(cmd));
    KSCOPE_TRY(cmd_->release());
    // Ready when it answers.
    for (int i = 0; i < 100; ++i) {
      auto r = monitor::call_monitor(socket_, "status", 1000);
      if (r && r->ok) return {};
      if (cmd_->has_exited()) {
        (void)cmd_->reap();
        cmd_.reset();
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
  // SIGTERM, then its exit status (shell convention).
  int stop() {
    if (!cmd_) return 0;
    if (!cmd_->has_exited()) cmd_->terminate();
    auto st = cmd_->reap();
    cmd_.reset();
    return st ? *st : 1;
  }

 private:
  std::optional<LaunchedCommand> cmd_;
  std::string socket_;
};

}  // namespace

void sleep_ms(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

Status write_output(const std::string& path, const std::string& text) {
  KSCOPE_ASSIGN_OR_RETURN(auto out, OutputFile::open(path, false));
  KSCOPE_TRY(out.write(text));
  return out.close();
}

Status write_sysfs(const std::string& path, const std::string& value) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno_error(fmt::format("cannot open {}", path));
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    return errno_error(fmt::format("cannot write '{}' to {}", value, path));
  return {};
}

Result<StudyPrograms> find_study_programs(const std::string& given_work) {
  StudyPrograms p;
  p.kscope = self_exe();
  if (!given_work.empty()) {
    KSCOPE_ASSIGN_OR_RETURN(p.work, find_executable(given_work));
    return p;
  }
  std::string beside = p.kscope.substr(0, p.kscope.rfind('/') + 1) + "kscope-work";
  if (::access(beside.c_str(), X_OK) == 0) {
    p.work = beside;
    return p;
  }
  KSCOPE_ASSIGN_OR_RETURN(p.work, find_executable("kscope-work"));
  return p;
}

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

Result<RunResult> run_experiment(const std::string& out_dir, const std::string& name,
                                 const StudyPrograms& programs,
                                 const std::vector<WorkerSpec>& specs, int period_ms,
                                 const std::string& cgroup_procs,
                                 const volatile sig_atomic_t* stop) {
  RunResult result;
  result.csv_path = fmt::format("{}/{}.csv", out_dir, name);
  std::string socket = fmt::format("{}/.{}.sock", out_dir, name);
  if (socket.size() > 100) socket = fmt::format("/tmp/kscope-study-{}-{}.sock", ::getpid(), name);
  MonitorProcess mon;
  KSCOPE_TRY(mon.start(programs.kscope, socket, result.csv_path,
                       fmt::format("{}/.{}.monitor.log", out_dir, name), period_ms));
  int start_pipe[2];
  if (::pipe(start_pipe) != 0) return errno_error("pipe");
  Fd start_read(start_pipe[0]);   // inherited by the workers
  Fd start_write(start_pipe[1]);  // closed at their exec, and by us to start them
  ::fcntl(start_write.get(), F_SETFD, FD_CLOEXEC);
  std::vector<LaunchedCommand> cmds;
  std::vector<std::string> logs;
  for (size_t i = 0; i < specs.size(); ++i) {
    std::vector<std::string> argv = {programs.work, "--start-fd", std::to_string(start_read.get())};
    argv.insert(argv.end(), specs[i].args.begin(), specs[i].args.end());
    std::string log = fmt::format("{}/.{}.worker{}.out", out_dir, name, i);
    logs.push_back(log);
    // The worker's stdout (its final report) goes to a file.
    KSCOPE_ASSIGN_OR_RETURN(Fd out, create_output_file(log, 0644));
    LaunchOptions lo;
    lo.stdout_fd = out.get();
    auto cmd = LaunchedCommand::start(argv, lo);
    if (!cmd) return std::move(cmd).error();
    cmds.push_back(std::move(*cmd));
    if (!cgroup_procs.empty())
      KSCOPE_TRY(write_sysfs(cgroup_procs, std::to_string(cmds.back().pid())));
    KSCOPE_TRY(mon.register_pid(cmds.back().pid()));
    KSCOPE_TRY(cmds.back().release());
  }
  start_read.reset();
  double t0 = (monotonic_ns() / 1e9);
  start_write.reset();  // all workers start now
  std::vector<double> exit_time(cmds.size(), -1);
  size_t remaining = cmds.size();
  while (remaining > 0) {
    if (*stop) {
      for (auto& c : cmds) c.terminate();
      for (auto& c : cmds)
        if (!c.has_exited()) ::kill(c.pid(), SIGKILL);
      return Error{"interrupted; the workers were stopped", 0, ExitCode::kFailure, {}};
    }
    for (size_t i = 0; i < cmds.size(); ++i)
      if (exit_time[i] < 0 && cmds[i].has_exited()) {
        exit_time[i] = (monotonic_ns() / 1e9) - t0;
        --remaining;
      }
    sleep_ms(10);
  }
  result.wall_s = (monotonic_ns() / 1e9) - t0;
  // Give the monitor one more period to see the zombies' final counters, then reap.
  sleep_ms(period_ms * 2 + 20);
  for (size_t i = 0; i < cmds.size(); ++i) {
    WorkerResult w;
    w.label = specs[i].label;
    w.pid = cmds[i].pid();
    auto st = cmds[i].reap();
    w.exit_status = st ? *st : -1;
    w.wall_s = exit_time[i];
    auto text = read_file(logs[i], 4096);
    if (text) parse_work_report(*text, w);
    result.workers.push_back(w);
  }
  int mst = mon.stop();
  if (mst != 0) return make_error(fmt::format("the monitor exited with status {}", mst));
  KSCOPE_ASSIGN_OR_RETURN(result.rows, monitor::read_samples_csv(result.csv_path));
  return result;
}

// Cumulative series of one pid: (time s, total).
ChartSeries cumulative(const std::vector<monitor::CsvSample>& rows, const std::string& pid,
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
    KSCOPE_TRY(create_output_dir(acc, 0755));  // through sudo: the invoking user's
  }
  return {};
}

}  // namespace kscope::study
