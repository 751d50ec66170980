// What kscope faults (and top, monitor) do with their targets and their streams, against ground
// truth: the per-thread counters in /proc/PID/task/TID/stat, gzip's own integrity check, the
// owner and mode of the files, the environment the command saw.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "counts.h"
#include "runtime_env.h"
#include "subprocess.h"
#include "trace/proc.h"
#include "util/csv.h"

namespace kscope::testing {
namespace {

const std::string kThreadprog = std::string(KSCOPE_TEST_PROGS_DIR) + "/threadprog";
const std::string kFaultprog = std::string(KSCOPE_TEST_PROGS_DIR) + "/faultprog";
const std::string kEventsHeader =
    "time_ns,pid,tid,comm,addr,ip,access,mode,kind,segment,latency_ns,cpu";

// "pid N (comm): kernel K (minflt a, majflt b), seen individually S, not seen individually U"
struct Reconciliation {
  bool found = false;
  std::string comm;
  uint64_t kernel = 0, seen = 0, unseen = 0;
};
Reconciliation reconciliation(const std::string& out, int pid) {
  Reconciliation c;
  std::regex re("pid " + std::to_string(pid) +
                " \\(([^)]*)\\): kernel ([0-9,]+) \\(minflt [0-9,]+, majflt [0-9,]+\\), seen "
                "individually ([0-9,]+), not seen individually ([0-9,]+)");
  std::smatch m;
  if (std::regex_search(out, m, re)) {
    c.found = true;
    c.comm = m[1];
    c.kernel = parse_count(m[2]);
    c.seen = parse_count(m[3]);
    c.unseen = parse_count(m[4]);
  }
  return c;
}

uint64_t thread_faults(int pid, int tid) {
  auto st = proc::read_thread_stat(pid, tid);
  EXPECT_TRUE(st.ok());
  return st ? st->minflt + st->majflt : 0;
}

class FaultsTargets : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kscope-tg-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (prog_ > 0) {
      kill(prog_, SIGKILL);
      wait_for(prog_, 10);
    }
    std::filesystem::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Starts threadprog; returns the thread ids of its workers once it printed "ready".
  std::vector<int> start_threadprog(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {kThreadprog};
    argv.insert(argv.end(), args.begin(), args.end());
    prog_ = spawn(argv, path("prog.out"));
    EXPECT_GT(prog_, 0);
    wait_for_text(path("prog.out"), "ready");
    std::istringstream in(read_file(path("prog.out")));
    std::string word;
    int pid = 0;
    in >> word >> pid;
    EXPECT_EQ(word, "ready");
    EXPECT_EQ(pid, prog_);
    std::vector<int> tids;
    int tid;
    while (in >> tid) tids.push_back(tid);
    return tids;
  }

  static bool wait_for_text(const std::string& file, const std::string& text, int ms = 20000) {
    for (int i = 0; i < ms / 10; ++i) {
      if (read_file(file).find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "'" << text << "' never appeared in " << file << ": " << read_file(file);
    return false;
  }

  std::filesystem::path dir_;
  int prog_ = -1;
};

// Item 1: with a COMMAND, the summary and plot never go into the command's stdout.
TEST_F(FaultsTargets, CommandStdoutStaysTheCommandsGzipStaysValid) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  {
    std::ofstream f(path("f"));
    for (int i = 0; i < 2000; ++i) f << "line " << i << " of the file kscope must not touch\n";
  }
  auto r =
      run({"/bin/sh", "-c",
           std::string(KSCOPE_BINARY) + " faults -- gzip -c " + path("f") + " > " + path("f.gz")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("kscope faults:"), std::string::npos) << "summary on stderr:\n" << r.err;
  EXPECT_NE(r.err.find("virtual page"), std::string::npos) << "plot on stderr:\n" << r.err;
  auto t = run({"gzip", "-t", path("f.gz")});
  EXPECT_EQ(t.exit_code, 0) << "f.gz is not a valid gzip file: " << t.err;
  auto d = run({"gzip", "-dc", path("f.gz")});
  EXPECT_EQ(d.out, read_file(path("f")));
}

// --events - with a COMMAND: only the CSV on stdout; the command's own output goes to stderr.
TEST_F(FaultsTargets, EventsOnStdoutWithACommandAreAloneThere) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = run(
      {KSCOPE_BINARY, "faults", "--events", "-", "--format", "csv", "--", "ls", "/etc/hostname"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream in(r.out);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line, kEventsHeader);
  size_t rows = 0;
  while (std::getline(in, line)) {
    auto f = split_csv_line(line);
    ASSERT_EQ(f.size(), 12u) << "not an event row: " << line;
    EXPECT_EQ(f[3], "ls");
    ++rows;
  }
  EXPECT_GT(rows, 10u);
  EXPECT_NE(r.err.find("/etc/hostname\n"), std::string::npos) << "ls's output:\n" << r.err;
  EXPECT_NE(r.err.find("stdout goes to stderr"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kscope faults:"), std::string::npos) << r.err;
}

// The monitor follows the same rule: -o - with a COMMAND leaves stdout to the CSV.
TEST_F(FaultsTargets, MonitorCsvOnStdoutWithACommandIsAloneThere) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = run({KSCOPE_BINARY, "monitor", "--no-shm", "--socket", path("mon.sock"), "-o", "-", "--",
                "/bin/sh", "-c", "echo from-the-command; sleep 0.3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream in(r.out);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line,
            "time_ms,pid,comm,min_faults,maj_faults,min_faults_total,maj_faults_total,"
            "cpu_util,rss_kb");
  while (std::getline(in, line)) EXPECT_EQ(split_csv_line(line).size(), 9u) << line;
  EXPECT_EQ(r.out.find("from-the-command"), std::string::npos);
  EXPECT_NE(r.err.find("from-the-command"), std::string::npos) << r.err;
}

// Item 2: -t traces exactly one thread. Ground truth: that thread's own counters, read while it
// is blocked before and after the round it faults in, while its siblings fault alongside.
TEST_F(FaultsTargets, ThreadOptionSeesExactlyThatThreadsFaults) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto tids = start_threadprog({"rounds", "3", "150"});
  ASSERT_EQ(tids.size(), 3u);
  int target = tids[1];
  uint64_t before = thread_faults(prog_, target);
  int tracer = spawn({KSCOPE_BINARY, "faults", "-t", std::to_string(target), "--events",
                      path("events.csv"), "--format", "csv", "--no-plot"},
                     path("kscope.out"), path("kscope.err"));
  ASSERT_TRUE(wait_for_text(path("kscope.err"), "tracing"));
  kill(prog_, SIGUSR1);
  ASSERT_TRUE(wait_for_text(path("prog.out"), "done 1"));
  uint64_t after = thread_faults(prog_, target);
  kill(tracer, SIGINT);
  ASSERT_EQ(wait_for(tracer, 30), 0) << read_file(path("kscope.err"));

  std::istringstream in(read_file(path("events.csv")));
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, kEventsHeader);
  uint64_t rows = 0;
  while (std::getline(in, line)) {
    auto f = split_csv_line(line);
    ASSERT_EQ(f.size(), 12u) << line;
    EXPECT_EQ(std::stoi(f[1]), prog_);
    EXPECT_EQ(std::stoi(f[2]), target) << "a fault of another thread";
    ++rows;
  }
  ASSERT_GE(after - before, 150u);
  EXPECT_EQ(rows, after - before) << "the thread's own counters moved by " << after - before;
  auto c = reconciliation(read_file(path("kscope.out")), prog_);
  ASSERT_TRUE(c.found) << read_file(path("kscope.out"));
  EXPECT_EQ(c.comm, "threadprog");
  EXPECT_EQ(c.kernel, after - before);
  EXPECT_EQ(c.seen, rows);
  EXPECT_EQ(c.unseen, 0u);
}

// Item 2: a thread id given to -p is refused, naming its process; -t takes it. So does top.
TEST_F(FaultsTargets, ThreadIdGivenToPidIsRefusedNamingItsProcess) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto tids = start_threadprog({"busy", "2"});
  ASSERT_EQ(tids.size(), 2u);
  std::string tid = std::to_string(tids[0]);
  std::string expected = tid + " is a thread of process " + std::to_string(prog_) + " (threadprog)";
  auto r = run({KSCOPE_BINARY, "faults", "-p", tid, "--duration", "1"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("-t " + tid), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  r = run({KSCOPE_BINARY, "top", "--once", "-p", tid});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");

  // top -t: the table holds that thread only, busy on the CPU.
  r = run({KSCOPE_BINARY, "top", "--once", "--duration", "0.5", "--format", "json", "--by", "tid",
           "-t", tid});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // One task row (keys are sorted: look at each key on its own).
  std::regex pid_key("\"pid\":([0-9]+)"), tid_key("\"tid\":([0-9]+)");
  size_t rows = 0;
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), tid_key);
       it != std::sregex_iterator(); ++it) {
    EXPECT_EQ((*it)[1], tid);
    ++rows;
  }
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), pid_key);
       it != std::sregex_iterator(); ++it)
    EXPECT_EQ(std::stoi((*it)[1]), prog_);
  EXPECT_EQ(rows, 1u) << r.out;
}

// Item 3: attaching to a busy multi-threaded process, the kernel's count over the traced
// interval equals what was seen: none of its faults goes through get_user_pages().
TEST_F(FaultsTargets, BusyProcessReconcilesWithNothingUnseen) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto tids = start_threadprog({"busy", "4"});
  ASSERT_EQ(tids.size(), 4u);
  for (double duration : {0.3, 1.5}) {
    SCOPED_TRACE(duration);
    auto r = run({KSCOPE_BINARY, "faults", "-p", std::to_string(prog_), "--duration",
                  std::to_string(duration), "--no-plot", "--ringbuf-mb", "64"},
                 60);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto c = reconciliation(r.out, prog_);
    ASSERT_TRUE(c.found) << r.out;
    EXPECT_EQ(c.comm, "threadprog") << "the process is named";
    EXPECT_GT(c.seen, 1000u) << r.out;
    // Every fault the kernel counted was seen, or is a record the summary says it lost (a
    // loaded machine can starve the reader; the loss is then named, never blamed on gup).
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex("lost records: ([0-9,]+)"))) << r.out;
    uint64_t lost = parse_count(m[1]);
    EXPECT_EQ(c.unseen, lost) << r.out;
    EXPECT_EQ(c.kernel, c.seen + lost) << r.out;
    EXPECT_EQ(r.out.find("get_user_pages"), std::string::npos)
        << "nothing here goes through get_user_pages:\n"
        << r.out;
    EXPECT_EQ(r.err.find("faults, "), std::string::npos) << "no progress line off a terminal";
  }
}

// Item 2: a zombie is "process N has exited" (exit 1), for faults and top.
TEST_F(FaultsTargets, ZombieIsAProcessThatHasExited) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  // Not reaped: a zombie until wait_for below.
  for (int i = 0; i < 500; ++i) {
    auto st = proc::read_stat(child);
    if (st && st->state == 'Z') break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::string expected = "process " + std::to_string(child) + " has exited";
  auto r = run({KSCOPE_BINARY, "faults", "-p", std::to_string(child), "--duration", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
  r = run({KSCOPE_BINARY, "top", "--once", "-p", std::to_string(child)});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
  wait_for(child, 10);
}

// Issue 13 review: one wording per situation in faults, top and monitor. A PID that never
// existed and one reaped (no /proc entry: the two cannot be told apart) are "no such process:
// N"; a zombie (still in /proc, every thread exited) is "process N has exited". Exit 1 for all.
TEST_F(FaultsTargets, GoneTargetsGetTheSameWordsInFaultsTopAndMonitor) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  pid_t reaped = fork();
  ASSERT_GE(reaped, 0);
  if (reaped == 0) _exit(0);
  ASSERT_EQ(wait_for(reaped, 10), 0);
  pid_t zombie = fork();
  ASSERT_GE(zombie, 0);
  if (zombie == 0) _exit(0);
  bool is_zombie = false;
  for (int i = 0; i < 500 && !is_zombie; ++i) {
    auto st = proc::read_stat(zombie);
    is_zombie = st && st->state == 'Z';
    if (!is_zombie) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(is_zombie);
  ASSERT_FALSE(proc::process_exists(4194303));  // above any pid in use (the largest pid_max)
  ASSERT_FALSE(proc::process_exists(reaped));   // pids are not reused right away
  const std::vector<std::pair<pid_t, std::string>> cases = {
      {4194303, "no such process: 4194303"},
      {reaped, "no such process: " + std::to_string(reaped)},
      {zombie, "process " + std::to_string(zombie) + " has exited"}};
  std::string sock = path("monitor.sock");
  for (const auto& [pid, words] : cases) {
    std::string p = std::to_string(pid);
    for (const std::vector<std::string>& argv :
         {std::vector<std::string>{KSCOPE_BINARY, "faults", "-p", p, "--duration", "1"},
          std::vector<std::string>{KSCOPE_BINARY, "top", "--once", "-p", p},
          std::vector<std::string>{KSCOPE_BINARY, "monitor", "--socket", sock, "--no-shm", "-p",
                                   p}}) {
      auto r = run(argv, 60);
      EXPECT_EQ(r.exit_code, 1) << argv[1] << " -p " << p << ": " << r.err;
      EXPECT_NE(r.err.find(words), std::string::npos) << argv[1] << " -p " << p << ": " << r.err;
    }
  }
  wait_for(zombie, 10);
}

// Item 4: through sudo (SUDO_UID/SUDO_GID as sudo sets them), the files kscope creates belong to
// the invoking user with their modes, and the command runs as that user with that user's HOME.
TEST_F(FaultsTargets, SudoUsersFilesAndHome) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  const passwd* pw = getpwnam("nobody");
  ASSERT_NE(pw, nullptr);
  uid_t uid = pw->pw_uid;
  gid_t gid = pw->pw_gid;
  std::string home = pw->pw_dir;
  // An existing file keeps its owner: kscope only gives away what it creates.
  { std::ofstream(path("existing.csv")) << "old\n"; }
  auto r = run({"env", "HOME=/root", "USER=root", "SUDO_UID=" + std::to_string(uid),
                "SUDO_GID=" + std::to_string(gid), "SUDO_USER=nobody", KSCOPE_BINARY, "faults",
                "-o", path("rec.ksr"), "--events", path("events.csv"), "--no-plot", "--", "/bin/sh",
                "-c", "echo HOME=$HOME USER=$USER UID=$(id -u)"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("HOME=" + home + " USER=nobody UID=" + std::to_string(uid)),
            std::string::npos)
      << r.out;
  for (const char* name : {"rec.ksr", "events.csv"}) {
    struct stat st {};
    ASSERT_EQ(::stat(path(name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_uid, uid) << name;
    EXPECT_EQ(st.st_gid, gid) << name;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << name;
  }
  // The user can read the recording kscope made for them.
  auto plot = run({"setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(gid),
                   "--clear-groups", KSCOPE_BINARY, "plot", path("rec.ksr")});
  EXPECT_EQ(plot.exit_code, 0) << plot.err;

  r = run({"env", "SUDO_UID=" + std::to_string(uid), "SUDO_GID=" + std::to_string(gid),
           KSCOPE_BINARY, "export", path("rec.ksr"), "--format", "csv", "-o",
           path("existing.csv")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat(path("existing.csv").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u) << "an existing file keeps its owner";
  r = run({"env", "SUDO_UID=" + std::to_string(uid), "SUDO_GID=" + std::to_string(gid),
           KSCOPE_BINARY, "export", path("rec.ksr"), "--format", "csv", "-o", path("new.csv")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(::stat(path("new.csv").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, uid);
  EXPECT_EQ(
      st.st_mode & 0777, 0666u & ~[] {
        mode_t m = umask(0);
        umask(m);
        return m;
      }());
}

// Rough edge: on a terminal, a one-line status (faults, rate, lost) about once a second, cleared
// at the end; off a terminal none (checked in BusyProcessReconcilesWithNothingUnseen).
TEST_F(FaultsTargets, ProgressLineOnATerminal) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto tids = start_threadprog({"busy", "1"});
  ASSERT_EQ(tids.size(), 1u);
  // script(1) gives kscope a pseudo-terminal for stdout and stderr.
  std::string cmd = std::string(KSCOPE_BINARY) + " faults -p " + std::to_string(prog_) +
                    " --duration 2.6 --no-plot";
  auto r = run({"script", "-qefc", cmd, "/dev/null"}, 60);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::regex status(
      "\r\x1b\\[Kkscope: ([0-9,]+) faults, ([0-9,]+|-)/s, ([0-9,]+) lost \\(Ctrl-C to stop\\)");
  std::vector<uint64_t> totals;
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), status);
       it != std::sregex_iterator(); ++it)
    totals.push_back(parse_count((*it)[1]));
  ASSERT_GE(totals.size(), 2u) << r.out;
  EXPECT_TRUE(std::is_sorted(totals.begin(), totals.end()));
  EXPECT_GT(totals.back(), 0u);
  // Cleared before the summary.
  size_t last = r.out.rfind("(Ctrl-C to stop)");
  size_t summary = r.out.find("kscope faults:");
  ASSERT_NE(summary, std::string::npos) << r.out;
  EXPECT_LT(last, summary);
  EXPECT_NE(r.out.substr(last, summary - last).find("\r\x1b[K"), std::string::npos);
}

// Rough edge: -vv shows libbpf's log with one "libbpf: " label, not two.
TEST_F(FaultsTargets, VeryVerboseLabelsLibbpfOnce) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = run({KSCOPE_BINARY, "-vv", "faults", "--no-plot", "--", "true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("libbpf: "), std::string::npos) << "libbpf's debug log is shown";
  EXPECT_EQ(r.err.find("libbpf: libbpf:"), std::string::npos) << r.err.substr(0, 2000);
}

}  // namespace
}  // namespace kscope::testing
