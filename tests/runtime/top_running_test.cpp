// A thread already running when kscope top starts, which may never switch out while it measures
// (tests/progs/startspin: a spinner pinned to one CPU, SCHED_FIFO so ordinary tasks there do not
// preempt it, or SCHED_OTHER): its on-CPU time in kscope's table must be its own CPU clock's growth
// over exactly kscope's interval (the JSON's end_monotonic_ns - interval_ns .. end_monotonic_ns,
// looked up in the spinner's own (CLOCK_MONOTONIC, CLOCK_THREAD_CPUTIME_ID) series), within 2% + 2
// ms. Before, such a thread had no account until its first switch-out: no row at all.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "clock_series.h"
#include "runtime_env.h"
#include "subprocess.h"
#include "tools.h"

namespace kscope::testing {
namespace {

const std::string kStartspin = std::string(KSCOPE_TEST_PROGS_DIR) + "/startspin";
const std::string kKscope = KSCOPE_BINARY;

class TopRunning : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fresh_test_dir("kscope-top-running"); }
  void TearDown() override {
    if (prog_pid_ > 0) {
      kill(prog_pid_, SIGKILL);
      wait_for(prog_pid_, 5);
    }
    std::filesystem::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // Returns the wakeups of a thread running since before tracing that kscope's sessions saw
  // (its -v diagnostics), summed over `sessions` runs of kscope on the same spinner.
  uint64_t run_spinner(const std::string& sched, int sessions = 1);
  std::filesystem::path dir_;
  int prog_pid_ = -1;
};

// `sched`: "fifo" or "other" (SCHED_OTHER: on an idle machine nothing switches it out at all).
// kscope top -p runs in batch mode with a table every 0.25 s for 2 s: every interval's on-CPU
// time of the spinner must be its CPU clock's growth over exactly that interval. Before its
// first switch-out, the old kscope showed no row for it; the interval with that switch-out then
// got all of its time since tracing started.
uint64_t TopRunning::run_spinner(const std::string& sched, int sessions) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int cpu = static_cast<int>(ncpu > 1 ? ncpu - 1 : 0);
  prog_pid_ = spawn({kStartspin, std::to_string(cpu), path("series"), sched}, path("prog.out"),
                    path("prog.err"));
  EXPECT_TRUE(wait_for_text(path("prog.out"), "ready", 30)) << read_file(path("prog.err"));
  uint32_t tid = 0;
  {
    std::istringstream in(read_file(path("prog.out")));
    std::string word;
    int pid = 0;
    in >> word >> pid >> tid;
    EXPECT_EQ(pid, prog_pid_);
    if (pid != prog_pid_) return 0;
  }
  // Each session is a new kscope: to it the spinner has been running since before it started.
  uint64_t woken = 0;
  std::string all_tables;
  for (int i = 0; i < sessions; ++i) {
    std::string out = path(fmt::format("top.out.{}", i)), err = path(fmt::format("top.err.{}", i));
    int k = spawn({kKscope, "-v", "top", "-p", std::to_string(prog_pid_), "--batch", "-d", "0.25",
                   "--duration", "2.1", "--by", "tid", "--format", "json"},
                  out, err);
    EXPECT_EQ(wait_for(k, 180), 0) << read_file(err);
    all_tables += read_file(out);
    std::string e = read_file(err);
    static const std::string kWoken = " wakeups of a thread running since before tracing";
    size_t at = e.find(kWoken);
    EXPECT_NE(at, std::string::npos) << e;
    if (at != std::string::npos) {
      size_t b = e.find_last_not_of("0123456789", at - 1) + 1;
      woken += std::stoull(e.substr(b, at - b));
    }
  }
  kill(prog_pid_, SIGUSR1);
  EXPECT_TRUE(wait_for_text(path("prog.out"), "done", 30)) << read_file(path("prog.err"));
  EXPECT_EQ(wait_for(prog_pid_, 30), 0);
  prog_pid_ = -1;

  std::vector<ClockPair> series;
  {
    std::ifstream in(path("series"));
    ClockPair p;
    while (in >> p.mono >> p.cpu) series.push_back(p);
  }
  EXPECT_GT(series.size(), 100u);
  std::istringstream tables(all_tables);
  std::string line;
  int intervals = 0;
  double all_measured = 0, all_truth = 0;
  while (std::getline(tables, line)) {
    if (line.empty()) continue;
    SCOPED_TRACE("interval " + std::to_string(intervals));
    auto j = nlohmann::json::parse(line);
    ++intervals;
    uint64_t end = j.at("end_monotonic_ns").get<uint64_t>();
    uint64_t interval = j.at("interval_ns").get<uint64_t>();
    auto cpu_begin = cpu_at(series, end - interval);
    auto cpu_end = cpu_at(series, end);
    EXPECT_TRUE(cpu_begin && cpu_end) << "the spinner's series does not cover the interval";
    if (!cpu_begin || !cpu_end) break;
    double truth = *cpu_end - *cpu_begin;
    double measured = 0;
    uint64_t switched_out = 0;
    for (const auto& t : j.at("tasks")) {
      if (t.at("tid").get<uint32_t>() != tid) continue;
      measured += static_cast<double>(t.at("oncpu_ns").get<uint64_t>());
      switched_out += t.at("voluntary").get<uint64_t>() + t.at("involuntary").get<uint64_t>();
    }
    std::fprintf(stderr,
                 "interval %d: %.3f s, spinner: kscope %.3f ms, own CPU clock %.3f ms, %llu "
                 "switch-outs\n",
                 intervals, static_cast<double>(interval) / 1e9, measured / 1e6, truth / 1e6,
                 static_cast<unsigned long long>(switched_out));
    // Exact, whether or not it was switched out (under load the kernel lets ordinary tasks run
    // on its CPU now and then): never nothing, never time of another interval.
    EXPECT_LE(std::fabs(measured - truth), 0.02 * truth + 2e6)
        << "kscope " << measured << " ns, the thread's own CPU clock " << truth << " ns";
    EXPECT_LE(measured, static_cast<double>(interval) * 1.001);
    all_measured += measured;
    all_truth += truth;
  }
  // 2.1 s in tables of 0.25 s; a refresh late under load makes its interval longer.
  EXPECT_GE(intervals, 2 * sessions) << read_file(path("top.err.0"));
  // It spun (SCHED_OTHER under load: a share of its CPU).
  EXPECT_GE(all_truth, 0.05 * 2e9 * sessions);
  EXPECT_LE(std::fabs(all_measured - all_truth), 0.02 * all_truth + 2e6 * sessions);
  return woken;
}

// SCHED_FIFO: ordinary tasks on its CPU do not preempt it; the kernel's RT throttling (95% of
// each second) still switches it out about once a second.
TEST_F(TopRunning, ThreadSpinningSinceBeforeTracingGetsItsOnCpuTimeSoFar) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  run_spinner("fifo");
}

// SCHED_OTHER: on an idle machine never switched out in kscope's interval; under load it is.
TEST_F(TopRunning, OrdinarySpinnerSinceBeforeTracingGetsItsOnCpuTimeSoFar) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  run_spinner("other");
}

// A thread running since before tracing that the kernel wakes while it is still on its CPU (it
// set its sleeping state, then was woken before it called schedule(): here, spinning on the
// running owner of a PI mutex, startspin "woken"). The wakeup used to set its counters' base,
// so its time from the start of tracing to the wakeup was in no account and no table. Four
// kscope sessions on the same spinner (each new to it): the wakeup comes before the kernel's
// RT throttling first switches the spinner out in most sessions; the test requires that it
// happened at least once, and every interval of every session exact.
TEST_F(TopRunning, SpinnerWokenWhileRunningKeepsItsTimeSinceTracingStarted) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs a second CPU for the lock holder";
  uint64_t woken = run_spinner("woken", 4);
  std::fprintf(stderr, "wakeups while running, first seen by a session: %llu\n",
               static_cast<unsigned long long>(woken));
  EXPECT_GE(woken, 1u) << "the case under test never happened";
}

}  // namespace
}  // namespace kscope::testing
