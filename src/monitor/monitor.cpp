#include "monitor/monitor.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

#include "trace/command_launcher.h"
#include "util/clock.h"
#include "util/invoking_user.h"
#include "util/signals.h"

namespace kscope::monitor {

namespace {

double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += (c == '\n' || c == '\r') ? ' ' : c;
  }
  return out + "\"";
}

constexpr size_t kMaxConnections = 64;
constexpr size_t kMaxHttpRequestBytes = 8192;
constexpr uint64_t kConnectionTimeoutNs = 2'000'000'000ull;

struct Connection {
  Fd fd;
  bool http = false;
  std::string in;
  std::string out;
  size_t out_off = 0;
  bool replied = false;
  uint64_t deadline_ns = 0;
  PeerCred peer;
};

class Monitor {
 public:
  explicit Monitor(const MonitorOptions& o) : o_(o), registry_(o.max_processes, o.exact_rss) {}
  Result<int> run();

 private:
  Status setup();
  Status add_fd(int fd, uint32_t events, uint64_t tag);
  void arm_timer(uint64_t now);
  void disarm_timer();
  void on_timer();
  void sample(uint64_t now, uint64_t period_index);
  void accept_connections(int listen_fd, bool http);
  void on_connection(int fd, uint32_t events);
  void handle_request(Connection& c);
  void flush_connection(int fd);
  void close_connection(int fd);
  std::string status_text();
  Result<std::string> do_register(pid_t pid, const PeerCred* peer, bool announce = true);
  std::string comm_after_exec(pid_t pid, const std::string& before);
  void note(const std::string& msg) {
    if (!o_.quiet) std::fprintf(stderr, "kscope: %s\n", msg.c_str());
  }
  void print_final_stats();
  void emit_row(const SampleRow& row);

  MonitorOptions o_;
  Registry registry_;
  ClockUnits units_ = ClockUnits::system();
  JitterStats jitter_;
  Fd epoll_;
  Fd timer_;
  Fd wake_read_;
  Fd wake_write_;
  volatile sig_atomic_t* stop_ = nullptr;  // set by a stop signal (util/signals.h)
  std::optional<ControlListener> control_;
  Fd http_;
  std::map<int, Connection> conns_;
  std::optional<ShmMapping> shm_;
  std::optional<RingWriter> ring_;
  std::FILE* csv_ = nullptr;
  std::optional<LaunchedCommand> command_;
  uint64_t start_ns_ = 0;
  bool timer_armed_ = false;
  uint64_t arm_base_index_ = 0;  // period index of the first deadline after arming
  uint64_t expirations_ = 0;     // since arming
  uint64_t periods_ = 0;         // periods sampled
  uint64_t missed_ = 0;          // periods skipped (woke more than a period late)
  uint64_t rows_ = 0;
  uint64_t csv_dropped_ = 0;
  uint64_t sample_ns_total_ = 0;  // time spent inside sample()
  uint64_t sample_ns_max_ = 0;
  Owner owner_ = Owner::current();
};

enum Tag : uint64_t {
  kTagTimer = 1,
  kTagWake = 2,
  kTagControl = 3,
  kTagHttp = 4,
  kTagConnBase = 16
};

Status Monitor::add_fd(int fd, uint32_t events, uint64_t tag) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return errno_error("epoll_ctl");
  return {};
}

Status Monitor::setup() {
  start_ns_ = monotonic_ns();
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return errno_error("epoll_create1");
  timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer_) return errno_error("timerfd_create");
  KSCOPE_TRY(add_fd(timer_.get(), EPOLLIN, kTagTimer));
  int p[2];
  if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return errno_error("pipe");
  wake_read_.reset(p[0]);
  wake_write_.reset(p[1]);
  KSCOPE_TRY(add_fd(wake_read_.get(), EPOLLIN, kTagWake));
  // A stop signal or a child's exit writes to the wake pipe, so epoll_wait returns at once.
  stop_ =
      install_stop_handlers({.wake_fd = p[1], .watch_children = true, .restart_syscalls = true});

  // Outputs first: a bad path fails before anything is started.
  if (!o_.csv_path.empty()) {
    int fd = -1;
    if (o_.csv_path == "-") {
      fd = ::dup(1);
      if (fd < 0) return errno_error("cannot write the CSV to stdout");
    } else {
      KSCOPE_ASSIGN_OR_RETURN(Fd created, create_output_file(o_.csv_path, 0600));
      fd = created.release();
    }
    csv_ = ::fdopen(fd, "w");
    if (!csv_) return errno_error("fdopen");
    std::fprintf(csv_, "%s\n", kCsvHeader);
    std::fflush(csv_);
  }
  KSCOPE_ASSIGN_OR_RETURN(auto listener,
                          ControlListener::open(o_.socket_path, owner_, o_.socket_default_dir));
  control_.emplace(std::move(listener));
  KSCOPE_TRY(add_fd(control_->fd(), EPOLLIN, kTagControl));
  if (!o_.shm_name.empty()) {
    KSCOPE_ASSIGN_OR_RETURN(auto m, create_shm_ring(o_.shm_name, o_.ring_slots, o_.period_ns,
                                                    realtime_ns(), owner_.uid, owner_.gid));
    shm_.emplace(std::move(m));
    ring_.emplace(shm_->data());
  }
  if (o_.listen) {
    http_.reset(::socket(o_.listen->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!http_) return errno_error("socket");
    int one = 1;
    ::setsockopt(http_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(http_.get(), reinterpret_cast<const sockaddr*>(&o_.listen->addr), o_.listen->len) !=
        0)
      return errno_error(fmt::format("cannot listen on {}", o_.listen->text));
    if (::listen(http_.get(), 16) != 0) return errno_error("listen");
    KSCOPE_TRY(add_fd(http_.get(), EPOLLIN, kTagHttp));
    if (!o_.listen->loopback)
      std::fprintf(stderr,
                   "kscope: warning: /metrics is reachable from the network on %s and "
                   "has no authentication\n",
                   o_.listen->text.c_str());
  }
  for (pid_t pid : o_.pids) {
    auto r = do_register(pid, nullptr);
    if (!r) return std::move(r).error();
  }
  if (!o_.command.empty()) {
    // Clients the command starts (kscope-work --register) find this monitor.
    ::setenv("KSCOPE_MONITOR_SOCKET", o_.socket_path.c_str(), 1);
    KSCOPE_ASSIGN_OR_RETURN(
        auto cmd,
        LaunchedCommand::start(
            o_.command, LaunchOptions{.stdout_fd = o_.csv_path == "-" ? STDERR_FILENO : -1}));
    command_.emplace(std::move(cmd));
    // Registered at the gate, before its execve: it is still a copy of kscope, so it is
    // announced under the name it has once the exec is done.
    auto r = do_register(command_->pid(), nullptr, /*announce=*/false);
    if (!r) return std::move(r).error();
    std::string before = registry_.processes().at(command_->pid()).last.comm;
    KSCOPE_TRY(command_->release());
    note(fmt::format("registered pid {} ({})", command_->pid(),
                     comm_after_exec(command_->pid(), before)));
  }
  // Sampling has to hold its period while the machine is saturated (the thrashing study runs 30
  // CPU-bound processes on 2 CPUs): as root, the loop runs SCHED_FIFO at a low RT priority. It
  // sleeps ~99.8% of the time; SCHED_RESET_ON_FORK keeps a COMMAND from inheriting the policy.
  const char* sched_note = "";
  if (o_.realtime && ::geteuid() == 0) {
    sched_param sp{};
    sp.sched_priority = 10;
    if (::sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) == 0)
      sched_note = ", SCHED_FIFO";
    else
      std::fprintf(stderr,
                   "kscope: note: cannot use SCHED_FIFO (%s); sampling may be late "
                   "when the CPUs are saturated\n",
                   std::strerror(errno));
  }
  std::fprintf(stderr, "kscope: monitor listening on %s", o_.socket_path.c_str());
  if (ring_) std::fprintf(stderr, ", ring /dev/shm/%s", o_.shm_name.c_str());
  if (o_.listen) std::fprintf(stderr, ", metrics http://%s/metrics", o_.listen->text.c_str());
  std::fprintf(stderr, "; period %.3f ms%s\n", o_.period_ns / 1e6, sched_note);
  return {};
}

void Monitor::arm_timer(uint64_t now) {
  if (timer_armed_) return;
  // Deadlines stay on the grid start + k*period, whatever the idle time was.
  arm_base_index_ = (now - start_ns_) / o_.period_ns + 1;
  uint64_t first = start_ns_ + arm_base_index_ * o_.period_ns;
  itimerspec its{};
  its.it_value.tv_sec = static_cast<time_t>(first / 1'000'000'000ull);
  its.it_value.tv_nsec = static_cast<long>(first % 1'000'000'000ull);
  its.it_interval.tv_sec = static_cast<time_t>(o_.period_ns / 1'000'000'000ull);
  its.it_interval.tv_nsec = static_cast<long>(o_.period_ns % 1'000'000'000ull);
  ::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &its, nullptr);
  expirations_ = 0;
  timer_armed_ = true;
}

void Monitor::disarm_timer() {
  if (!timer_armed_) return;
  itimerspec its{};
  ::timerfd_settime(timer_.get(), 0, &its, nullptr);
  uint64_t drain;
  ssize_t ignored = ::read(timer_.get(), &drain, sizeof(drain));
  (void)ignored;
  timer_armed_ = false;
}

void Monitor::on_timer() {
  uint64_t n = 0;
  if (::read(timer_.get(), &n, sizeof(n)) != sizeof(n) || n == 0) return;
  uint64_t now = monotonic_ns();
  expirations_ += n;
  uint64_t index = arm_base_index_ + expirations_ - 1;
  uint64_t deadline = start_ns_ + index * o_.period_ns;
  jitter_.add(now > deadline ? now - deadline : 0);
  missed_ += n - 1;  // woke more than a period late: those periods are not sampled
  sample(now, index);
  uint64_t spent = monotonic_ns() - now;
  sample_ns_total_ += spent;
  if (spent > sample_ns_max_) sample_ns_max_ = spent;
  if (registry_.empty()) disarm_timer();
}

// cpu_util as the ring holds it: parts per million, rounded (so ppm -> double -> ppm is exact).
uint32_t util_ppm(double util) {
  double ppm = std::round(util * 1e6);
  return ppm < 0 ? 0 : ppm > 4e9 ? 4000000000u : static_cast<uint32_t>(ppm);
}

std::string format_csv_row_impl(const SampleRow& r) {
  // cpu_util is printed from its ring value, so `kscope monitor read` prints exactly this line
  // (rounding the full double to 4 decimals and the ppm value to 4 decimals can differ).
  return fmt::format("{:.3f},{},{},{},{},{},{},{:.4f},{}", r.time_ns / 1e6,
                     r.aggregate ? std::string("all") : std::to_string(r.pid),
                     r.aggregate ? std::string("*") : csv_field(r.comm), r.min_faults, r.maj_faults,
                     r.min_faults_total, r.maj_faults_total, util_ppm(r.cpu_util) / 1e6, r.rss_kb);
}

void Monitor::emit_row(const SampleRow& row) {
  if (csv_) {
    std::string line = format_csv_row_impl(row);
    line += '\n';
    if (std::fwrite(line.data(), 1, line.size(), csv_) != line.size()) ++csv_dropped_;
  }
  if (ring_) ring_->append(to_ring_slot(row));
  ++rows_;
}

void Monitor::sample(uint64_t now, uint64_t period_index) {
  auto result = registry_.sample_all(now - start_ns_, period_index, units_);
  ++periods_;
  for (const auto& row : result.rows) emit_row(row);
  if (csv_ && std::fflush(csv_) != 0) clearerr(csv_);
  if (ring_) ring_->set_periods(periods_, missed_);
  for (auto& [pid, comm] : result.exited)
    note(fmt::format("pid {} ({}) exited; unregistered", pid, comm));
}

std::string Monitor::comm_after_exec(pid_t pid, const std::string& before) {
  // release() returns when the exec has closed the CLOEXEC status pipe; begin_new_exec() does
  // that (do_close_on_exec()) a moment before it sets the new comm (__set_task_comm()), so the
  // name may lag by microseconds. Wait for it a little, bounded (a command may keep the name).
  std::string comm = before;
  for (int i = 0; i < 100; ++i) {
    auto now = registry_.refresh_identity(pid);
    if (!now) break;
    comm = *now;
    if (comm != before) break;
    timespec ts{0, 1'000'000};
    nanosleep(&ts, nullptr);
  }
  return comm;
}

Result<std::string> Monitor::do_register(pid_t pid, const PeerCred* peer, bool announce) {
  uint64_t now = monotonic_ns();
  KSCOPE_ASSIGN_OR_RETURN(auto* p, registry_.add(pid, now - start_ns_));
  if (peer && peer->uid != 0 && p->uid != peer->uid) {
    auto ignored = registry_.remove(pid);
    (void)ignored;
    return make_error(fmt::format("permission denied: pid {} belongs to uid {}, you are uid {}",
                                  pid, p->uid, peer->uid));
  }
  std::string comm = p->last.comm;
  arm_timer(now);
  if (announce) note(fmt::format("registered pid {} ({})", pid, comm));
  return fmt::format("registered pid {} ({})", pid, comm);
}

std::string Monitor::status_text() {
  std::string out = fmt::format(
      "# period_ms={:.3f} registered={} periods={} missed_periods={} rows={} csv_rows_dropped={} "
      "lateness {} sample_cost_avg_us={:.1f} self_cpu_s={:.3f} uptime_s={:.3f}\n",
      o_.period_ns / 1e6, registry_.size(), periods_, missed_, rows_, csv_dropped_,
      jitter_.describe(), periods_ ? sample_ns_total_ / 1e3 / periods_ : 0.0, self_cpu_seconds(),
      (monotonic_ns() - start_ns_) / 1e9);
  out += "pid,comm,min_faults_total,maj_faults_total,cpu_s_total,cpu_util,rss_kb,last_sample_ms\n";
  for (const auto& [pid, p] : registry_.processes()) {
    if (p.latest) {
      const auto& r = *p.latest;
      out += fmt::format("{},{},{},{},{:.6f},{:.4f},{},{:.3f}\n", pid, csv_field(r.comm),
                         r.min_faults_total, r.maj_faults_total, r.cpu_time_ns_total / 1e9,
                         r.cpu_util, r.rss_kb, r.time_ns / 1e6);
    } else {
      // Registered, not sampled yet: the reading taken at registration.
      uint64_t cpu_ns = p.last.cpu_ns ? *p.last.cpu_ns : p.last.cpu_ticks * units_.tick_ns;
      out += fmt::format("{},{},{},{},{:.6f},,{},\n", pid, csv_field(p.last.comm), p.last.minflt,
                         p.last.majflt, cpu_ns / 1e9, rss_kb_of(p.last, units_));
    }
  }
  return out;
}

void Monitor::accept_connections(int listen_fd, bool http) {
  for (;;) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or an error on one connection: nothing to do
    Connection c;
    c.fd.reset(fd);
    c.http = http;
    c.deadline_ns = monotonic_ns() + kConnectionTimeoutNs;
    if (conns_.size() >= kMaxConnections) {
      std::string busy = http ? format_http_response({503, "text/plain", false, "busy\n"})
                              : "error too many connections, try again\n";
      ssize_t ignored = ::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL);
      (void)ignored;
      continue;  // closed by c's destructor
    }
    if (!http) {
      auto cred = peer_credentials(fd);
      bool allowed =
          cred && (cred->uid == 0 || cred->uid == owner_.uid || cred->uid == ::geteuid());
      if (!allowed) {
        std::string deny = "error permission denied: this monitor belongs to another user\n";
        ssize_t ignored = ::send(fd, deny.data(), deny.size(), MSG_NOSIGNAL);
        (void)ignored;
        continue;
      }
      c.peer = *cred;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = kTagConnBase + static_cast<uint64_t>(fd);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) continue;
    conns_.emplace(fd, std::move(c));
  }
}

void Monitor::handle_request(Connection& c) {
  c.replied = true;
  if (c.http) {
    HttpParse parsed = parse_http_request(c.in);
    HttpAnswer a = parsed.answer;
    if (a.wants_metrics) {
      MetricsSnapshot s;
      for (const auto& [pid, p] : registry_.processes())
        if (p.latest) s.processes.push_back(*p.latest);
      s.aggregate = registry_.aggregate_totals();
      s.registered = registry_.size();
      s.periods = periods_;
      s.missed_periods = missed_;
      s.rows_written = rows_;
      s.csv_rows_dropped = csv_dropped_;
      s.jitter = &jitter_;
      s.self_cpu_seconds = self_cpu_seconds();
      a.body = render_metrics(s);
    }
    c.out = format_http_response(a);
    return;
  }
  size_t nl = c.in.find('\n');
  std::string_view line(c.in.data(), nl == std::string::npos ? c.in.size() : nl);
  auto req = parse_request(line);
  if (!req) {
    c.out = "error " + req.error().message + "\n";
    return;
  }
  switch (req->kind) {
    case RequestKind::kRegister: {
      auto r = do_register(req->pid, &c.peer);
      c.out = r ? "ok " + *r + "\n" : "error " + r.error().describe() + "\n";
      break;
    }
    case RequestKind::kUnregister: {
      std::string comm;
      if (auto it = registry_.processes().find(req->pid); it != registry_.processes().end())
        comm = it->second.last.comm;
      auto it = registry_.processes().find(req->pid);
      if (it != registry_.processes().end() && c.peer.uid != 0 && it->second.uid != c.peer.uid) {
        c.out = fmt::format("error permission denied: pid {} belongs to uid {}\n", req->pid,
                            it->second.uid);
        break;
      }
      if (it != registry_.processes().end()) {
        // Its series ends with its counters now, not at the last period: a process that
        // unregisters itself as it finishes has done its last work since that period.
        if (auto row = registry_.final_row(req->pid, monotonic_ns() - start_ns_,
                                           arm_base_index_ + expirations_, units_)) {
          emit_row(*row);
          if (csv_ && std::fflush(csv_) != 0) clearerr(csv_);
        }
      }
      auto st = registry_.remove(req->pid);
      if (st) {
        note(fmt::format("unregistered pid {} ({})", req->pid, comm));
        c.out = fmt::format("ok unregistered pid {} ({})\n", req->pid, comm);
      } else {
        c.out = "error " + st.error().message + "\n";
      }
      if (registry_.empty()) disarm_timer();
      break;
    }
    case RequestKind::kStatus:
      c.out = "ok status\n" + status_text();
      break;
  }
}

void Monitor::on_connection(int fd, uint32_t events) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  Connection& c = it->second;
  if (events & EPOLLIN && !c.replied) {
    size_t limit = c.http ? kMaxHttpRequestBytes : kMaxRequestBytes;
    char buf[1024];
    bool eof = false;
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        if (c.in.size() > limit) break;
        continue;
      }
      if (n == 0)
        eof = true;
      else if (errno == EINTR)
        continue;
      else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        close_connection(fd);
        return;
      }
      break;
    }
    if (c.in.size() > limit) {
      c.replied = true;
      c.out = c.http ? format_http_response({413, "text/plain", false, "request too large\n"})
                     : fmt::format("error request too long (at most {} bytes)\n", kMaxRequestBytes);
    } else if (c.http) {
      if (parse_http_request(c.in).complete || eof) handle_request(c);
    } else if (c.in.find('\n') != std::string::npos || (eof && !c.in.empty())) {
      handle_request(c);
    } else if (eof) {
      close_connection(fd);
      return;
    }
  } else if (events & (EPOLLHUP | EPOLLERR) && c.out.empty()) {
    close_connection(fd);
    return;
  }
  if (c.replied) flush_connection(fd);
}

void Monitor::flush_connection(int fd) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  Connection& c = it->second;
  while (c.out_off < c.out.size()) {
    ssize_t n = ::send(fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.u64 = kTagConnBase + static_cast<uint64_t>(fd);
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev);
      return;
    }
    break;  // the client went away
  }
  close_connection(fd);
}

void Monitor::close_connection(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  conns_.erase(fd);
}

void Monitor::print_final_stats() {
  double uptime = (monotonic_ns() - start_ns_) / 1e9;
  double cpu = self_cpu_seconds();
  std::fprintf(stderr,
               "kscope: monitor: %llu periods sampled, %llu missed, %llu rows, %llu CSV rows "
               "dropped; wake-up lateness %s; sampling cost avg %.1f us max %.1f us; "
               "monitor CPU %.3f s over %.1f s (%.2f%% of a core)\n",
               static_cast<unsigned long long>(periods_), static_cast<unsigned long long>(missed_),
               static_cast<unsigned long long>(rows_),
               static_cast<unsigned long long>(csv_dropped_), jitter_.describe().c_str(),
               periods_ ? sample_ns_total_ / 1e3 / periods_ : 0.0, sample_ns_max_ / 1e3, cpu,
               uptime, uptime > 0 ? 100.0 * cpu / uptime : 0.0);
}

Result<int> Monitor::run() {
  KSCOPE_TRY(setup());
  uint64_t end_ns = o_.duration_s > 0 ? start_ns_ + static_cast<uint64_t>(o_.duration_s * 1e9) : 0;
  std::optional<int> command_status;
  epoll_event events[32];
  while (!*stop_) {
    int timeout_ms = 1000;
    uint64_t now = monotonic_ns();
    if (end_ns) {
      if (now >= end_ns) break;
      timeout_ms = static_cast<int>(std::min<uint64_t>(1000, (end_ns - now) / 1'000'000 + 1));
    }
    int n = ::epoll_wait(epoll_.get(), events, 32, timeout_ms);
    if (n < 0 && errno != EINTR) return errno_error("epoll_wait");
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64;
      if (tag == kTagTimer) {
        on_timer();
      } else if (tag == kTagWake) {
        char buf[64];
        while (::read(wake_read_.get(), buf, sizeof(buf)) > 0) {
        }
      } else if (tag == kTagControl) {
        accept_connections(control_->fd(), false);
      } else if (tag == kTagHttp) {
        accept_connections(http_.get(), true);
      } else {
        int fd = static_cast<int>(tag - kTagConnBase);
        if (events[i].events & EPOLLOUT)
          flush_connection(fd);
        else
          on_connection(fd, events[i].events);
      }
    }
    // Drop connections that never sent a complete request.
    now = monotonic_ns();
    std::vector<int> expired;
    for (auto& [fd, c] : conns_)
      if (now > c.deadline_ns) expired.push_back(fd);
    for (int fd : expired) close_connection(fd);
    if (command_ && command_->has_exited()) {
      // Final counters of the command (a zombie until reaped) before it leaves.
      if (registry_.contains(command_->pid()))
        sample(monotonic_ns(), arm_base_index_ + expirations_);
      auto r = command_->reap();
      command_status = r ? *r : 1;
      break;
    }
  }
  if (command_ && !command_status) {
    // Stopped by a signal or --duration while the command still runs: ask it to terminate (as
    // perf record does) and report its status.
    if (!command_->has_exited()) command_->terminate();
    auto r = command_->reap();
    command_status = r ? *r : 1;
  }
  if (csv_) {
    if (std::fflush(csv_) != 0) ++csv_dropped_;
    if (std::fclose(csv_) != 0) ++csv_dropped_;
    csv_ = nullptr;
  }
  if (ring_) {
    ring_->set_periods(periods_, missed_);
    ring_->mark_closed();  // the file stays for readers; the next monitor start replaces it
  }
  print_final_stats();
  if (csv_dropped_)
    return make_error(fmt::format("{} rows could not be written to {}", csv_dropped_, o_.csv_path));
  return command_status.value_or(0);
}

}  // namespace

std::string format_csv_row(const SampleRow& r) { return format_csv_row_impl(r); }

kscope_ring_slot to_ring_slot(const SampleRow& r) {
  kscope_ring_slot s{};
  s.time_ns = r.time_ns;
  s.period_index = r.period_index;
  s.pid = r.aggregate ? 0 : r.pid;
  s.kind = r.aggregate ? KSCOPE_RING_KIND_AGGREGATE : KSCOPE_RING_KIND_PROCESS;
  std::string comm = r.aggregate ? "*" : r.comm;
  std::memcpy(s.comm, comm.data(), std::min(comm.size(), sizeof(s.comm) - 1));
  s.min_faults = r.min_faults;
  s.maj_faults = r.maj_faults;
  s.min_faults_total = r.min_faults_total;
  s.maj_faults_total = r.maj_faults_total;
  s.cpu_time_ns_total = r.cpu_time_ns_total;
  s.rss_kb = r.rss_kb;
  s.cpu_util_ppm = util_ppm(r.cpu_util);
  return s;
}

Result<int> run_monitor(const MonitorOptions& options) {
  Monitor m(options);
  return m.run();
}

}  // namespace kscope::monitor
