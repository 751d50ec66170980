// kscope top folds the accounts of living threads that have been idle for a while out of the
// kernel's maps (KSCOPE_TOP_FOLD_SECONDS, 30 s by default; 1 s here), so a long run holds the
// stacks threads use now. tests/progs/foldprog's worker moves on from stack to stack (phase i at
// recursion depth i), leaving the accounts of earlier phases idle while it lives. Folding must
// change no number: every interval's on-CPU time is the worker's own CPU clock's growth over
// that interval, its switches add up to the kernel's counters exactly, and the whole-run
// profile still holds the stacks of the phases folded long before the end.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "clock_series.h"
#include "runtime_env.h"
#include "subprocess.h"
#include "tools.h"

namespace kscope::testing {
namespace {

const std::string kFoldprog = std::string(KSCOPE_TEST_PROGS_DIR) + "/foldprog";
const std::string kKscope = KSCOPE_BINARY;

class TopFold : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fresh_test_dir("kscope-top-fold"); }
  void TearDown() override {
    if (prog_pid_ > 0) {
      kill(prog_pid_, SIGKILL);
      wait_for(prog_pid_, 5);
    }
    std::filesystem::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Starts foldprog, then kscope top (with `fold_seconds` and `args`) on it; releases the worker
  // once kscope measures; waits for both. Fills series_, vol_, invol_, tid_; returns kscope's
  // stderr.
  std::string run(int phases, int phase_ms, const std::string& fold_seconds,
                  const std::vector<std::string>& args, int rest_ms = 0) {
    prog_pid_ = spawn({kFoldprog, path("series"), std::to_string(phases), std::to_string(phase_ms),
                       std::to_string(rest_ms)},
                      path("prog.out"), path("prog.err"));
    EXPECT_TRUE(wait_for_text(path("prog.out"), "ready", 30)) << read_file(path("prog.err"));
    {
      std::istringstream in(read_file(path("prog.out")));
      std::string word;
      int pid = 0;
      in >> word >> pid >> tid_;
      EXPECT_EQ(pid, prog_pid_);
    }
    std::vector<std::string> argv = {"/usr/bin/env",
                                     "KSCOPE_TOP_FOLD_SECONDS=" + fold_seconds,
                                     kKscope,
                                     "-v",
                                     "top",
                                     "-p",
                                     std::to_string(prog_pid_)};
    argv.insert(argv.end(), args.begin(), args.end());
    int k = spawn(argv, path("top.out"), path("top.err"));
    EXPECT_TRUE(wait_for_text(path("top.err"), "measuring", 60)) << read_file(path("top.err"));
    kill(prog_pid_, SIGUSR1);
    EXPECT_TRUE(wait_for_text(path("prog.out"), "done", 60)) << read_file(path("prog.err"));
    EXPECT_EQ(wait_for(k, 120), 0) << read_file(path("top.err"));
    std::ifstream in(path("series"));
    std::string first;
    while (in >> first) {
      if (first == "switches") {
        in >> vol_ >> invol_;
        break;
      }
      ClockPair p;
      p.mono = std::stoull(first);
      in >> p.cpu;
      series_.push_back(p);
    }
    return read_file(path("top.err"));
  }

  // The worker's CPU clock at t: before its series began it was blocked since before tracing
  // (its clock then is where the series starts, less the wakeup: within the tolerance), after
  // it ended it is blocked for good.
  double truth_at(uint64_t t) const {
    if (t <= series_.front().mono) return static_cast<double>(series_.front().cpu);
    if (t >= series_.back().mono) return static_cast<double>(series_.back().cpu);
    return *cpu_at(series_, t);
  }

  // "accounts folded (idle N s): M" from kscope's -v summary.
  static uint64_t folds(const std::string& err) {
    size_t at = err.find("accounts folded (idle ");
    EXPECT_NE(at, std::string::npos) << err;
    if (at == std::string::npos) return 0;
    size_t colon = err.find("): ", at);
    return std::stoull(err.substr(colon + 3));
  }
  // "..., N threads' newest left alone" from the same line.
  static uint64_t newest_kept(const std::string& err) {
    size_t at = err.find(" threads' newest left alone");
    EXPECT_NE(at, std::string::npos) << err;
    if (at == std::string::npos) return 0;
    size_t b = err.find_last_not_of("0123456789", at - 1) + 1;
    return std::stoull(err.substr(b, at - b));
  }

  std::filesystem::path dir_;
  int prog_pid_ = -1;
  uint32_t tid_ = 0;
  std::vector<ClockPair> series_;
  uint64_t vol_ = 0, invol_ = 0;
};

// Live tables (batch, every 0.25 s), folding after 1 s idle: each interval exact.
TEST_F(TopFold, IntervalsStayExactWhileIdleAccountsAreFolded) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  std::string err = run(
      8, 500, "1",
      {"--batch", "-d", "0.25", "--duration", "6", "--by", "tid", "--format", "json", "-n", "50"});
  ASSERT_GT(series_.size(), 1000u) << read_file(path("prog.err"));
  // Phases 1..6 ended more than a second before kscope did: their accounts were folded.
  uint64_t folded = folds(err);
  EXPECT_GE(folded, 6u) << err;
  std::istringstream tables(read_file(path("top.out")));
  std::string line;
  int intervals = 0;
  double all_measured = 0;
  uint64_t vol = 0, invol = 0;
  while (std::getline(tables, line)) {
    if (line.empty()) continue;
    SCOPED_TRACE("interval " + std::to_string(intervals));
    auto j = nlohmann::json::parse(line);
    ++intervals;
    uint64_t end = j.at("end_monotonic_ns").get<uint64_t>();
    uint64_t interval = j.at("interval_ns").get<uint64_t>();
    double truth = truth_at(end) - truth_at(end - interval);
    double measured = 0;
    for (const auto& t : j.at("tasks")) {
      if (t.at("tid").get<uint32_t>() != tid_) continue;
      measured += static_cast<double>(t.at("oncpu_ns").get<uint64_t>());
      vol += t.at("voluntary").get<uint64_t>();
      invol += t.at("involuntary").get<uint64_t>();
    }
    EXPECT_LE(std::fabs(measured - truth), 0.02 * truth + 2e6)
        << "kscope " << measured << " ns, the worker's own CPU clock " << truth << " ns";
    all_measured += measured;
  }
  EXPECT_GE(intervals, 16);
  double all_truth = static_cast<double>(series_.back().cpu - series_.front().cpu);
  EXPECT_GT(all_truth, 0.5e9);  // it spun about 2/3 of 4 s, less under load
  EXPECT_LE(std::fabs(all_measured - all_truth), 0.02 * all_truth + 4e6);
  // Every switch-out in some interval, none twice: the kernel's counters exactly.
  EXPECT_EQ(vol, vol_);
  EXPECT_EQ(invol, invol_);
}

// The whole-run profile (--once, --folded) holds the folded accounts: every phase's stack, with
// the worker's on-CPU time adding up to its clock; so does the whole-run table.
TEST_F(TopFold, WholeRunProfileKeepsTheFoldedStacks) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  const int phases = 6;
  std::string folded = path("out.folded");
  std::string err =
      run(phases, 500, "1",
          {"--once", "--duration", "5", "--by", "tid", "--format", "json", "--folded", folded});
  ASSERT_GT(series_.size(), 1000u) << read_file(path("prog.err"));
  EXPECT_GE(folds(err), 4u) << err;
  auto j = nlohmann::json::parse(read_file(path("top.out")));
  double all_truth = static_cast<double>(series_.back().cpu - series_.front().cpu);
  uint64_t oncpu = 0, vol = 0, invol = 0;
  for (const auto& t : j.at("tasks")) {
    if (t.at("tid").get<uint32_t>() != tid_) continue;
    oncpu += t.at("oncpu_ns").get<uint64_t>();
    vol += t.at("voluntary").get<uint64_t>();
    invol += t.at("involuntary").get<uint64_t>();
  }
  EXPECT_LE(std::fabs(static_cast<double>(oncpu) - all_truth), 0.02 * all_truth + 4e6);
  EXPECT_EQ(vol, vol_);
  EXPECT_EQ(invol, invol_);

  // Folded stacks: the worker's lines, by the recursion depth of their phase.
  std::vector<uint64_t> by_depth(phases + 1);
  uint64_t sum = 0;
  std::istringstream lines(read_file(folded));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("phaser;", 0) != 0) continue;
    uint64_t value = std::stoull(line.substr(line.rfind(' ') + 1));
    sum += value;
    size_t depth = 0;
    for (size_t at = line.find("fold_descend"); at != std::string::npos;
         at = line.find("fold_descend", at + 1))
      ++depth;
    if (depth >= 1 && depth <= static_cast<size_t>(phases)) by_depth[depth] += value;
  }
  for (int d = 1; d <= phases; ++d)
    EXPECT_GT(by_depth[d], 0u) << "no on-CPU time at depth " << d << " (phase " << d << ")\n"
                               << read_file(folded).substr(0, 4000);
  EXPECT_LE(std::fabs(static_cast<double>(sum) - all_truth), 0.02 * all_truth + 4e6);
}

// A thread blocked for 3 s (fold_rest) has an idle newest account: the one its off-CPU time and
// run-queue wait will go to when it wakes. It is left alone (-v counts it), and when the worker
// wakes, the interval shows those 3 s off-CPU at fold_rest's stack, named.
TEST_F(TopFold, AThreadsNewestAccountIsNeverFolded) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  std::string err = run(
      2, 300, "1",
      {"--batch", "-d", "0.5", "--duration", "6", "--by", "stack", "--format", "json", "-n", "200"},
      3000);
  EXPECT_GE(newest_kept(err), 1u) << err;
  std::istringstream tables(read_file(path("top.out")));
  std::string line;
  bool found = false;
  while (std::getline(tables, line) && !found) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    for (const auto& t : j.at("tasks")) {
      if (t.at("tid").get<uint32_t>() != tid_ || t.at("offcpu_ns").get<uint64_t>() < 2'900'000'000)
        continue;
      std::string names;
      for (const auto& f : t.at("user_stack")) names += f.value("symbol", "?") + " ";
      EXPECT_NE(names.find("fold_rest"), std::string::npos) << names;
      found = true;
    }
  }
  EXPECT_TRUE(found) << "no row with the worker's 3 s off-CPU\n" << read_file(path("top.out"));
}

// KSCOPE_TOP_FOLD_SECONDS=0: nothing is folded (and a bad value is refused).
TEST_F(TopFold, ZeroNeverFoldsAndABadValueIsRefused) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  std::string err = run(4, 400, "0", {"--batch", "-d", "0.25", "--duration", "3"});
  EXPECT_EQ(folds(err), 0u) << err;
  auto bad = ::kscope::testing::run({"/usr/bin/env", "KSCOPE_TOP_FOLD_SECONDS=soon", kKscope, "top",
                                     "--once", "--duration", "1"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("KSCOPE_TOP_FOLD_SECONDS=soon"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace kscope::testing
