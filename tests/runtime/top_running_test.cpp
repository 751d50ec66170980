// A thread already running when kscope top starts, which may never switch out while it measures
// (tests/progs/startspin: a spinner pinned to one CPU, SCHED_FIFO so ordinary tasks there do not
// preempt it): its on-CPU time in kscope's table must be its own CPU clock's growth over exactly
// kscope's interval (the JSON's end_monotonic_ns - interval_ns .. end_monotonic_ns, looked up in
// the spinner's own (CLOCK_MONOTONIC, CLOCK_THREAD_CPUTIME_ID) series), within 2% + 2 ms.
// Before, such a thread had no account until its first switch-out: no row at all.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "runtime_env.h"
#include "subprocess.h"
#include "tools.h"

namespace kscope::testing {
namespace {

const std::string kStartspin = std::string(KSCOPE_TEST_PROGS_DIR) + "/startspin";
const std::string kKscope = KSCOPE_BINARY;

struct ClockPair {
  uint64_t mono = 0, cpu = 0;
};

// The spinner's CPU clock at monotonic time t, interpolated between the pairs around it (they
// are ~200 us of its CPU time apart).
std::optional<double> cpu_at(const std::vector<ClockPair>& series, uint64_t t) {
  for (size_t i = 1; i < series.size(); ++i) {
    if (series[i].mono < t) continue;
    const ClockPair& a = series[i - 1];
    const ClockPair& b = series[i];
    if (a.mono > t) return std::nullopt;  // before the series began
    double f = static_cast<double>(t - a.mono) / static_cast<double>(b.mono - a.mono);
    return static_cast<double>(a.cpu) + f * static_cast<double>(b.cpu - a.cpu);
  }
  return std::nullopt;
}

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
  std::filesystem::path dir_;
  int prog_pid_ = -1;
};

TEST_F(TopRunning, ThreadSpinningSinceBeforeTracingGetsItsOnCpuTimeSoFar) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int cpu = static_cast<int>(ncpu > 1 ? ncpu - 1 : 0);
  prog_pid_ = spawn({kStartspin, std::to_string(cpu), path("series"), "fifo"}, path("prog.out"),
                    path("prog.err"));
  ASSERT_TRUE(wait_for_text(path("prog.out"), "ready", 30)) << read_file(path("prog.err"));
  uint32_t tid = 0;
  {
    std::istringstream in(read_file(path("prog.out")));
    std::string word;
    int pid = 0;
    in >> word >> pid >> tid;
    ASSERT_EQ(pid, prog_pid_);
  }
  int k = spawn({kKscope, "top", "-p", std::to_string(prog_pid_), "--once", "--duration", "2",
                 "--by", "tid", "--format", "json"},
                path("top.out"), path("top.err"));
  ASSERT_EQ(wait_for(k, 180), 0) << read_file(path("top.err"));
  kill(prog_pid_, SIGUSR1);
  ASSERT_TRUE(wait_for_text(path("prog.out"), "done", 30)) << read_file(path("prog.err"));
  ASSERT_EQ(wait_for(prog_pid_, 30), 0);
  prog_pid_ = -1;

  std::vector<ClockPair> series;
  {
    std::ifstream in(path("series"));
    ClockPair p;
    while (in >> p.mono >> p.cpu) series.push_back(p);
  }
  ASSERT_GT(series.size(), 100u);
  auto j = nlohmann::json::parse(read_file(path("top.out")));
  uint64_t end = j.at("end_monotonic_ns").get<uint64_t>();
  uint64_t interval = j.at("interval_ns").get<uint64_t>();
  ASSERT_GE(interval, 2'000'000'000ull);
  auto cpu_begin = cpu_at(series, end - interval);
  auto cpu_end = cpu_at(series, end);
  ASSERT_TRUE(cpu_begin && cpu_end) << "the spinner's series does not cover kscope's interval";
  double truth = *cpu_end - *cpu_begin;

  const nlohmann::json* row = nullptr;
  for (const auto& t : j.at("tasks"))
    if (t.at("tid").get<uint32_t>() == tid) row = &t;
  ASSERT_NE(row, nullptr) << "the spinner (tid " << tid << ") has no row: " << j.dump();
  double measured = static_cast<double>(row->at("oncpu_ns").get<uint64_t>());
  uint64_t switched_out =
      row->at("voluntary").get<uint64_t>() + row->at("involuntary").get<uint64_t>();
  // Whether the spinner was switched out in the interval (under load the kernel's fair server
  // lets ordinary tasks run on its CPU now and then): both ways its total must be exact.
  std::fprintf(stderr,
               "spinner: kscope %.3f ms, own CPU clock %.3f ms over %.3f s, %llu switch-outs\n",
               measured / 1e6, truth / 1e6, static_cast<double>(interval) / 1e9,
               static_cast<unsigned long long>(switched_out));
  EXPECT_LE(std::fabs(measured - truth), 0.02 * truth + 2e6)
      << "kscope " << measured << " ns, the thread's own CPU clock " << truth << " ns";
  // It spun: most of the interval on its CPU (SCHED_FIFO), never more than the interval.
  EXPECT_GE(truth, 0.5 * static_cast<double>(interval));
  EXPECT_LE(measured, static_cast<double>(interval) * 1.001);
}

}  // namespace
}  // namespace kscope::testing
