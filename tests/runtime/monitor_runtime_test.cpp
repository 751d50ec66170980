// kscope monitor and kscope-work against ground truth: /proc/PID/stat and status of the
// processes themselves, what kscope-work reports about itself, and a real Prometheus.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "kscope/monitor_ring.h"
#include "monitor/protocol.h"
#include "monitor/ring.h"
#include "runtime_env.h"
#include "subprocess.h"
#include "trace/proc.h"
#include "util/file.h"

namespace kscope::testing {
namespace {

const std::string kKscope = KSCOPE_BINARY;
const std::string kWork = KSCOPE_WORK_BINARY;
const std::string kCpuprog = std::string(KSCOPE_TEST_PROGS_DIR) + "/cpuprog";
const std::string kThreadprog = std::string(KSCOPE_TEST_PROGS_DIR) + "/threadprog";

void sleep_s(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/kscope-montest-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

std::string unique_shm(const char* tag) {
  return fmt::format("kscope-test-{}-{}", tag, ::getpid());
}

// A monitor started in the background; SIGTERM and reaped at the end of the test.
struct Monitor {
  int pid = -1;
  std::string socket;
  std::string err_path;
  Monitor(const TempDir& dir, std::vector<std::string> extra, const std::string& name = "m") {
    socket = dir / (name + ".sock");
    err_path = dir / (name + ".err");
    std::vector<std::string> argv = {kKscope, "monitor", "--socket", socket};
    argv.insert(argv.end(), extra.begin(), extra.end());
    pid = spawn(argv, dir / (name + ".out"), err_path);
  }
  bool ready(double timeout_s = 10) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = monitor::call_monitor(socket, "status", 1000);
      if (r && r->ok) return true;
      sleep_s(0.05);
    }
    return false;
  }
  monitor::Reply call(const std::string& req) {
    auto r = monitor::call_monitor(socket, req, 5000);
    EXPECT_TRUE(r.ok()) << (r ? "" : r.error().describe());
    return r ? *r : monitor::Reply{};
  }
  int stop() {
    if (pid <= 0) return -1;
    ::kill(pid, SIGTERM);
    int st = wait_for(pid, 20);
    pid = -1;
    return st;
  }
  std::string err() const { return read_file(err_path); }
  ~Monitor() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      wait_for(pid, 10);
    }
  }
};

struct Child {
  int pid = -1;
  explicit Child(const std::vector<std::string>& argv, const std::string& out = {},
                 const std::string& err = {}) {
    pid = spawn(argv, out, err);
  }
  int wait(double t = 60) {
    int st = wait_for(pid, t);
    pid = -1;
    return st;
  }
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      wait_for(pid, 10);
    }
  }
};

struct CsvRow {
  double time_ms;
  std::string pid, comm;
  uint64_t min, maj, min_total, maj_total;
  double cpu_util;
  uint64_t rss_kb;
};

std::vector<CsvRow> parse_csv(const std::string& text) {
  std::vector<CsvRow> rows;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line,
            "time_ms,pid,comm,min_faults,maj_faults,min_faults_total,maj_faults_total,cpu_util,"
            "rss_kb");
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string x;
    while (std::getline(ss, x, ',')) f.push_back(x);
    EXPECT_EQ(f.size(), 9u) << line;
    if (f.size() != 9) continue;
    rows.push_back({std::stod(f[0]), f[1], f[2], std::stoull(f[3]), std::stoull(f[4]),
                    std::stoull(f[5]), std::stoull(f[6]), std::stod(f[7]), std::stoull(f[8])});
  }
  return rows;
}

uint64_t vm_rss_kb(int pid) {
  auto text = kscope::read_file(fmt::format("/proc/{}/status", pid));
  if (!text) return 0;
  std::smatch m;
  std::regex re("VmRSS:\\s+(\\d+) kB");
  if (std::regex_search(*text, m, re)) return std::stoull(m[1]);
  return 0;
}

// Sends raw bytes to the control socket and returns the reply (until the monitor closes).
std::string raw_request(const std::string& socket, const std::string& bytes,
                        bool close_write = true) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  if (close_write) ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

bool status_lists(Monitor& m, int pid) {
  auto r = m.call("status");
  return r.body.find(fmt::format("\n{},", pid)) != std::string::npos;
}

TEST(MonitorRuntime, RegisterUnregisterStatusOverTheSocket) {
  TempDir dir;
  Monitor m(dir, {"--no-shm"});
  ASSERT_TRUE(m.ready()) << m.err();
  struct stat st;
  ASSERT_EQ(::stat(m.socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the socket is owner-only";
  Child sleeper({"/bin/sleep", "30"});
  std::string pid = std::to_string(sleeper.pid);

  auto r = run({kKscope, "monitor", "register", pid, "--socket", m.socket});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("registered pid " + pid), std::string::npos) << r.out;
  r = run({kKscope, "monitor", "register", pid, "--socket", m.socket});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("already registered"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
  sleep_s(0.2);
  r = run({kKscope, "monitor", "status", "--socket", m.socket});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\n" + pid + ",sleep,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lateness n="), std::string::npos) << r.out;
  r = run({kKscope, "monitor", "unregister", pid, "--socket", m.socket});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("unregistered pid " + pid), std::string::npos);
  r = run({kKscope, "monitor", "unregister", pid, "--socket", m.socket});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not registered"), std::string::npos) << r.err;
  EXPECT_FALSE(status_lists(m, sleeper.pid));
  // A pid that does not exist.
  r = run({kKscope, "monitor", "register", "4194000", "--socket", m.socket});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no such process: 4194000"), std::string::npos) << r.err;
  // Not a pid at all: a usage error before anything is sent.
  for (const char* bad : {"abc", "-5", "0", "12x"}) {
    r = run({kKscope, "monitor", "register", bad, "--socket", m.socket});
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.err;
  }
  EXPECT_EQ(m.stop(), 0) << m.err();
  EXPECT_NE(::access(m.socket.c_str(), F_OK), 0) << "socket removed on clean exit";
}

TEST(MonitorRuntime, MalformedOversizedAndRacingClients) {
  TempDir dir;
  Monitor m(dir, {"--no-shm", "-q"});
  ASSERT_TRUE(m.ready()) << m.err();
  EXPECT_EQ(raw_request(m.socket, "hello world\n").rfind("error unknown request", 0), 0u);
  EXPECT_EQ(raw_request(m.socket, "register\n").rfind("error ", 0), 0u);
  EXPECT_EQ(raw_request(m.socket, "register 1 2 3\n").rfind("error ", 0), 0u);
  EXPECT_EQ(raw_request(m.socket, std::string("register \x00\x01\x02\n", 13)).rfind("error ", 0),
            0u);
  std::string big(100000, 'A');
  EXPECT_EQ(raw_request(m.socket, big, false).rfind("error request too long", 0), 0u);
  // A client that connects and sends nothing does not block the others.
  int idle = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", m.socket.c_str());
  ASSERT_EQ(::connect(idle, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  auto st = m.call("status");
  EXPECT_TRUE(st.ok);
  ::close(idle);
  // Many clients racing to register the same process: exactly one wins, all get an answer.
  Child sleeper({"/bin/sleep", "30"});
  std::atomic<int> oks{0}, already{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i)
    threads.emplace_back([&] {
      auto r = monitor::call_monitor(m.socket, fmt::format("register {}", sleeper.pid), 5000);
      if (r && r->ok)
        ++oks;
      else if (r && r->message.find("already registered") != std::string::npos)
        ++already;
      else
        ++other;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(oks.load(), 1);
  EXPECT_EQ(already.load(), 15);
  EXPECT_EQ(other.load(), 0);
  EXPECT_TRUE(status_lists(m, sleeper.pid));
  EXPECT_EQ(m.stop(), 0) << m.err();
}

TEST(MonitorRuntime, SocketOfARunningMonitorIsNotStolenStaleOneIsReplaced) {
  TempDir dir;
  Monitor first(dir, {"--no-shm"}, "a");
  ASSERT_TRUE(first.ready()) << first.err();
  auto r = run({kKscope, "monitor", "--no-shm", "--socket", first.socket, "--duration", "2"}, 20);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("another monitor is running"), std::string::npos) << r.err;
  EXPECT_TRUE(first.call("status").ok) << "the first monitor still serves";
  // SIGKILL leaves the socket file behind; the next monitor replaces it.
  ::kill(first.pid, SIGKILL);
  wait_for(first.pid, 10);
  first.pid = -1;
  struct stat st;
  ASSERT_EQ(::stat(first.socket.c_str(), &st), 0) << "a killed monitor leaves its socket";
  Monitor second(dir, {"--no-shm"}, "a");
  ASSERT_TRUE(second.ready()) << second.err();
  EXPECT_NE(second.err().find("replaced the stale socket"), std::string::npos) << second.err();
  EXPECT_EQ(second.stop(), 0);
  // A path that is not a socket is never deleted.
  std::string file = dir / "notasocket";
  std::ofstream(file) << "precious";
  r = run({kKscope, "monitor", "--no-shm", "--socket", file, "--duration", "1"}, 20);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(read_file(file), "precious");
}

TEST(MonitorRuntime, KilledMonitorsRingIsReplacedAndAFollowingReaderStops) {
  TempDir dir;
  std::string shm = unique_shm("kill");
  Monitor first(dir, {"--shm", shm}, "k");
  ASSERT_TRUE(first.ready()) << first.err();
  Child sleeper({"/bin/sleep", "30"});
  ASSERT_TRUE(first.call(fmt::format("register {}", sleeper.pid)).ok);
  // A second monitor may not take a ring whose writer is alive.
  auto r =
      run({kKscope, "monitor", "--socket", dir / "other.sock", "--shm", shm, "--duration", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("in use by another running monitor"), std::string::npos) << r.err;
  Child reader({kKscope, "monitor", "read", "--follow", "--shm", shm}, dir / "read.csv",
               dir / "read.err");
  sleep_s(0.3);
  ::kill(first.pid, SIGKILL);
  wait_for(first.pid, 10);
  first.pid = -1;
  EXPECT_EQ(reader.wait(10), 0) << "a follower notices the writer died";
  EXPECT_NE(read_file(dir / "read.err").find("is gone without closing the ring"), std::string::npos)
      << read_file(dir / "read.err");
  // The next start replaces both the stale socket and the stale ring.
  Monitor second(dir, {"--shm", shm}, "k");
  ASSERT_TRUE(second.ready()) << second.err();
  EXPECT_TRUE(second.call(fmt::format("register {}", sleeper.pid)).ok);
  EXPECT_EQ(second.stop(), 0);
  ::shm_unlink(("/" + shm).c_str());
}

TEST(MonitorRuntime, PeersOfAnotherUserAreRefused) {
  if (::geteuid() != 0 || ::access("/usr/bin/setpriv", X_OK) != 0)
    GTEST_SKIP() << "needs root and setpriv to act as another user";
  TempDir dir;
  ::chmod(dir.path.c_str(), 0755);
  Monitor m(dir, {"--no-shm"});
  ASSERT_TRUE(m.ready()) << m.err();
  std::vector<std::string> as_nobody = {
      "/usr/bin/setpriv", "--reuid", "65534",    "--regid", "65534", "--clear-groups", kKscope,
      "monitor",          "status",  "--socket", m.socket};
  // The socket is 0600: the kernel refuses the connection.
  auto r = run(as_nobody);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
  // Even if its mode were opened up, SO_PEERCRED refuses other users.
  ASSERT_EQ(::chmod(m.socket.c_str(), 0666), 0);
  r = run(as_nobody);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("this monitor belongs to another user"), std::string::npos) << r.err;
  EXPECT_TRUE(m.call("status").ok);
  EXPECT_EQ(m.stop(), 0);
}

TEST(MonitorRuntime, ExitedProcessLeavesTheListAndSamplingResumes) {
  TempDir dir;
  Monitor m(dir, {"--no-shm", "-o", dir / "s.csv"});
  ASSERT_TRUE(m.ready()) << m.err();
  Child shortlived({"/bin/sleep", "0.5"});
  EXPECT_TRUE(m.call(fmt::format("register {}", shortlived.pid)).ok);
  int short_pid = shortlived.pid;
  EXPECT_TRUE(status_lists(m, short_pid));
  EXPECT_EQ(shortlived.wait(), 0);
  sleep_s(0.3);
  EXPECT_FALSE(status_lists(m, short_pid));
  EXPECT_NE(m.err().find(fmt::format("pid {} (sleep) exited", short_pid)), std::string::npos)
      << m.err();
  // Idle now; the next registration resumes sampling.
  auto before = parse_csv(read_file(dir / "s.csv")).size();
  sleep_s(0.4);
  EXPECT_EQ(parse_csv(read_file(dir / "s.csv")).size(), before) << "no rows while idle";
  Child sleeper({"/bin/sleep", "30"});
  EXPECT_TRUE(m.call(fmt::format("register {}", sleeper.pid)).ok);
  sleep_s(0.5);
  auto rows = parse_csv(read_file(dir / "s.csv"));
  EXPECT_GE(rows.size(), before + 10);
  EXPECT_EQ(m.stop(), 0);
}

// A process whose main thread has exited (pthread_exit) while another thread works on: the
// leader reads Z in /proc, but the process lives. threadprog's worker writes 4096 fresh pages
// 200 ms after the leader's exit and keeps them mapped 1.5 s more. The monitor must keep
// sampling it until the process ends: its faults after the leader's exit are counted (the
// kernel's group total, at least the 4096 pages) and its RSS is the live threads' (at least the
// 16 MiB the worker holds), not the 0 of the leader's released mm.
TEST(MonitorRuntime, ProcessWhoseMainThreadExitedIsStillSampled) {
  TempDir dir;
  auto r = run({kKscope, "monitor", "--no-shm", "--exact-rss", "--socket", dir / "c.sock", "-o",
                dir / "s.csv", "--", kThreadprog, "leader-exit", "4096", "1500"},
               60);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("ready (\\d+)"))) << r.out;
  std::string pid = m[1];
  std::vector<CsvRow> rows;
  for (const auto& row : parse_csv(read_file(dir / "s.csv")))
    if (row.pid == pid) rows.push_back(row);
  ASSERT_FALSE(rows.empty()) << r.err;
  // Sampled over the worker's whole life (about 1.7 s after the leader exited), not ended when
  // the leader became a zombie.
  EXPECT_GE(rows.back().time_ms - rows.front().time_ms, 1500.0) << r.err;
  EXPECT_GE(rows.back().min_total, 4096u);
  uint64_t max_rss = 0;
  for (const auto& row : rows) max_rss = std::max(max_rss, row.rss_kb);
  EXPECT_GE(max_rss, 4096u * 4) << "the worker's 16 MiB are resident while it lives";
  EXPECT_NE(r.err.find(fmt::format("pid {} (threadprog) exited", pid)), std::string::npos) << r.err;
}

TEST(MonitorRuntime, CumulativeTotalsEqualProc) {
  TempDir dir;
  Monitor m(dir, {"--no-shm", "--exact-rss", "-o", dir / "s.csv"});
  ASSERT_TRUE(m.ready()) << m.err();
  Child work({kWork, "--mb", "64", "--pattern", "random", "--accesses", "30000", "--iterations",
              "4", "--hold-ms", "20000"});
  ASSERT_TRUE(m.call(fmt::format("register {}", work.pid)).ok);
  // Wait until the work is done (the counters stop moving), then a few periods more.
  uint64_t last = 0;
  for (int i = 0; i < 100; ++i) {
    sleep_s(0.1);
    auto s = proc::read_stat(work.pid);
    ASSERT_TRUE(s.ok());
    if (s->minflt == last && last > 0) break;
    last = s->minflt;
  }
  sleep_s(0.3);
  auto truth = proc::read_stat(work.pid);
  ASSERT_TRUE(truth.ok());
  uint64_t rss = vm_rss_kb(work.pid);
  auto status = m.call("status");
  std::string expect_prefix =
      fmt::format("\n{},kscope-work,{},{},", work.pid, truth->minflt, truth->majflt);
  EXPECT_NE(status.body.find(expect_prefix), std::string::npos)
      << "want " << expect_prefix << " in\n"
      << status.body;
  // CPU time: the process's CPU clock at the last sample; read here too, after the status reply.
  // Holding, kscope-work wakes every 10 ms (about 1% of a core), so the clock has moved on by a
  // little since that sample (at most 20 ms of CPU in 2 s). stat's utime+stime is the same time
  // truncated to clock ticks (each of the two on its own: at most 2 ticks below).
  clockid_t clock;
  ASSERT_EQ(::clock_getcpuclockid(work.pid, &clock), 0);
  timespec ts;
  ASSERT_EQ(::clock_gettime(clock, &ts), 0);
  double clock_s = ts.tv_sec + ts.tv_nsec / 1e9;
  std::smatch cm;
  ASSERT_TRUE(std::regex_search(
      status.body, cm, std::regex(fmt::format("\\n{},kscope-work,\\d+,\\d+,([0-9.]+),", work.pid))))
      << status.body;
  double seen_s = std::stod(cm[1]);
  EXPECT_LE(seen_s, clock_s + 1e-6) << status.body;
  EXPECT_LE(clock_s - seen_s, 0.02) << status.body;
  double tick_s = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  double ticks_s = (truth->utime_ticks + truth->stime_ticks) * tick_s;
  EXPECT_GE(seen_s, ticks_s - 0.02);
  EXPECT_LT(seen_s, ticks_s + 2 * tick_s);
  EXPECT_NE(status.body.find(fmt::format(",{},", rss)), std::string::npos)
      << "VmRSS " << rss << " in\n"
      << status.body;
  EXPECT_GT(truth->minflt, 64u * 256 / 2) << "the workload touched most of its 64 MiB";
  EXPECT_EQ(m.stop(), 0);
  auto rows = parse_csv(read_file(dir / "s.csv"));
  const CsvRow* final_row = nullptr;
  uint64_t sum = 0, prev_total = 0;
  for (const auto& r : rows)
    if (r.pid == std::to_string(work.pid)) {
      EXPECT_GE(r.min_total, prev_total) << "totals never decrease";
      if (prev_total > 0) {
        EXPECT_EQ(r.min_total - prev_total, r.min) << "delta = difference of consecutive totals";
      }
      prev_total = r.min_total;
      sum += r.min;
      final_row = &r;
    }
  ASSERT_NE(final_row, nullptr);
  EXPECT_EQ(final_row->min_total, truth->minflt);
  EXPECT_EQ(final_row->maj_total, truth->majflt);
  EXPECT_EQ(final_row->rss_kb, rss);
  // Aggregate rows sum the process rows of the same period.
  std::map<double, uint64_t> per_time;
  for (const auto& r : rows)
    if (r.pid != "all") per_time[r.time_ms] += r.min;
  for (const auto& r : rows)
    if (r.pid == "all") {
      EXPECT_EQ(r.min, per_time[r.time_ms]) << r.time_ms;
    }
}

TEST(MonitorRuntime, DefaultRssIsWithinThePerCpuCounterError) {
  TempDir dir;
  Monitor m(dir, {"--no-shm"});
  ASSERT_TRUE(m.ready()) << m.err();
  Child work({kWork, "--mb", "64", "--pattern", "sequential", "--accesses", "1100000",
              "--iterations", "1", "--hold-ms", "20000"});
  ASSERT_TRUE(m.call(fmt::format("register {}", work.pid)).ok);
  uint64_t rss = 0;
  for (int i = 0; i < 100 && rss < 60000; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    rss = vm_rss_kb(work.pid);
  }
  sleep_s(0.3);
  rss = vm_rss_kb(work.pid);
  auto status = m.call("status");
  std::smatch mm;
  ASSERT_TRUE(std::regex_search(
      status.body, mm,
      std::regex(fmt::format("\\n{},kscope-work,[^,]*,[^,]*,[^,]*,[^,]*,(\\d+),", work.pid))))
      << status.body;
  int64_t seen = std::stoll(mm[1]);
  // stat's rss reads the mm's per-CPU counters without summing them: at most 32 pages per CPU
  // (percpu_counter_batch) plus what moved between the two readings.
  int64_t bound = 32 * 4 * ::sysconf(_SC_NPROCESSORS_CONF) + 64;
  EXPECT_LE(std::llabs(seen - static_cast<int64_t>(rss)), bound) << seen << " vs VmRSS " << rss;
  EXPECT_GT(rss, 64u * 1024 * 9 / 10);
  EXPECT_EQ(m.stop(), 0);
}

TEST(MonitorRuntime, CommandModeEndsWithTheCommandAndItsFinalCounters) {
  TempDir dir;
  auto r = run({kKscope, "monitor", "--no-shm", "--socket", dir / "c.sock", "-o", dir / "s.csv",
                "--", kWork, "--mb", "32", "--pattern", "sequential", "--accesses", "100000",
                "--iterations", "30", "--register"},
               60);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  std::regex re("pid=(\\d+) .* min_faults=(\\d+) maj_faults=(\\d+)");
  ASSERT_TRUE(std::regex_search(r.out, m, re)) << r.out;
  std::string pid = m[1];
  uint64_t self_min = std::stoull(m[2]);
  auto rows = parse_csv(read_file(dir / "s.csv"));
  const CsvRow* last = nullptr;
  for (const auto& row : rows)
    if (row.pid == pid) last = &row;
  ASSERT_NE(last, nullptr);
  // kscope-work --register unregisters itself as it finishes (after reading its own counters),
  // and the monitor writes a final row at unregistration: everything kscope-work counted, plus
  // the few faults of the unregister call. (Without that row the series ended at the last
  // period before, thousands of faults short, whenever the work finished between two periods.)
  EXPECT_GE(last->min_total, self_min);
  EXPECT_LT(last->min_total - self_min, 64u);
  EXPECT_NE(r.err.find("wake-up lateness"), std::string::npos) << r.err;
  // The command's exit status is the monitor's.
  r = run(
      {kKscope, "monitor", "--no-shm", "--socket", dir / "d.sock", "--", "/bin/sh", "-c", "exit 7"},
      30);
  EXPECT_EQ(r.exit_code, 7) << r.err;
  // --duration ends the monitor first: the command is terminated and its status reported.
  r = run({kKscope, "monitor", "--no-shm", "--socket", dir / "e.sock", "--duration", "0.5", "--",
           "/bin/sleep", "30"},
          30);
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
}

// Ground truth: cpuprog's own CLOCK_PROCESS_CPUTIME_ID and VmRSS at its end (2 threads at 40%
// of a core, one exiting halfway). CPU time must be the nanosecond process clock, not 10 ms
// ticks: every period's CPU time is an arbitrary number of ns (ticks made every one a multiple
// of 10 ms, so cpu_util moved in steps of 0.2), and the total over the run equals what the
// process measured itself. The final row (the zombie's) carries its last live RSS, not 0, and
// the command is announced under its own name, not kscope's.
TEST(MonitorRuntime, CpuTimeIsTheProcessClockAndTheLastRowKeepsItsRss) {
  TempDir dir;
  std::string shm = unique_shm("cpu");
  auto r = run({kKscope, "monitor", "--shm", shm, "--exact-rss", "--socket", dir / "c.sock", "-o",
                dir / "s.csv", "--", kCpuprog, "2000", "40", "2"},
               60);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("pid=(\\d+) cpu_ns=(\\d+) rss_kb=(\\d+)")))
      << r.out;
  std::string pid = m[1];
  uint64_t self_cpu_ns = std::stoull(m[2]);
  uint64_t self_rss_kb = std::stoull(m[3]);
  EXPECT_NE(r.err.find(fmt::format("registered pid {} (cpuprog)", pid)), std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("(kscope)"), std::string::npos) << r.err;
  // 2 threads x 40% over 1 s and 2 s of wall time: about 1.2 s, less on a busy machine.
  EXPECT_GT(self_cpu_ns, 100'000'000u);

  auto mapping = monitor::open_shm_ring(shm);
  ASSERT_TRUE(mapping.ok()) << mapping.error().describe();
  monitor::RingReader reader(mapping->data(), 0);
  reader.start_at_oldest();
  auto batch = reader.poll(1 << 20);
  ::shm_unlink(("/" + shm).c_str());
  EXPECT_EQ(batch.lost, 0u);
  std::vector<kscope_ring_slot> slots;
  for (const auto& s : batch.rows)
    if (s.kind == KSCOPE_RING_KIND_PROCESS && std::to_string(s.pid) == pid) slots.push_back(s);
  ASSERT_GE(slots.size(), 30u) << "about 40 periods in 2 s";
  std::vector<CsvRow> csv;
  for (const auto& row : parse_csv(read_file(dir / "s.csv")))
    if (row.pid == pid) csv.push_back(row);
  ASSERT_EQ(csv.size(), slots.size());

  // The run as one window: the final (zombie) row's total is the process's CPU clock at exit,
  // which is what it measured itself plus the CPU time of exiting (well below 1%).
  uint64_t final_cpu = slots.back().cpu_time_ns_total;
  EXPECT_GE(final_cpu, self_cpu_ns);
  EXPECT_LE(final_cpu - std::min(final_cpu, self_cpu_ns), self_cpu_ns / 100)
      << "monitor " << final_cpu << " ns, process " << self_cpu_ns << " ns";
  // Each period: nanoseconds, and the CSV's cpu_util is exactly that over the period.
  size_t busy = 0, on_tick_grid = 0;
  for (size_t i = 1; i < slots.size(); ++i) {
    uint64_t cpu = slots[i].cpu_time_ns_total - slots[i - 1].cpu_time_ns_total;
    uint64_t wall = slots[i].time_ns - slots[i - 1].time_ns;
    ASSERT_GE(slots[i].cpu_time_ns_total, slots[i - 1].cpu_time_ns_total);
    EXPECT_NEAR(csv[i].cpu_util, static_cast<double>(cpu) / static_cast<double>(wall), 6e-5)
        << "row " << i;
    if (cpu == 0) continue;
    ++busy;
    if (cpu % 1'000'000 == 0) ++on_tick_grid;
  }
  EXPECT_GE(busy, 10u) << "cpuprog ran in too few periods for the test to mean anything";
  EXPECT_LE(on_tick_grid, 1u) << "of " << busy << " periods with CPU time, " << on_tick_grid
                              << " are whole milliseconds: tick-quantized CPU time";
  // RSS: the zombie has no memory left to read; its final row repeats the last live reading,
  // which is the process's own VmRSS at its end up to what changed in between: each fault of the
  // final row maps at most 16 pages (fault-around, 64 KiB), and the exiting thread's stack is
  // given back (a few pages).
  EXPECT_GT(csv.back().rss_kb, 0u);
  EXPECT_EQ(csv.back().rss_kb, csv[csv.size() - 2].rss_kb);
  int64_t bound = 64 + 64 * static_cast<int64_t>(csv.back().min);
  EXPECT_LE(std::llabs(static_cast<int64_t>(csv.back().rss_kb) - static_cast<int64_t>(self_rss_kb)),
            bound)
      << "final row " << csv.back().rss_kb << " KiB, process's VmRSS " << self_rss_kb << " KiB";
}

// `kscope monitor read --follow | head`: the reader ends when head does, quietly and with
// status 0, as cat does (pipefail would show any other status).
TEST(MonitorRuntime, ReaderEndsQuietlyWhenItsPipeCloses) {
  TempDir dir;
  std::string shm = unique_shm("pipe");
  Monitor m(dir, {"--shm", shm, "-q"});
  ASSERT_TRUE(m.ready()) << m.err();
  Child sleeper({"/bin/sleep", "30"});
  ASSERT_TRUE(m.call(fmt::format("register {}", sleeper.pid)).ok);
  auto r = run({"/bin/bash", "-c",
                fmt::format("set -o pipefail; '{}' monitor read --follow --shm {} | head -n 3",
                            kKscope, shm)},
               30);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3) << r.out;
  EXPECT_EQ(r.out.rfind("time_ms,pid,comm,", 0), 0u) << r.out;
  EXPECT_EQ(m.stop(), 0);
  ::shm_unlink(("/" + shm).c_str());
}

TEST(MonitorRuntime, RingReaderFollowsTheLiveWriter) {
  TempDir dir;
  std::string shm = unique_shm("ring");
  Monitor m(dir, {"--shm", shm, "-o", dir / "s.csv", "--duration", "3", "-q"});
  ASSERT_TRUE(m.ready()) << m.err();
  Child reader({kKscope, "monitor", "read", "--follow", "--shm", shm}, dir / "read.csv");
  Child work({kWork, "--mb", "64", "--pattern", "random", "--accesses", "20000", "--iterations",
              "20", "--hold-ms", "5000"});
  ASSERT_TRUE(m.call(fmt::format("register {}", work.pid)).ok);
  EXPECT_EQ(wait_for(m.pid, 20), 0) << m.err();
  m.pid = -1;
  EXPECT_EQ(reader.wait(10), 0) << "the reader ends when the monitor closes the ring";
  std::string csv = read_file(dir / "s.csv");
  std::string seen = read_file(dir / "read.csv");
  auto a = parse_csv(csv), b = parse_csv(seen);
  EXPECT_GT(a.size(), 20u);
  EXPECT_EQ(csv, seen) << "the live reader saw exactly the rows of the CSV";
  // The file stays for late readers, marked closed.
  auto late = run({kKscope, "monitor", "read", "--shm", shm});
  EXPECT_EQ(late.exit_code, 0);
  EXPECT_EQ(late.out, csv);
  EXPECT_NE(late.err.find("the monitor has finished"), std::string::npos) << late.err;
  ::shm_unlink(("/" + shm).c_str());
}

TEST(MonitorRuntime, SmallRingLapsAReaderAndItSaysSo) {
  TempDir dir;
  std::string shm = unique_shm("lap");
  Monitor m(dir, {"--shm", shm, "--ring-slots", "4", "--period-ms", "5", "-q"});
  ASSERT_TRUE(m.ready()) << m.err();
  Child sleeper({"/bin/sleep", "30"});
  Child sleeper2({"/bin/sleep", "30"});
  ASSERT_TRUE(m.call(fmt::format("register {}", sleeper.pid)).ok);
  ASSERT_TRUE(m.call(fmt::format("register {}", sleeper2.pid)).ok);
  // 3 rows per 5 ms period into 4 slots: a reader polling every 2.5 ms, stopped by SIGSTOP for a
  // while, must be lapped. It is stopped once it has printed rows (a sanitizer build starts
  // slowly) and runs on until it has printed rows written after it was continued.
  Child reader({kKscope, "monitor", "read", "--follow", "--shm", shm}, dir / "read.csv",
               dir / "read.err");
  auto rows_printed = [&] {  // complete lines after the header
    std::string text = read_file(dir / "read.csv");
    size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    return lines > 0 ? lines - 1 : 0;
  };
  for (int i = 0; i < 600 && rows_printed() < 6; ++i) sleep_s(0.05);
  ASSERT_GE(rows_printed(), 6u) << read_file(dir / "read.err");
  ::kill(reader.pid, SIGSTOP);
  sleep_s(0.3);
  size_t before = rows_printed();
  ::kill(reader.pid, SIGCONT);
  for (int i = 0; i < 600 && rows_printed() < before + 6; ++i) sleep_s(0.05);
  EXPECT_EQ(m.stop(), 0);
  EXPECT_EQ(reader.wait(10), 0);
  ::shm_unlink(("/" + shm).c_str());
  std::string err = read_file(dir / "read.err");
  EXPECT_NE(err.find("reader lapped by the monitor"), std::string::npos) << err;
  std::smatch mm;
  ASSERT_TRUE(std::regex_search(err, mm, std::regex("(\\d+) lost to lapping"))) << err;
  // 0.3 s stopped at 600 rows/s: ~180 rows; a monitor slowed 3x by a sanitizer still writes 60.
  EXPECT_GT(std::stoull(mm[1]), 30u) << "0.3 s stopped at 600 rows/s";
  // The rows it printed have a gap where it was lapped.
  auto rows = parse_csv(read_file(dir / "read.csv"));
  ASSERT_GT(rows.size(), 5u);
  double max_gap = 0;
  for (size_t i = 1; i < rows.size(); ++i)
    max_gap = std::max(max_gap, rows[i].time_ms - rows[i - 1].time_ms);
  EXPECT_GT(max_gap, 100) << "rows written while the reader was stopped were overwritten";
}

TEST(MonitorRuntime, ReaderRejectsAnotherLayoutVersion) {
  std::string shm = unique_shm("ver");
  int fd = ::shm_open(("/" + shm).c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 128 + 4 * 128), 0);
  kscope_ring_header h{};
  h.magic = KSCOPE_RING_MAGIC;
  h.version = 99;
  h.header_size = 128;
  h.slot_size = 128;
  h.slot_count = 4;
  ASSERT_EQ(::pwrite(fd, &h, sizeof(h), 0), static_cast<ssize_t>(sizeof(h)));
  ::close(fd);
  auto r = run({kKscope, "monitor", "read", "--shm", shm});
  ::shm_unlink(("/" + shm).c_str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("version 99 is not supported"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
  r = run({kKscope, "monitor", "read", "--shm", unique_shm("missing")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot open /dev/shm/"), std::string::npos) << r.err;
}

TEST(MonitorRuntime, ReportsItsOwnJitterAndCpuWith30Processes) {
  TempDir dir;
  auto started = std::chrono::steady_clock::now();
  Monitor m(dir, {"--no-shm", "-q", "-o", dir / "s.csv"});
  ASSERT_TRUE(m.ready()) << m.err();
  std::vector<std::unique_ptr<Child>> kids;
  for (int i = 0; i < 30; ++i) {
    kids.push_back(std::make_unique<Child>(std::vector<std::string>{"/bin/sleep", "30"}));
    ASSERT_TRUE(m.call(fmt::format("register {}", kids.back()->pid)).ok);
  }
  sleep_s(3);
  auto status = m.call("status");
  EXPECT_NE(status.body.find("registered=30"), std::string::npos) << status.body;
  EXPECT_EQ(m.stop(), 0);
  double alive_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::string err = m.err();
  std::smatch mm;
  std::regex re(
      "(\\d+) periods sampled, (\\d+) missed.*lateness n=(\\d+) p50=([0-9.]+)ms "
      "p99=([0-9.]+)ms.*\\(([0-9.]+)% of a core\\)");
  ASSERT_TRUE(std::regex_search(err, mm, re)) << err;
  uint64_t periods = std::stoull(mm[1]);
  EXPECT_GE(periods, 50u);  // ~60 in the 3 s of sleep at 20 Hz
  // Never more periods than 20 Hz over the monitor's whole life (registering 30 processes
  // before the sleep took over a second at load 40: 84 periods).
  EXPECT_LE(static_cast<double>(periods), alive_s * 20.0 + 2.0) << alive_s << " s alive";
  EXPECT_GE(std::stoull(mm[3]), periods - 1);
  double p50 = std::stod(mm[4]);
  double p99 = std::stod(mm[5]);
  EXPECT_GE(p99, p50);
  // Bounds for a noisy shared 2-core VM; bench/monitor.sh measures the real numbers. With ~60
  // periods p99 is the worst wake-up, and this VM's host stalls a SCHED_FIFO thread now and
  // then by ~40 ms even when idle (2 of 7 runs at load 2, the binaries of before and after
  // 2026-11-30 alike): the typical lateness (p50) is held tight, the worst only loosely. A
  // sanitizer build samples 2-3 times slower (22% of a core seen under make check-sanitize).
  EXPECT_LT(p50, 5.0 * kSanitizerSlowdown) << err;
  EXPECT_LT(p99, 100.0 * kSanitizerSlowdown) << err;
  EXPECT_LT(std::stod(mm[6]), 10.0 * kSanitizerSlowdown) << err;
  // 30 process rows + 1 aggregate per period once all are registered.
  auto rows = parse_csv(read_file(dir / "s.csv"));
  ASSERT_FALSE(rows.empty());
  double last_time = rows.back().time_ms;
  size_t last_period_rows = 0;
  for (const auto& r : rows) last_period_rows += r.time_ms == last_time;
  EXPECT_EQ(last_period_rows, 31u);
}

TEST(MonitorCli, BadInputIsAUsageError) {
  TempDir dir;
  std::string sock = dir / "x.sock";
  for (const char* p : {"0", "-5", "abc", "0.5", "60001", "nan", ""}) {
    auto r = run({kKscope, "monitor", "--socket", sock, "--no-shm", "--period-ms", p});
    EXPECT_EQ(r.exit_code, 2) << p << ": " << r.err;
    EXPECT_NE(r.err.find("period"), std::string::npos) << r.err;
  }
  for (const char* p : {"abc", "-3", "0", "1,x"}) {
    auto r = run({kKscope, "monitor", "--socket", sock, "--no-shm", "-p", p});
    EXPECT_EQ(r.exit_code, 2) << p << ": " << r.err;
  }
  auto r = run({kKscope, "monitor", "--socket", sock, "--no-shm", "--listen", "0.0.0.0:9999"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("wildcard"), std::string::npos);
  r = run({kKscope, "monitor", "--socket", sock, "--shm", "../etc"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = run({kKscope, "monitor", "status", "--socket", sock});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no monitor is listening"), std::string::npos) << r.err;
  r = run({kKscope, "monitor", "--socket", sock, "--no-shm", "-p", "4194000"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no such process: 4194000"), std::string::npos) << r.err;
  r = run({kWork, "--mb", "0", "--pattern", "random", "--accesses", "1"});
  EXPECT_EQ(r.exit_code, 2);
  r = run({kWork, "--mb", "1", "--pattern", "zigzag", "--accesses", "1"});
  EXPECT_EQ(r.exit_code, 2);
  r = run({kWork, "--mb", "1", "--pattern", "random", "--accesses", "1", "--register", "--socket",
           sock});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot register"), std::string::npos) << r.err;
}

struct WorkReport {
  uint64_t min = 0, maj = 0;
  uint64_t access_min = 0, access_maj = 0;  // the access phase alone
  double elapsed_ms = 0;
};

WorkReport run_work(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kWork};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run(argv, 120);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  std::regex re("elapsed_ms=([0-9.]+) min_faults=(\\d+) maj_faults=(\\d+)");
  WorkReport w;
  if (std::regex_search(r.out, m, re)) {
    w.elapsed_ms = std::stod(m[1]);
    w.min = std::stoull(m[2]);
    w.maj = std::stoull(m[3]);
  } else {
    ADD_FAILURE() << r.out;
  }
  std::regex access_re("access_min_faults=(\\d+) access_maj_faults=(\\d+)");
  if (std::regex_search(r.out, m, access_re)) {
    w.access_min = std::stoull(m[1]);
    w.access_maj = std::stoull(m[2]);
  } else {
    ADD_FAILURE() << r.out;
  }
  return w;
}

TEST(KscopeWork, RandomFaultsMoreThanLocalityMoreThanSequential) {
  auto with = [&](const char* pattern, const char* accesses, const char* iterations) {
    return run_work(
        {"--mb", "256", "--pattern", pattern, "--accesses", accesses, "--iterations", iterations});
  };
  // What the process faults besides its accesses (loader, libraries, sanitizer runtime...): one
  // access, measured the same way.
  WorkReport base = with("sequential", "1", "1");
  ASSERT_GT(base.min, 0u);
  auto own = [&](const WorkReport& w) { return w.min - std::min(w.min, base.min - 1); };
  WorkReport random = with("random", "10000", "10"), locality = with("locality", "10000", "10"),
             sequential = with("sequential", "10000", "10");
  // 100k uniform accesses over 65536 pages touch 65536 x (1 - e^-1.526) = 51.2k of them.
  EXPECT_GT(own(random), 50000u);
  EXPECT_LT(own(random), 52500u);
  // Locality: the window sweeps 100000/16 + 256 = 6506 pages; 10% of accesses (10k) land
  // uniformly, about 9.3k of them on distinct pages outside the window: ~15.7k.
  EXPECT_GT(own(locality), 14000u);
  EXPECT_LT(own(locality), 17500u);
  EXPECT_LT(own(locality), own(random) / 3);
  // Sequential: 100k x 64 B = 6,400,000 B = 1563 pages.
  EXPECT_GE(own(sequential), 1563u - 48);
  EXPECT_LE(own(sequential), 1563u + 48);  // + run-to-run noise of the baseline
  // The access phase alone: its faults are the pages first touched, none read from swap. (The
  // process's totals may hold a major fault of the loader: a library page read back from disk after
  // an earlier test's memory pressure evicted it, as a CI run saw once.)
  EXPECT_EQ(random.access_maj + locality.access_maj + sequential.access_maj, 0u)
      << "no memory pressure here";
  EXPECT_LE(sequential.access_min, sequential.min);
  EXPECT_GE(sequential.access_min, 1563u - 8);  // its accesses' pages, counted inside the phase
  EXPECT_LE(sequential.access_min, 1563u + 8);
}

}  // namespace
}  // namespace kscope::testing
