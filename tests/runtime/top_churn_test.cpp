// kscope top's memory does not grow with the number of processes that came and went: 2000 short
// processes (tests/progs/churnprog) run under `kscope top --batch` and `kscope top --once
// --folded` at once; their resident memory after the warm-up grows by less than stated bounds
// while the other 1500 run, and the whole-run table and profile still name every dead process's
// functions.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "runtime_env.h"
#include "subprocess.h"
#include "top_sizes.h"

namespace kscope::testing {
namespace {

const std::string kChurnprog = std::string(KSCOPE_TEST_PROGS_DIR) + "/churnprog";
const std::string kKscope = KSCOPE_BINARY;

bool wait_for_text(const std::string& path, const std::string& needle, double timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (read_file(path).find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// VmRSS of a process in KiB (0 when unreadable).
uint64_t rss_kib(int pid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  return 0;
}

class TopChurn : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("kscope-churn-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    for (int pid : {prog_, kscope_, batch_})
      if (pid > 0) {
        kill(pid, SIGKILL);
        wait_for(pid, 5);
      }
    std::filesystem::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
  int prog_ = -1, kscope_ = -1, batch_ = -1;
};

TEST_F(TopChurn, MemoryStaysBoundedAndTheProfileNamesDeadProcesses) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  constexpr int kProcesses = 2000;
  // Two kscope tops watch the same 2000 processes. The batch one (a table a second, nothing
  // kept for a whole-run profile) keeps nothing of an exited process by design. The --once --folded
  // one keeps what the whole-run table and profile need of each exited process (accounts, name,
  // symbolized stacks: each PIE process's frames have their own addresses), so its bound is per
  // process; keeping every process's mappings and symbolizer state, as kscope top did before,
  // is not needed for either (docs/RELIABILITY.md has the figures).
  // Observed on the loaded 2-vCPU VM (2026-11-30): the batch one grew by 0.2 MiB (after the
  // rebase onto dwarf-by-default; 4.0 to 6.4 MiB in runs before it, cause not established), the
  // --once one by 3.8 to 3.9 MiB. The bounds are 5.5 and 11 KiB per exited process.
  constexpr uint64_t kFlatBoundKiB = 8 * 1024;
  constexpr uint64_t kWholeRunBoundKiB = 16 * 1024;
  prog_ = spawn({kChurnprog, "procs", std::to_string(kProcesses), "2"}, path("prog.out"),
                path("prog.err"));
  ASSERT_TRUE(wait_for_text(path("prog.out"), "ready", 10)) << read_file(path("prog.err"));
  // env execs kscope (the same pid) with its container sizes written at every refresh.
  batch_ = spawn({"/usr/bin/env", "KSCOPE_TOP_SIZES=" + path("sizes.txt"), kKscope, "top",
                  "--batch", "-d", "1", "--comm", "churnprog", "-n", "5"},
                 path("batch.out"), path("batch.err"));
  // Frame pointers (churnprog has them): the native unwinder may not have loaded a 2 ms
  // process's tables before it exits, which would say "[incomplete: ...]" instead of a name.
  kscope_ = spawn(
      {kKscope, "top", "--once", "--duration", "600", "--comm", "churnprog", "--by", "stack",
       "--format", "json", "-n", "100000", "--call-graph", "fp", "--folded", path("out.folded")},
      path("top.out"), path("top.err"));
  ASSERT_TRUE(wait_for_text(path("top.err"), "measuring", 30)) << read_file(path("top.err"));
  ASSERT_TRUE(wait_for_text(path("batch.err"), "measuring", 30)) << read_file(path("batch.err"));
  kill(prog_, SIGUSR1);
  ASSERT_TRUE(wait_for_text(path("prog.out"), "done 500", 300)) << read_file(path("prog.err"));
  std::this_thread::sleep_for(std::chrono::seconds(3));  // retired and dropped (1 s period)
  uint64_t warm = rss_kib(kscope_), warm_batch = rss_kib(batch_);
  TopSizes warm_sizes = last_top_sizes(path("sizes.txt"));
  ASSERT_TRUE(wait_for_text(path("prog.out"), "end " + std::to_string(kProcesses), 900))
      << read_file(path("prog.err"));
  std::this_thread::sleep_for(std::chrono::seconds(3));
  uint64_t end = rss_kib(kscope_), end_batch = rss_kib(batch_);
  TopSizes end_sizes = last_top_sizes(path("sizes.txt"));
  // What the batch kscope holds per thread and per process (counts, so they hold under a
  // sanitizer too) does not grow with the 1500 processes that came and went since the warm-up:
  // it follows the processes alive and those ended in the last couple of refreshes (55 to 115
  // processes held at any time in a run of 2026-11-30, about 20 ending a second).
  ASSERT_FALSE(warm_sizes.empty()) << read_file(path("sizes.txt"));
  for (const char* key : {"thread_names", "thread_pid", "mapped_pids", "procmaps",
                          "symbolizer_processes", "exited", "user_cache"})
    EXPECT_LT(end_sizes.at(key), warm_sizes.at(key) + 250)
        << key << " grew from " << warm_sizes.at(key) << " to " << end_sizes.at(key);
  ASSERT_GT(warm, 0u);
  ASSERT_GT(warm_batch, 0u);
  std::printf("kscope top --batch RSS: %llu KiB after 500 processes, %llu KiB after %d\n",
              static_cast<unsigned long long>(warm_batch),
              static_cast<unsigned long long>(end_batch), kProcesses);
  std::printf("kscope top --once --folded RSS: %llu KiB after 500 processes, %llu KiB after %d\n",
              static_cast<unsigned long long>(warm), static_cast<unsigned long long>(end),
              kProcesses);
  if (kSanitizerBuild) {
    // ASan's quarantine keeps up to 256 MiB of freed blocks resident (observed: +59 MiB and
    // +39 MiB here under make check-sanitize): RSS says nothing about kscope's own memory.
    std::printf("RSS bounds not checked: sanitizer build (shadow memory and quarantine)\n");
  } else {
    EXPECT_LE(end_batch, warm_batch + kFlatBoundKiB) << "kscope top's memory grew with churn";
    EXPECT_LE(end, warm + kWholeRunBoundKiB) << "kscope top --once's memory grew with churn";
  }
  kill(batch_, SIGINT);
  EXPECT_EQ(wait_for(batch_, 120), 0) << read_file(path("batch.err"));
  batch_ = -1;

  kill(kscope_, SIGINT);
  int rc = wait_for(kscope_, 120);
  kscope_ = -1;
  ASSERT_EQ(rc, 0) << read_file(path("top.err"));
  EXPECT_EQ(wait_for(prog_, 30), 0);
  prog_ = -1;

  // Every child slept once in nanosleep() under churn_child_work() (the frame-pointer walk
  // starts at the caller of the leaf's frame, so churn_child_sleep may not be in it): the
  // table of the whole run has a stack naming churn_child_work for each of the 2000 dead
  // processes, unless the kernel side counted it lost.
  auto j = nlohmann::json::parse(read_file(path("top.out")));
  std::set<uint32_t> named;
  std::string some;
  for (const auto& t : j.at("tasks")) {
    std::string user;
    for (const auto& f : t.at("user_stack")) user += f.at("symbol").get<std::string>() + ";";
    if (user.find(";churn_child_work;main;") != std::string::npos)
      named.insert(t.at("pid").get<uint32_t>());
    else if (some.size() < 3000)
      some += user + "\n";
  }
  uint64_t lost = j.at("lost").get<uint64_t>();
  EXPECT_GE(named.size() + lost, static_cast<size_t>(kProcesses))
      << "processes whose stack was named: " << named.size() << ", lost " << lost
      << "; other stacks:\n"
      << some;
  EXPECT_LE(named.size(), static_cast<size_t>(kProcesses));
  // The whole-run profile (--folded) names them too.
  std::string folded = read_file(path("out.folded"));
  uint64_t sleeps = 0;
  std::istringstream lines(folded);
  std::string line;
  while (std::getline(lines, line))
    if (line.find(";main;churn_child_work;") != std::string::npos) ++sleeps;
  EXPECT_GT(sleeps, 0u) << folded.substr(0, 3000);
}

}  // namespace
}  // namespace kscope::testing
