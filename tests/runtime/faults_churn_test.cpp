// kscope faults -p on a process that starts and ends threads and processes all the time
// (tests/progs/churnprog soak, the soak's workload): what kscope holds per thread and per
// process (KSCOPE_FAULTS_SIZES) does not grow with the threads and processes that came and
// went, and the exited threads' faults are still in the kernel's count of the traced interval.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <string>

#include "runtime_env.h"
#include "subprocess.h"
#include "top_sizes.h"

namespace kscope::testing {
namespace {

const std::string kChurnprog = std::string(KSCOPE_TEST_PROGS_DIR) + "/churnprog";

uint64_t count(const std::string& s) {
  std::string digits;
  for (char c : s)
    if (c != ',') digits += c;
  return std::stoull(digits);
}

class FaultsChurn : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fresh_test_dir("kscope-faults-churn"); }
  void TearDown() override {
    for (int pid : {prog_, kscope_})
      if (pid > 0) {
        kill(pid, SIGKILL);
        wait_for(pid, 5);
      }
    std::filesystem::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Runs churnprog soak for `seconds` under kscope faults -p (plus `extra` options) until it
  // ends; returns churnprog's thread and process counts, and checks kscope ended normally.
  void run_churn(int seconds, const std::vector<std::string>& extra, long* threads, long* procs) {
    prog_ =
        spawn({kChurnprog, "soak", std::to_string(seconds)}, path("prog.out"), path("prog.err"));
    ASSERT_TRUE(wait_for_text(path("prog.out"), "ready", 10));
    std::vector<std::string> argv = {"/usr/bin/env", "KSCOPE_FAULTS_SIZES=" + path("sizes.txt"),
                                     KSCOPE_BINARY,  "faults",
                                     "-p",           std::to_string(prog_),
                                     "--no-plot"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    kscope_ = spawn(argv, path("faults.out"), path("faults.err"));
    ASSERT_EQ(wait_for(prog_, seconds + 60 * kSanitizerSlowdown), 0) << read_file(path("prog.err"));
    prog_ = -1;
    // kscope -p ends by itself once its target has exited.
    int rc = wait_for(kscope_, 30 * kSanitizerSlowdown);
    kscope_ = -1;
    ASSERT_EQ(rc, 0) << read_file(path("faults.err"));
    std::smatch m;
    std::string out = read_file(path("prog.out"));
    ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(soak processes (\d+) threads (\d+))")))
        << out;
    *procs = std::stol(m[1]);
    *threads = std::stol(m[2]);
  }

  std::filesystem::path dir_;
  int prog_ = -1, kscope_ = -1;
};

TEST_F(FaultsChurn, PerThreadStateStaysBoundedAndExitedThreadsAreCounted) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  long threads = 0, procs = 0;
  ASSERT_NO_FATAL_FAILURE(run_churn(12, {}, &threads, &procs));
  // Enough churn for the bound below to mean something (observed: about 20 threads a second at
  // load 40, thousands on an idle machine).
  ASSERT_GE(threads, 100) << "the workload ran too few rounds to test anything";

  // The last line, written at most about a second before the process ended: churnprog has at
  // most four threads besides its main one at any time. Before, kscope kept each exited
  // thread's exit counters (exits_seen, thread_counters) and its name (comms) to the end.
  TopSizes s = last_top_sizes(path("sizes.txt"));
  ASSERT_FALSE(s.empty()) << read_file(path("sizes.txt"));
  EXPECT_LE(s["exits_seen"], 8u);
  EXPECT_LE(s["thread_counters"], 16u);
  EXPECT_EQ(s["comms"], 0u);        // no --events: no thread names are needed
  EXPECT_EQ(s["plot_points"], 0u);  // --no-plot
  EXPECT_LE(s["processes"], 1u);    // -p without --follow-children
  // Each round's dlopen, dlclose and mappings add perf mmap records, which never say what was
  // unmapped; /proc/PID/maps is read again after 256 (ProcessMappings used to keep 4096).
  EXPECT_LE(s["mapping_records"], 1024u);
  EXPECT_GE(s["threads_folded"], static_cast<uint64_t>(threads) / 2);
  EXPECT_LE(s["threads_folded"], static_cast<uint64_t>(threads));

  // Every thread wrote 64 fresh anonymous pages (64 minor faults, in its own counters, which
  // its exit adds to the process's): the kernel's count over the traced interval holds them
  // all, and so do the faults kscope saw.
  std::string out = read_file(path("faults.out"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      out, m,
      std::regex(R"(pid \d+ \([^\n]*\): kernel ([\d,]+) \(minflt [\d,]+, majflt [\d,]+\), )"
                 R"(seen individually ([\d,]+))")))
      << out;
  uint64_t kernel = count(m[1]), seen = count(m[2]);
  EXPECT_GE(kernel, 64u * static_cast<uint64_t>(threads)) << out;
  EXPECT_GE(seen, 64u * static_cast<uint64_t>(threads)) << out;
  // And they agree: what is not seen individually is faults in flight at the start and the
  // like (0.14% in a 600 s soak), never whole threads.
  EXPECT_LE(kernel > seen ? kernel - seen : seen - kernel, kernel / 50) << out;
}

// With --follow-children every short process churnprog starts is traced: kscope keeps its
// per-process totals (the summary names each), but not an open pidfd once it has exited.
TEST_F(FaultsChurn, ExitedChildrenHoldNoDescriptor) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  long threads = 0, procs = 0;
  ASSERT_NO_FATAL_FAILURE(run_churn(8, {"--follow-children"}, &threads, &procs));
  ASSERT_GE(procs, 25) << "the workload ran too few rounds to test anything";
  TopSizes s = last_top_sizes(path("sizes.txt"));
  ASSERT_FALSE(s.empty()) << read_file(path("sizes.txt"));
  EXPECT_GE(s["processes"], static_cast<uint64_t>(procs) / 2);
  // churnprog itself and at most one child at a time are alive.
  EXPECT_LE(s["processes_open"], 4u);
  EXPECT_LE(s["exits_seen"], 8u);
}

}  // namespace
}  // namespace kscope::testing
