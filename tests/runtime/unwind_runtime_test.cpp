// The native (.eh_frame) unwinder of `kscope top --call-graph dwarf` against ground truth:
// tests/progs/unwind_chain, built -O2 -fomit-frame-pointer, runs known call chains; the stacks
// kscope shows must be those chains whole and in order, every frame in an executable mapping of
// the process, and for a process stopped in a known place the same PCs as elfutils' eu-stack.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "exec_mappings.h"
#include "runtime_env.h"
#include "subprocess.h"
#include "tools.h"

namespace kscope::testing {
namespace {

const std::string kKscope = KSCOPE_BINARY;
std::string prog(const std::string& name) {
  return std::string(KSCOPE_TEST_PROGS_DIR) + "/" + name;
}

class UnwindRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kscope-unwind-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      wait_for(pid_, 5);
    }
    std::filesystem::remove_all(dir_);
  }

  // Starts a test program and waits for its "ready PID" line.
  int start(const std::vector<std::string>& argv) {
    // A file of its own per program: a second start() must not see the first one's "ready"
    // (it would read the mappings before the new program has exec'd).
    std::string out = (dir_ / ("prog" + std::to_string(++starts_) + ".out")).string();
    std::filesystem::remove(out);
    pid_ = spawn(argv, out);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (read_file(out).find("ready") != std::string::npos) return pid_;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "test program did not start";
    return -1;
  }

  // kscope top --once --format json on the running program; its tasks' stacks. `attached`
  // runs once kscope measures (loading and verifying takes seconds on a loaded machine).
  nlohmann::json top_json(int pid, double seconds, const std::vector<std::string>& extra = {},
                          const std::function<void()>& attached = {}) {
    std::vector<std::string> argv = {kKscope,      "-v",
                                     "top",        "--once",
                                     "--duration", std::to_string(seconds),
                                     "--format",   "json",
                                     "-p",         std::to_string(pid),
                                     "-n",         "1000"};
    // No --call-graph unless the test asks for a walker: the native unwinder is the default.
    argv.insert(argv.end(), extra.begin(), extra.end());
    std::string out = (dir_ / "top.out").string(), err = (dir_ / "top.err").string();
    std::filesystem::remove(out);  // a previous run's "measuring" must not count
    std::filesystem::remove(err);
    int kpid = spawn(argv, out, err);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (read_file(err).find("measuring") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (attached) attached();
    int rc = wait_for(kpid, seconds + 120);
    last_err_ = read_file(err);
    EXPECT_EQ(rc, 0) << last_err_;
    std::string text = read_file(out);
    try {
      return nlohmann::json::parse(text);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not JSON: " << text << "\n" << last_err_;
      return {};
    }
  }

  // Releases a `stop` program once kscope measures and waits until it has stopped itself.
  std::function<void()> release_and_wait_stopped(int pid) {
    return [pid] {
      kill(pid, SIGUSR1);
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (std::chrono::steady_clock::now() < deadline) {
        std::string status = read_file("/proc/" + std::to_string(pid) + "/stat");
        auto paren = status.rfind(')');
        if (paren != std::string::npos && paren + 2 < status.size() && status[paren + 2] == 'T')
          return;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ADD_FAILURE() << "the test program did not stop";
    };
  }

  std::filesystem::path dir_;
  int pid_ = -1;
  int starts_ = 0;
  std::string last_err_;
};

// The function of each frame. Functions inlined at a frame's address come first and share its
// address (DWARF of libc6-dbg); the frame's own function is the last of such a group.
std::vector<std::string> symbols(const nlohmann::json& stack) {
  std::vector<std::string> out;
  for (size_t i = 0; i < stack.size(); ++i) {
    if (i + 1 < stack.size() && stack[i].contains("addr") && stack[i + 1].contains("addr") &&
        stack[i]["addr"] == stack[i + 1]["addr"])
      continue;
    out.push_back(stack[i].value("symbol", ""));
  }
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " <- ") + x;
  return s;
}

// The task row with the most on-CPU time whose user stack contains `needle`. Switch-outs before
// kscope loaded the process's tables have one-frame stacks that say so: not those.
const nlohmann::json* row_with(const nlohmann::json& j, const std::string& needle) {
  const nlohmann::json* best = nullptr;
  if (!j.contains("tasks")) return nullptr;
  for (const auto& t : j["tasks"]) {
    auto syms = symbols(t["user_stack"]);
    if (std::find(syms.begin(), syms.end(), needle) == syms.end()) continue;
    if (syms.back() == "[incomplete: process tables not loaded yet]") continue;
    if (!best || t["oncpu_ns"].get<uint64_t>() > (*best)["oncpu_ns"].get<uint64_t>()) best = &t;
  }
  return best;
}

// Every frame (not the marker) lies in an executable mapping of the process.
void expect_in_exec_mappings(const nlohmann::json& stack, const std::vector<ExecRange>& maps) {
  for (const auto& f : stack) {
    if (f.value("marker", false)) continue;
    uint64_t addr = std::stoull(f["addr"].get<std::string>(), nullptr, 16);
    bool inside = false;
    for (const auto& m : maps) inside = inside || (addr >= m.start && addr < m.end);
    EXPECT_TRUE(inside) << std::hex << addr << " (" << f["symbol"]
                        << ") is in no executable mapping";
  }
}

const std::vector<std::string> kChain = {"chain_10", "chain_9", "chain_8", "chain_7",
                                         "chain_6",  "chain_5", "chain_4", "chain_3",
                                         "chain_2",  "chain_1", "main"};
// glibc's start: main's callers, down to the outermost frame (_start: return address undefined).
const std::vector<std::string> kStart = {"__libc_start_call_main", "__libc_start_main_impl",
                                         "_start"};

// Checks that `syms` is exactly `expected`, allowing glibc's versioned alias of
// __libc_start_main (the symbolizer may pick either name for the same address).
void expect_chain(const std::vector<std::string>& syms, const std::vector<std::string>& expected) {
  ASSERT_EQ(syms.size(), expected.size()) << join(syms);
  for (size_t i = 0; i < syms.size(); ++i) {
    if (expected[i] == "__libc_start_main_impl" && syms[i].rfind("__libc_start_main", 0) == 0)
      continue;
    EXPECT_EQ(syms[i], expected[i]) << "frame " << i << ": " << join(syms);
  }
}

TEST_F(UnwindRuntime, DeepChainIsWholeInPieAndNonPie) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  for (const char* name : {"unwind_chain", "unwind_chain_nopie"}) {
    SCOPED_TRACE(name);
    int pid = start({prog(name), "spin", "40"});
    ASSERT_GT(pid, 0);
    auto maps = exec_mappings(pid);
    auto j = top_json(pid, 2.5);
    const nlohmann::json* row = row_with(j, "leaf_spin");
    ASSERT_NE(row, nullptr) << j.dump(1) << last_err_;
    // The spinning leaf is preempted at a user PC in leaf_spin or in what it calls (the vDSO's
    // clock_gettime): the chain below it is the same.
    std::vector<std::string> syms = symbols((*row)["user_stack"]);
    auto at = std::find(syms.begin(), syms.end(), "leaf_spin");
    std::vector<std::string> from_leaf(at, syms.end());
    std::vector<std::string> expected = {"leaf_spin", "leaf"};
    expected.insert(expected.end(), kChain.begin(), kChain.end());
    expected.insert(expected.end(), kStart.begin(), kStart.end());
    expect_chain(from_leaf, expected);
    expect_in_exec_mappings((*row)["user_stack"], maps);
    ASSERT_TRUE(j.contains("unwind")) << j.dump(1);
    EXPECT_GT(j["unwind"]["walks_since_start"].get<uint64_t>(), 0u);
    kill(pid_, SIGKILL);
    wait_for(pid_, 5);
    pid_ = -1;
  }
}

// Frames above the leaf in libc (nanosleep -> clock_nanosleep's syscall) unwind through libc's
// own tables: the thread is blocked in the kernel with its user PC inside libc.
TEST_F(UnwindRuntime, SleepingLeafUnwindsThroughLibc) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int pid = start({prog("unwind_chain"), "sleep", "40"});
  ASSERT_GT(pid, 0);
  auto maps = exec_mappings(pid);
  auto j = top_json(pid, 2.5);
  const nlohmann::json* row = row_with(j, "leaf_sleep");
  ASSERT_NE(row, nullptr) << j.dump(1) << last_err_;
  std::vector<std::string> syms = symbols((*row)["user_stack"]);
  auto at = std::find(syms.begin(), syms.end(), "leaf_sleep");
  ASSERT_NE(at, syms.begin()) << "libc's frames are missing: " << join(syms);
  // Above leaf_sleep: libc's nanosleep wrappers (clock_nanosleep, nanosleep).
  for (auto it = syms.begin(); it != at; ++it)
    EXPECT_NE(it->find("nanosleep"), std::string::npos) << join(syms);
  std::vector<std::string> expected = {"leaf_sleep", "leaf"};
  expected.insert(expected.end(), kChain.begin(), kChain.end());
  expected.insert(expected.end(), kStart.begin(), kStart.end());
  expect_chain(std::vector<std::string>(at, syms.end()), expected);
  expect_in_exec_mappings((*row)["user_stack"], maps);
}

// The stripped binary has no symbols but keeps .eh_frame: the same stack, by module offsets.
TEST_F(UnwindRuntime, StrippedBinaryUnwindsLikeTheOriginal) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto offsets_of = [&](const std::string& name) {
    int pid = start({prog(name), "stop"});
    EXPECT_GT(pid, 0);
    // 3 s: the program must reach its stop inside the window even on a loaded machine.
    auto j = top_json(pid, 3, {}, release_and_wait_stopped(pid));
    std::vector<std::pair<std::string, uint64_t>> best;
    // The account of the stop: the stack with the most frames in the program itself.
    for (const auto& t : j["tasks"]) {
      std::vector<std::pair<std::string, uint64_t>> frames;
      std::string last_addr;
      for (const auto& f : t["user_stack"]) {
        if (f.value("marker", false)) {
          frames.emplace_back("marker", 0);
          continue;
        }
        uint64_t addr = std::stoull(f["addr"].get<std::string>(), nullptr, 16);
        if (f["addr"].get<std::string>() == last_addr) continue;  // an inlined function's frame
        last_addr = f["addr"].get<std::string>();
        // Module-relative: the same code at another base.
        uint64_t base = 0;
        for (const auto& m : exec_mappings(pid))
          if (addr >= m.start && addr < m.end) base = m.start;
        frames.emplace_back(f.value("module", ""), addr - base);
      }
      auto in_program = [](const std::vector<std::pair<std::string, uint64_t>>& fs) {
        return std::count_if(fs.begin(), fs.end(),
                             [](const auto& f) { return f.first.rfind("unwind_chain", 0) == 0; });
      };
      if (std::pair(in_program(frames), frames.size()) > std::pair(in_program(best), best.size()))
        best = frames;
    }
    kill(pid_, SIGKILL);
    wait_for(pid_, 5);
    pid_ = -1;
    return best;
  };
  auto full = offsets_of("unwind_chain");
  std::string full_err = last_err_;
  auto stripped = offsets_of("unwind_chain_stripped");
  auto show = [](const std::vector<std::pair<std::string, uint64_t>>& frames) {
    std::ostringstream o;
    for (const auto& [module, offset] : frames)
      o << "\n  " << module << " +0x" << std::hex << offset;
    return o.str();
  };
  std::string both = "\nwith symbols:" + show(full) + "\nstripped:" + show(stripped) +
                     "\nkscope's stderr (with symbols):\n" + full_err + "\n(stripped):\n" +
                     last_err_;
  ASSERT_GE(full.size(), 17u) << both;
  // From the program's first (innermost) frame outward: the stripped binary's frames and what
  // follows them must be the same. The libc frames above leaf_stop are where each run happened to
  // be switched out on its way to the stop (one run was in another libc function): they are the
  // same libc in both runs and say nothing about stripping, so they need only be there.
  auto program_part = [](const std::vector<std::pair<std::string, uint64_t>>& frames) {
    size_t first = 0;
    while (first < frames.size() && frames[first].first.rfind("unwind_chain", 0) != 0) ++first;
    return first;
  };
  size_t full_first = program_part(full);
  size_t stripped_first = program_part(stripped);
  ASSERT_GE(full_first, 1u) << "no libc frame above the program's" << both;
  ASSERT_GE(stripped_first, 1u) << "no libc frame above the program's" << both;
  ASSERT_EQ(full.size() - full_first, stripped.size() - stripped_first) << both;
  ASSERT_GE(full.size() - full_first, 15u) << both;  // leaf_stop, chain_10..1, main, libc, _start
  for (size_t i = 0; i < full.size() - full_first; ++i)
    EXPECT_EQ(full[full_first + i].second, stripped[stripped_first + i].second) << i << both;
}

TEST_F(UnwindRuntime, QsortCallbackCrossesLibc) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int pid = start({prog("unwind_chain"), "qsort", "40"});
  ASSERT_GT(pid, 0);
  auto maps = exec_mappings(pid);
  auto j = top_json(pid, 2.5);
  const nlohmann::json* row = row_with(j, "compare_spin");
  ASSERT_NE(row, nullptr) << j.dump(1);
  std::vector<std::string> syms = symbols((*row)["user_stack"]);
  auto cmp = std::find(syms.begin(), syms.end(), "compare_spin");
  auto driver = std::find(syms.begin(), syms.end(), "qsort_driver");
  ASSERT_NE(driver, syms.end()) << join(syms);
  ASSERT_LT(cmp + 1, driver) << "no libc frames between the callback and its caller: "
                             << join(syms);
  // Between them only libc's sort (msort_with_tmp, qsort_r, ...).
  for (auto it = cmp + 1; it != driver; ++it)
    EXPECT_TRUE(it->find("sort") != std::string::npos) << *it << " in " << join(syms);
  std::vector<std::string> expected = {"qsort_driver", "main"};
  expected.insert(expected.end(), kStart.begin(), kStart.end());
  expect_chain(std::vector<std::string>(driver, syms.end()), expected);
  expect_in_exec_mappings((*row)["user_stack"], maps);
}

TEST_F(UnwindRuntime, RecursionDeeperThan127IsTruncatedWithItsReason) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int pid = start({prog("unwind_chain"), "recurse", "40"});
  ASSERT_GT(pid, 0);
  auto j = top_json(pid, 2.5);
  const nlohmann::json* row = row_with(j, "leaf_spin");
  ASSERT_NE(row, nullptr) << j.dump(1);
  const auto& stack = (*row)["user_stack"];
  std::vector<std::string> syms = symbols(stack);
  auto at = std::find(syms.begin(), syms.end(), "leaf_spin");
  size_t leaf = static_cast<size_t>(at - syms.begin());
  // 127 frames, then the marker; after the leaf only recurse frames (200 of them exist).
  ASSERT_EQ(stack.size(), 128u) << join(syms);
  EXPECT_TRUE(stack.back().value("marker", false));
  EXPECT_EQ(stack.back()["symbol"], "[incomplete: depth limit]");
  for (size_t i = leaf + 1; i + 1 < syms.size(); ++i) EXPECT_EQ(syms[i], "recurse") << i;
}

// A process stopped in a known place, unwound by kscope (at its switch-out into the stop) and
// by elfutils (eu-stack, ptrace + libdw's CFI): the same PCs, frame by frame.
TEST_F(UnwindRuntime, SamePcsAsEuStack) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  KSCOPE_REQUIRE_TOOL_OR_SKIP(eu_stack, "eu-stack", "elfutils");
  int pid = start({prog("unwind_chain"), "stop"});
  ASSERT_GT(pid, 0);
  auto j = top_json(pid, 1.5, {}, release_and_wait_stopped(pid));
  const nlohmann::json* row = row_with(j, "leaf_stop");
  ASSERT_NE(row, nullptr) << j.dump(1);
  std::vector<uint64_t> ours;
  for (const auto& f : (*row)["user_stack"]) {
    ASSERT_FALSE(f.value("marker", false)) << (*row)["user_stack"].dump();
    uint64_t addr = std::stoull(f["addr"].get<std::string>(), nullptr, 16);
    if (!ours.empty() && ours.back() == addr) continue;  // an inlined function's frame
    ours.push_back(addr);
  }
  auto r = run({eu_stack, "-p", std::to_string(pid)}, 60);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<uint64_t> theirs;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    unsigned idx = 0;
    unsigned long long pc = 0;
    if (std::sscanf(line.c_str(), "#%u 0x%llx", &idx, &pc) == 2) theirs.push_back(pc);
  }
  ASSERT_GE(theirs.size(), 17u) << r.out;
  ASSERT_EQ(ours.size(), theirs.size()) << r.out << "\n" << (*row)["user_stack"].dump();
  for (size_t i = 0; i < ours.size(); ++i)
    EXPECT_EQ(ours[i], theirs[i]) << "frame " << i << "\n" << r.out;
}

// A signal handler interrupting a known function: the stack goes on through the signal frame
// (__restore_rt, glibc's trampoline in libc) into the interrupted chain, whole.
TEST_F(UnwindRuntime, SignalHandlerFrameContinuesIntoTheInterruptedChain) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int pid = start({prog("unwind_chain"), "signal", "40"});
  ASSERT_GT(pid, 0);
  auto maps = exec_mappings(pid);
  auto j = top_json(pid, 2.5);
  const nlohmann::json* row = row_with(j, "sig_spin");
  ASSERT_NE(row, nullptr) << j.dump(1) << last_err_;
  const auto& stack = (*row)["user_stack"];
  std::vector<std::string> syms = symbols(stack);
  auto at = std::find(syms.begin(), syms.end(), "sig_spin");
  ASSERT_LT(at + 3, syms.end()) << join(syms);
  EXPECT_EQ(*(at + 1), "on_alarm") << join(syms);
  // The trampoline: one frame in libc (its name needs libc's symbols).
  size_t tramp = static_cast<size_t>(at - syms.begin()) + 2;
  size_t frame = 0;
  for (size_t i = 0, k = 0; i < stack.size(); ++i) {
    if (i + 1 < stack.size() && stack[i]["addr"] == stack[i + 1]["addr"]) continue;
    if (k++ == tramp) frame = i;
  }
  EXPECT_NE(stack[frame].value("module", "").find("libc.so"), std::string::npos)
      << stack[frame].dump();
  if (stack[frame].value("symbol", "").find("restore_rt") == std::string::npos)
    std::fprintf(stderr, "note: the trampoline frame is named %s\n",
                 stack[frame].value("symbol", "").c_str());
  std::vector<std::string> expected = {"leaf_flag_spin", "leaf"};
  expected.insert(expected.end(), kChain.begin(), kChain.end());
  expected.insert(expected.end(), kStart.begin(), kStart.end());
  expect_chain(std::vector<std::string>(at + 3, syms.end()), expected);
  expect_in_exec_mappings(stack, maps);
}

// A second thread: its chain ends in libc's thread start (start_thread <- clone3, whose return
// address is undefined: the outermost frame), complete.
TEST_F(UnwindRuntime, SecondThreadIsWholeToItsThreadStart) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int pid = start({prog("unwind_chain"), "thread", "40"});
  ASSERT_GT(pid, 0);
  auto maps = exec_mappings(pid);
  auto j = top_json(pid, 2.5);
  const nlohmann::json* row = row_with(j, "leaf_spin");
  ASSERT_NE(row, nullptr) << j.dump(1) << last_err_;
  EXPECT_NE((*row)["tid"], (*row)["pid"]);  // not the main thread
  std::vector<std::string> syms = symbols((*row)["user_stack"]);
  auto at = std::find(syms.begin(), syms.end(), "leaf_spin");
  std::vector<std::string> expected = {"leaf_spin", "leaf"};
  expected.insert(expected.end(), kChain.begin(), kChain.end() - 1);  // no main
  expected.insert(expected.end(), {"thread_main", "start_thread", "clone3"});
  expect_chain(std::vector<std::string>(at, syms.end()), expected);
  expect_in_exec_mappings((*row)["user_stack"], maps);
}

// A library dlopen()ed after kscope started: its table comes from the mmap record.
TEST_F(UnwindRuntime, LibraryDlopenedAfterStartIsUnwound) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int pid = start({prog("unwind_chain"), "dlopen", "40", prog("libunwind_dl.so")});
  ASSERT_GT(pid, 0);
  for (const auto& m : exec_mappings(pid))
    ASSERT_EQ(m.path.find("unwind_dl"), std::string::npos) << "loaded before kscope started";
  std::vector<ExecRange> maps;
  auto j = top_json(pid, 3, {}, [&] {
    kill(pid, SIGUSR1);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      maps = exec_mappings(pid);
      for (const auto& m : maps)
        if (m.path.find("libunwind_dl.so") != std::string::npos) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "the library was not loaded";
  });
  const nlohmann::json* row = row_with(j, "dl_leaf");
  ASSERT_NE(row, nullptr) << j.dump(1) << last_err_;
  std::vector<std::string> syms = symbols((*row)["user_stack"]);
  auto at = std::find(syms.begin(), syms.end(), "dl_leaf");
  std::vector<std::string> expected = {"dl_leaf", "dl_middle", "dl_entry", "dlopen_driver", "main"};
  expected.insert(expected.end(), kStart.begin(), kStart.end());
  expect_chain(std::vector<std::string>(at, syms.end()), expected);
  expect_in_exec_mappings((*row)["user_stack"], maps);
}

// A binary without .eh_frame whose .debug_frame is in a separate debug file, found by build-id
// under the debug root (KSCOPE_DEBUG_DIR): the chain is whole down to main and libc's start;
// _start (crt1.o's, whose CFI went with .eh_frame) ends it, complete or without a row.
TEST_F(UnwindRuntime, SeparateDebugFrameGivesTheWholeChain) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto src_id = [&]() {
    auto r = run({"readelf", "-n", prog("unwind_chain_split")}, 30);
    auto p = r.out.find("Build ID: ");
    return p == std::string::npos ? std::string() : r.out.substr(p + 10, 40);
  }();
  ASSERT_EQ(src_id.size(), 40u);
  auto root = dir_ / "debug";
  std::filesystem::create_directories(root / ".build-id" / src_id.substr(0, 2));
  std::filesystem::copy_file(
      prog("unwind_chain_split.debug"),
      root / ".build-id" / src_id.substr(0, 2) / (src_id.substr(2) + ".debug"));
  int pid = start({prog("unwind_chain_split"), "spin", "40"});
  ASSERT_GT(pid, 0);
  auto maps = exec_mappings(pid);
  // The symbolizer names the frames from the same debug file (and libc from its own).
  ::setenv("KSCOPE_DEBUG_DIR", (root.string() + ":/usr/lib/debug").c_str(), 1);
  auto j = top_json(pid, 2.5);
  ::unsetenv("KSCOPE_DEBUG_DIR");
  const nlohmann::json* row = row_with(j, "leaf_spin");
  ASSERT_NE(row, nullptr) << j.dump(1) << last_err_;
  const auto& stack = (*row)["user_stack"];
  std::vector<std::string> syms = symbols(stack);
  auto at = std::find(syms.begin(), syms.end(), "leaf_spin");
  std::vector<std::string> got(at, syms.end());
  if (!got.empty() && got.back().rfind("[incomplete: ", 0) == 0) {
    EXPECT_EQ(got.back(), "[incomplete: no unwind row for pc]") << join(syms);
    got.pop_back();
  }
  std::vector<std::string> expected = {"leaf_spin", "leaf"};
  expected.insert(expected.end(), kChain.begin(), kChain.end());
  expected.insert(expected.end(), kStart.begin(), kStart.end());
  expect_chain(got, expected);
  expect_in_exec_mappings(stack, maps);
  ASSERT_TRUE(j.contains("unwind"));
  EXPECT_GE(j["unwind"]["separate_debug_files"].get<uint64_t>(), 1u) << j["unwind"].dump();
  EXPECT_GE(j["unwind"]["files_from_debug_frame"].get<uint64_t>(), 1u) << j["unwind"].dump();
}

// A C++ function's name without its scope and parameters: gcc's DWARF names an inlined
// function by its DW_AT_name ("spin"), clang's by its linkage name, demangled
// ("(anonymous namespace)::Leaf::spin(unsigned long)").
std::string base_name(std::string s) {
  if (!s.empty() && s.back() == ')') {
    int depth = 0;
    for (size_t i = s.size(); i-- > 0;) {
      depth += s[i] == ')' ? 1 : s[i] == '(' ? -1 : 0;
      if (depth == 0) {
        s.resize(i);
        break;
      }
    }
  }
  auto colon = s.rfind("::");
  return colon == std::string::npos ? s : s.substr(colon + 2);
}

// C++ with inlined frames (tests/progs/unwind_cxx.cpp, -O2 -fomit-frame-pointer -g): the real
// frames Outer::run <- main <- libc's start, complete, and the two functions inlined into
// Outer::run named from DWARF at its address, innermost first.
TEST_F(UnwindRuntime, CxxInlinedFramesAreNamedOnTheirRealFrame) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int pid = start({prog("unwind_cxx"), "40"});
  ASSERT_GT(pid, 0);
  auto maps = exec_mappings(pid);
  auto j = top_json(pid, 2.5);
  const nlohmann::json* best = nullptr;
  ASSERT_TRUE(j.contains("tasks")) << j.dump(1) << last_err_;
  for (const auto& t : j["tasks"]) {
    const auto& st = t["user_stack"];
    if (st.empty() || base_name(st[0].value("symbol", "")) != "spin") continue;
    if (!best || t["oncpu_ns"].get<uint64_t>() > (*best)["oncpu_ns"].get<uint64_t>()) best = &t;
  }
  ASSERT_NE(best, nullptr) << j.dump(1) << last_err_;
  const auto& stack = (*best)["user_stack"];
  std::vector<std::string> raw;
  for (const auto& f : stack) raw.push_back(f.value("symbol", ""));
  ASSERT_GE(stack.size(), 7u) << join(raw);
  EXPECT_EQ(base_name(raw[1]), "step") << join(raw);
  EXPECT_NE(raw[2].find("Outer::run"), std::string::npos) << join(raw);
  EXPECT_EQ(stack[0]["addr"], stack[1]["addr"]);  // inlined: the real frame's address
  EXPECT_EQ(stack[1]["addr"], stack[2]["addr"]);
  std::vector<std::string> real = symbols(stack);
  std::vector<std::string> expected = {real[0], "main"};
  expected.insert(expected.end(), kStart.begin(), kStart.end());
  expect_chain(real, expected);
  expect_in_exec_mappings(stack, maps);
}

// perf's own DWARF unwinding (`perf record --call-graph dwarf`: a copy of 8 KiB of user stack
// per sample, unwound afterwards by libdw/libunwind) of the same spinning chain, recorded at the
// same time as kscope top samples it: compared by function chain from leaf_spin to main. A perf
// sample whose chain differs from kscope's is a failure. The chain uses far less than the 8 KiB
// perf copies, so its copy never cuts it; perf's unwinder may still stop early at some PCs: such
// samples (a proper prefix of the chain) may be at most 10% of perf's leaf_spin samples.
TEST_F(UnwindRuntime, TopAgreesWithPerfDwarfCallGraphsOnTheSameRun) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  KSCOPE_REQUIRE_TOOL_OR_SKIP(perf, "perf", "linux-perf");
  int pid = start({prog("unwind_chain"), "spin", "60"});
  ASSERT_GT(pid, 0);
  std::string data = (dir_ / "perf.data").string(), perr = (dir_ / "perf.err").string();
  int perf_pid = -1;
  auto j = top_json(pid, 6, {}, [&] {
    perf_pid = spawn({perf, "record", "-q", "-F", "199", "--call-graph", "dwarf", "-p",
                      std::to_string(pid), "-o", data, "--", "sleep", "4"},
                     (dir_ / "perf.out").string(), perr);
  });
  ASSERT_GT(perf_pid, 0);
  ASSERT_EQ(wait_for(perf_pid, 120), 0) << read_file(perr);
  const nlohmann::json* row = row_with(j, "leaf_spin");
  ASSERT_NE(row, nullptr) << j.dump(1) << last_err_;
  std::vector<std::string> syms = symbols((*row)["user_stack"]);
  auto leaf = std::find(syms.begin(), syms.end(), "leaf_spin");
  auto main_at = std::find(leaf, syms.end(), "main");
  ASSERT_NE(main_at, syms.end()) << join(syms);
  const std::vector<std::string> ours(leaf, main_at + 1);
  std::vector<std::string> expected = {"leaf_spin", "leaf"};
  expected.insert(expected.end(), kChain.begin(), kChain.end());
  ASSERT_EQ(ours, expected) << join(syms);

  auto script = run({perf, "script", "-i", data, "-F", "ip,sym"}, 180);
  ASSERT_EQ(script.exit_code, 0) << script.err;
  std::istringstream in(script.out);
  std::string line;
  std::vector<std::string> sample;
  int samples = 0, with_leaf = 0, agree = 0, cut = 0;
  auto finish = [&] {
    if (sample.empty()) return;
    ++samples;
    auto at = std::find(sample.begin(), sample.end(), "leaf_spin");
    if (at != sample.end()) {
      ++with_leaf;
      auto end = std::find(at, sample.end(), "main");
      std::vector<std::string> theirs(at, end == sample.end() ? end : end + 1);
      if (theirs == ours)
        ++agree;
      else if (theirs.size() < ours.size() &&
               std::equal(theirs.begin(), theirs.end(), ours.begin()))
        ++cut;
      else
        ADD_FAILURE() << "perf: " << join(theirs) << "\nkscope: " << join(ours);
    }
    sample.clear();
  };
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string addr, sym;
    if (!(words >> addr >> sym)) {
      finish();
      continue;
    }
    sample.push_back(sym);
  }
  finish();
  std::cerr << "perf: " << samples << " samples, " << with_leaf << " in leaf_spin, " << agree
            << " agree with kscope's chain, " << cut << " cut short by perf\n";
  // The program spends nearly all its time in leaf_spin (a clock read per 100,000 additions).
  EXPECT_GE(with_leaf, 30);  // 199 Hz over 4 s, even with the CPU shared under load
  EXPECT_GE(with_leaf * 2, samples);
  EXPECT_GE(agree * 10, with_leaf * 9);
  EXPECT_EQ(agree + cut, with_leaf);
}

// --call-graph fp keeps today's frame-pointer walk: no unwind report, no markers.
TEST_F(UnwindRuntime, FramePointerModeStaysAvailable) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int pid = start({prog("unwind_chain"), "spin", "40"});
  ASSERT_GT(pid, 0);
  auto maps = exec_mappings(pid);
  auto j = top_json(pid, 1.5, {"--call-graph", "fp"});
  EXPECT_FALSE(j.contains("unwind"));
  // unwind_chain has no frame pointers: the kernel's walk reads data words as return addresses.
  // None may be shown: every frame lies in the program's code, and a stack cut at such a word
  // ends with one marker naming why.
  size_t stacks = 0;
  for (const auto& t : j["tasks"]) {
    const auto& user = t["user_stack"];
    if (user.empty()) continue;
    ++stacks;
    expect_in_exec_mappings(user, maps);
    for (size_t i = 0; i < user.size(); ++i)
      if (user[i].value("marker", false)) {
        EXPECT_EQ(i + 1, user.size()) << "the marker ends the stack";
        EXPECT_NE(user[i]["symbol"].get<std::string>().find("outside executable mappings"),
                  std::string::npos)
            << user[i].dump();
      }
  }
  EXPECT_GT(stacks, 0u);
}

}  // namespace
}  // namespace kscope::testing
