// Stacks taken during lazy binding, against ground truth: tests/progs/unwind_plt (built -O2
// -fomit-frame-pointer, linked -z lazy) takes page faults (1) inside IFUNC resolvers that ld.so's
// _dl_fixup runs at the first call through each PLT entry, (2) on the PLT stub's own push, and
// (3) in _dl_runtime_resolve_xsave*, whose CFA is rbx-based. `kscope faults --stacks` must show
// every such stack whole and in order (caller <- _dl_runtime_resolve* <- _dl_fixup <- resolver),
// with every user frame in an executable mapping. Before the walker followed CFA = rbx + N (and
// tracked rbx through the callees' saved registers), (1) and (3) ended at _dl_runtime_resolve
// with "unsupported unwind rule".
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "exec_mappings.h"
#include "kscope/abi/unwind.h"
#include "model/recording.h"
#include "runtime_env.h"
#include "subprocess.h"
#include "symbols/fault_stack_frames.h"
#include "symbols/symbolizer.h"

namespace kscope::testing {
namespace {

const std::string kKscope = KSCOPE_BINARY;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " <- ") + x;
  return s;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

class UnwindPltRuntime : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fresh_test_dir("kscope-uplt"); }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      wait_for(pid_, 5);
    }
    std::filesystem::remove_all(dir_);
  }

  // Runs `unwind_plt MODE` under `kscope faults -p PID --stacks`, released once kscope traces.
  // Returns the recording; out_ holds the program's output.
  Recording trace(const std::string& mode) {
    std::string out = (dir_ / "prog.out").string();
    // Lazy binding is the point: an inherited LD_BIND_NOW would resolve everything at start.
    unsetenv("LD_BIND_NOW");
    pid_ = spawn({std::string(KSCOPE_TEST_PROGS_DIR) + "/unwind_plt", mode}, out);
    if (!wait_for_text(out, "ready", 60)) {
      ADD_FAILURE() << "the test program did not start: " << read_file(out);
      return {};
    }
    maps_ = exec_mappings(pid_);
    std::string rec_path = (dir_ / "rec.kscope").string();
    std::string err = (dir_ / "kscope.err").string();
    int kpid = spawn(
        {kKscope, "faults", "-p", std::to_string(pid_), "--stacks", "-o", rec_path, "--no-plot"},
        (dir_ / "kscope.out").string(), err);
    // Loading and verifying the walker takes seconds on a loaded machine.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
    while (read_file(err).find("tracing page faults") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline && wait_for(kpid, 0) == -1)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    kill(pid_, SIGUSR1);
    EXPECT_EQ(wait_for(pid_, 60), 0) << read_file(out);
    pid_ = -1;
    int rc = wait_for(kpid, 120);
    out_ = read_file(out);
    EXPECT_EQ(rc, 0) << read_file(err);
    auto rec = read_recording(rec_path);
    if (!rec.ok()) {
      ADD_FAILURE() << rec.error().describe();
      return {};
    }
    return std::move(*rec);
  }

  std::vector<NamedStackFrame> frames(const Recording& rec, const FaultRecord& f) {
    if (!symbolizer_) {
      symbolizer_ = std::make_unique<Symbolizer>();
      for (const auto& snap : rec.mappings) symbolizer_->set_mappings(snap);
      symbolizer_->add_stored_symbols(rec.symbols);
    }
    auto it = rec.stacks.find(f.stack);
    return name_fault_stack(it == rec.stacks.end() ? nullptr : &it->second, kStackStatusLostDamaged,
                            *symbolizer_);
  }
  static std::vector<std::string> names(const std::vector<NamedStackFrame>& fr) {
    std::vector<std::string> out;
    for (const auto& f : fr) out.push_back(stack_frame_word(f));
    return out;
  }

  // The fault's stack is whole and every user frame lies in an executable mapping.
  void expect_whole_and_mapped(const FaultStack& s, const std::vector<std::string>& n) {
    EXPECT_EQ(s.user_status, kStackStatusComplete)
        << user_stack_marker(s.user_status) << ": " << join(n);
    for (uint64_t ip : s.user) {
      bool inside = false;
      for (const auto& m : maps_) inside = inside || (ip >= m.start && ip < m.end);
      EXPECT_TRUE(inside) << std::hex << ip << " is in no executable mapping: " << join(n);
    }
  }

  // `tail` (leaf first) appears in n, in order and adjacent.
  static size_t find_run(const std::vector<std::string>& n, const std::vector<std::string>& run) {
    for (size_t i = 0; i + run.size() <= n.size(); ++i)
      if (std::equal(run.begin(), run.end(), n.begin() + i)) return i;
    return std::string::npos;
  }

  std::filesystem::path dir_;
  std::string out_;
  int pid_ = -1;
  std::vector<ExecRange> maps_;
  std::unique_ptr<Symbolizer> symbolizer_;
};

TEST_F(UnwindPltRuntime, IfuncResolverRunByDlFixupShowsTheWholeChain) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  Recording rec = trace("ifunc");
  ASSERT_TRUE(rec.has_stacks);
  unsigned long long bs = 0, be = 0;
  auto at = out_.find("buffer ");
  ASSERT_NE(at, std::string::npos) << out_;
  ASSERT_EQ(std::sscanf(out_.c_str() + at, "buffer %llx %llx", &bs, &be), 2);
  int seen = 0;
  for (const FaultRecord& f : rec.faults) {
    if (f.addr < bs || f.addr >= be) continue;
    ++seen;
    ASSERT_NE(f.stack, 0u);
    const FaultStack& s = rec.stacks.at(f.stack);
    auto fr = frames(rec, f);
    auto n = names(fr);
    expect_whole_and_mapped(s, n);
    EXPECT_EQ(s.user.front(), f.ip);
    // resolver_touch <- resolve_K <- (ld.so: ... <- _dl_fixup) <- _dl_runtime_resolve* <- call_plt
    // <- run_ifunc <- main, K the page.
    int k = static_cast<int>((f.addr - bs) / 4096);
    ASSERT_GE(n.size(), 7u) << join(n);
    EXPECT_EQ(n[0], "resolver_touch") << join(n);
    // The resolver's address is also the IFUNC symbol's value: either name is the function.
    EXPECT_TRUE(n[1] == "resolve_" + std::to_string(k) || n[1] == "plt_ifunc_" + std::to_string(k))
        << join(n);
    EXPECT_EQ(fr[0].symbol.module, "libunwind_plt_lib.so") << join(n);
    size_t fixup = find_run(n, {"_dl_fixup"});
    ASSERT_NE(fixup, std::string::npos) << join(n);
    for (size_t i = 2; i <= fixup; ++i)
      EXPECT_EQ(fr[i].symbol.module, "ld-linux-x86-64.so.2") << n[i] << " in " << join(n);
    ASSERT_GE(n.size(), fixup + 5) << join(n);
    EXPECT_TRUE(starts_with(n[fixup + 1], "_dl_runtime_resolve")) << join(n);
    EXPECT_EQ(std::vector<std::string>(n.begin() + fixup + 2, n.begin() + fixup + 5),
              (std::vector<std::string>{"call_plt", "run_ifunc", "main"}))
        << join(n);
  }
  EXPECT_EQ(seen, 16);  // one page per IFUNC, each touched once, by its resolver
}

TEST_F(UnwindPltRuntime, FaultOnThePltStubsPushAndInTheResolverAreWhole) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  Recording rec = trace("pltleaf");
  ASSERT_TRUE(rec.has_stacks);
  unsigned long long s1 = 0, e1 = 0, stub = 0, ret1 = 0, s2 = 0, e2 = 0, ret2 = 0;
  auto at = out_.find("pltleaf ");
  ASSERT_NE(at, std::string::npos) << out_;
  ASSERT_EQ(std::sscanf(out_.c_str() + at, "pltleaf %llx %llx %llx %llx", &s1, &e1, &stub, &ret1),
            4);
  at = out_.find("resolve ");
  ASSERT_NE(at, std::string::npos) << out_;
  ASSERT_EQ(std::sscanf(out_.c_str() + at, "resolve %llx %llx %llx", &s2, &e2, &ret2), 3);
  int on_stub = 0, in_resolver = 0, first = 0, second = 0;
  for (const FaultRecord& f : rec.faults) {
    bool one = f.addr >= s1 && f.addr < e1, two = f.addr >= s2 && f.addr < e2;
    if (!one && !two) continue;
    ASSERT_NE(f.stack, 0u);
    const FaultStack& s = rec.stacks.at(f.stack);
    auto fr = frames(rec, f);
    auto n = names(fr);
    expect_whole_and_mapped(s, n);
    EXPECT_EQ(s.user.front(), f.ip);
    // The trampolines' return addresses follow their global labels *_call: the same function.
    for (auto& name : n)
      for (const char* t : {"plt_trampoline", "resolve_trampoline"})
        if (starts_with(name, t)) name = t;
    // Whatever the leaf, the frames end trampoline <- run_pltleaf <- main (then libc's start).
    const std::string tramp = one ? "plt_trampoline" : "resolve_trampoline";
    size_t t = find_run(n, {tramp, "run_pltleaf", "main"});
    ASSERT_NE(t, std::string::npos) << join(n);
    EXPECT_EQ(fr.at(t).addr, one ? ret1 : ret2) << join(n);
    if (one) {
      ++first;
      // The first write below the boundary is the stub's `push $index` (the lazy path).
      if (f.addr >= e1 - 4096 && f.ip >= stub && f.ip < stub + 16) {
        ++on_stub;
        EXPECT_EQ(t, 1u) << "the stub's caller must follow it: " << join(n);
      }
    } else {
      ++second;
      // The resolver's first write below the boundary, after CFA = rbx + N.
      if (starts_with(n[0], "_dl_runtime_resolve")) {
        ++in_resolver;
        EXPECT_EQ(t, 1u) << join(n);
      }
    }
  }
  EXPECT_EQ(on_stub, 1) << first << " faults on the first stack";
  EXPECT_GE(in_resolver, 1) << second << " faults on the second stack";
}

}  // namespace
}  // namespace kscope::testing
