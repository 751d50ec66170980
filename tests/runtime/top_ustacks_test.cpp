// kscope top's map of natively walked user stacks (`ustacks`) under thread churn inside one
// living process (tests/progs/churnprog stacks): threads with 4096 distinct user stacks come and
// go one after the other while a long-lived thread sleeps in a known function. The map's entry
// count, read from the kernel beside kscope (its map found through /proc/PID/fdinfo), stays far
// below a capacity the churn's distinct stacks exceed twice over, nothing is lost, the live
// thread's stack is still named at the end and the dead threads' stacks are still whole in the
// whole-run table. Forced full (a capacity of 64), further stacks are counted as lost.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "bpf_maps.h"
#include "runtime_env.h"
#include "subprocess.h"
#include "top_sizes.h"

namespace kscope::testing {
namespace {

const std::string kChurnprog = std::string(KSCOPE_TEST_PROGS_DIR) + "/churnprog";
const std::string kKscope = KSCOPE_BINARY;

// The user stack of a row: its symbols, innermost first.
std::vector<std::string> user_symbols(const nlohmann::json& row) {
  std::vector<std::string> out;
  for (const auto& f : row.at("user_stack")) out.push_back(f.at("symbol").get<std::string>());
  return out;
}

// Levels of a churn thread's stack between ustk_leaf and ustk_thread: -1 when not one.
int churn_levels(const std::vector<std::string>& syms) {
  bool leaf = false;
  int levels = 0;
  for (const auto& s : syms) {
    if (s == "ustk_leaf") leaf = true;
    if (s == "ustk_zero" || s == "ustk_one") ++levels;
    if (s == "ustk_thread") return leaf ? levels : -1;
  }
  return -1;
}

class TopUserStacks : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fresh_test_dir("kscope-ustacks"); }
  void TearDown() override {
    for (int pid : {prog_, kscope_})
      if (pid > 0) {
        kill(pid, SIGKILL);
        wait_for(pid, 5);
      }
    if (map_fd_ >= 0) close(map_fd_);
    std::filesystem::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Starts churnprog stacks N and kscope top --once on it with a user stack map of `capacity`.
  void start(long threads, long pause_ms, uint32_t capacity) {
    prog_ = spawn({kChurnprog, "stacks", std::to_string(threads), std::to_string(pause_ms)},
                  path("prog.out"), path("prog.err"));
    ASSERT_TRUE(wait_for_text(path("prog.out"), "ready", 10)) << read_file(path("prog.err"));
    // env execs kscope: the same pid.
    kscope_ = spawn({"/usr/bin/env", "KSCOPE_TOP_SIZES=" + path("sizes.txt"), kKscope, "top",
                     "--once", "--duration", "900", "-p", std::to_string(prog_), "--call-graph",
                     "dwarf", "--max-user-stacks", std::to_string(capacity), "--by", "stack",
                     "--format", "json", "-n", "1000000"},
                    path("top.out"), path("top.err"));
    ASSERT_TRUE(wait_for_text(path("top.err"), "measuring", 60)) << read_file(path("top.err"));
    map_fd_ = map_of(kscope_, "ustacks");
    ASSERT_GE(map_fd_, 0) << "kscope top holds no map named ustacks";
  }
  // Ends kscope (SIGINT) and the program; kscope's JSON.
  nlohmann::json finish() {
    kill(kscope_, SIGINT);
    int rc = wait_for(kscope_, 120);
    kscope_ = -1;
    EXPECT_EQ(rc, 0) << read_file(path("top.err"));
    EXPECT_EQ(wait_for(prog_, 30), 0) << read_file(path("prog.err"));
    prog_ = -1;
    return nlohmann::json::parse(read_file(path("top.out")));
  }

  std::filesystem::path dir_;
  int prog_ = -1, kscope_ = -1, map_fd_ = -1;
};

TEST_F(TopUserStacks, MapStaysBoundedUnderThreadChurnAndLiveStacksStayNamed) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  // 5000 threads, 4096 distinct stacks: twice the capacity. Without reclaiming, the map holds
  // every stack a thread of the living process ever had and fills after ~2048 threads. With
  // it, it holds the live threads' stacks and those of the threads that ended in the last 3-4
  // reclaim passes (about a second apart: a dead thread's account is pruned at the second pass
  // that sees it unchanged, its stack deleted at the second pass that finds it unreferenced);
  // threads start more than 11 ms apart, so that is under ~400 stacks, with room for passes
  // delayed by load.
  constexpr long kThreads = 5000;
  constexpr uint32_t kCapacity = 2048;
  constexpr size_t kBound = kCapacity / 2;
  start(kThreads, 10, kCapacity);
  kill(prog_, SIGUSR1);
  size_t most = 0, polls = 0;
  TopSizes warm;  // what kscope held after 1500 threads
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(900);
  while (read_file(path("prog.out")).find("end ") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << read_file(path("prog.out"));
    most = std::max(most, entries(map_fd_));
    ++polls;
    if (warm.empty() && read_file(path("prog.out")).find("done 1500") != std::string::npos)
      warm = last_top_sizes(path("sizes.txt"));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  TopSizes end = last_top_sizes(path("sizes.txt"));
  std::printf("ustacks: at most %zu entries of %u over %zu polls\n", most, kCapacity, polls);
  EXPECT_LE(most, kBound) << "the user stack map grew with the threads that came and went";
  EXPECT_GT(most, 0u);
  // Per-thread and per-process state does not grow with the 3500 threads that came and went
  // after the warm-up: it follows the threads alive and those ended in the last few passes
  // (under 100 a second). --once keeps exited threads' values for the whole-run table by
  // design (retired_*), not their names or anything per process.
  ASSERT_FALSE(warm.empty()) << read_file(path("sizes.txt"));
  for (const char* key : {"accounts", "thread_names", "thread_pid", "mapped_pids", "procmaps",
                          "symbolizer_processes", "user_cache", "ustacks"})
    EXPECT_LT(end.at(key), warm.at(key) + 1000)
        << key << " grew from " << warm.at(key) << " to " << end.at(key);
  auto j = finish();

  EXPECT_EQ(j.at("drops").at("user_stacks_lost_map_full").get<uint64_t>(), 0u);
  EXPECT_EQ(j.at("drops").at("user_stack_errors").get<uint64_t>(), 0u);
  const auto& u = j.at("unwind");
  EXPECT_GT(u.at("user_stacks_reclaimed").get<uint64_t>(), static_cast<uint64_t>(kCapacity));
  EXPECT_LE(u.at("user_stacks_stored").get<uint64_t>(), kBound);

  // The live thread's stack names its function; each dead thread's stack is whole: exactly 12
  // levels between ustk_leaf and ustk_thread, read after its entry was reclaimed.
  bool anchor = false;
  std::set<uint32_t> whole, broken;
  for (const auto& row : j.at("tasks")) {
    auto syms = user_symbols(row);
    if (row.at("comm") == "ustk-anchor" &&
        std::find(syms.begin(), syms.end(), "ustk_anchor_wait") != syms.end())
      anchor = true;
    int levels = churn_levels(syms);
    if (levels == 12)
      whole.insert(row.at("tid").get<uint32_t>());
    else if (levels >= 0)
      broken.insert(row.at("tid").get<uint32_t>());
  }
  EXPECT_TRUE(anchor) << "the live thread's stack does not name ustk_anchor_wait";
  EXPECT_TRUE(broken.empty()) << broken.size() << " threads with a stack of the wrong depth";
  // Every thread slept in ustk_leaf, and the process's tables were loaded before the first
  // one started; a tenth is left for threads whose account the kernel side lost (counted).
  EXPECT_GE(whole.size(), static_cast<size_t>(kThreads * 9 / 10))
      << "threads whose whole stack was named: " << whole.size();
}

TEST_F(TopUserStacks, AFullMapCountsLostStacksAndKeepsLiveOnes) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  // 64 entries against 1000 threads with distinct stacks started as fast as they end (hundreds
  // a second): stacks find the map full between two reclaim passes.
  constexpr long kThreads = 1000;
  start(kThreads, 0, 64);
  kill(prog_, SIGUSR1);
  ASSERT_TRUE(wait_for_text(path("prog.out"), "end ", 600)) << read_file(path("prog.out"));
  size_t left = entries(map_fd_);
  EXPECT_LE(left, 64u);
  auto j = finish();
  uint64_t full = j.at("drops").at("user_stacks_lost_map_full").get<uint64_t>();
  EXPECT_GT(full, 0u) << "a 64-entry map never filled";
  EXPECT_GE(j.at("lost").get<uint64_t>(), full);
  // Not an unwinding error: the walk succeeded, the map had no room.
  EXPECT_EQ(j.at("drops").at("user_stack_errors").get<uint64_t>(), 0u);
  bool anchor = false, noted = false;
  for (const auto& row : j.at("tasks")) {
    auto syms = user_symbols(row);
    if (row.at("comm") == "ustk-anchor" &&
        std::find(syms.begin(), syms.end(), "ustk_anchor_wait") != syms.end())
      anchor = true;
    const auto& c = row.at("completeness");
    if (c.contains("reason") &&
        c.at("reason").get<std::string>().find("stack map full") != std::string::npos)
      noted = true;
  }
  EXPECT_TRUE(anchor) << "the live thread's stack was not kept";
  EXPECT_TRUE(noted) << "no row says its user stack was lost to a full map";
}

}  // namespace
}  // namespace kscope::testing
