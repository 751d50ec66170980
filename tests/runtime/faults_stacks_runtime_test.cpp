// `kscope faults --stacks` against ground truth: tests/progs/fault_stacks, built -O2
// -fomit-frame-pointer, takes page faults at the end of known call chains (a 10-deep chain, inside
// libc's memset, in a qsort callback, in the kernel during read()). Every one of those faults must
// carry its chain whole and in order, every user frame must lie in an executable mapping of the
// process, the folded export must sum to the fault count, the recording must name its frames after
// the binary is deleted, and perf's DWARF call graphs of the same program must agree.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "exec_mappings.h"
#include "kscope/abi/unwind.h"
#include "model/recording.h"
#include "runtime_env.h"
#include "subprocess.h"
#include "symbols/fault_stack_frames.h"
#include "symbols/symbolizer.h"
#include "tools.h"

namespace kscope::testing {
namespace {

const std::string kKscope = KSCOPE_BINARY;

std::string join(const std::vector<std::string>& v, const char* sep = " <- ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// The program's chain from the faulting function up to main, leaf first.
const std::vector<std::string> kChain = {"toucher", "f8", "f7", "f6",        "f5",  "f4",
                                         "f3",      "f2", "f1", "run_chain", "main"};

class FaultStacksRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fresh_test_dir("kscope-fstacks");
    // A copy of the program of its own: the deleted-binary test removes it.
    prog_ = (dir_ / "fault_stacks").string();
    std::filesystem::copy_file(std::string(KSCOPE_TEST_PROGS_DIR) + "/fault_stacks", prog_);
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      wait_for(pid_, 5);
    }
    std::filesystem::remove_all(dir_);
  }

  // Runs `fault_stacks MODE PAGES` under `kscope faults -p PID --stacks[=walker] -o REC`: the
  // program maps its buffer and waits; kscope attaches (and loads the process's unwind tables);
  // then the program is released and takes its faults. Returns the recording.
  Recording trace(const std::string& mode, int pages, const std::string& walker = "") {
    std::string out = (dir_ / "prog.out").string();
    std::filesystem::remove(out);  // a second trace() must not see the first program's "ready"
    pid_ = spawn({prog_, mode, std::to_string(pages)}, out);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (read_file(out).find("ready") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    unsigned long long s = 0, e = 0;
    std::string text = read_file(out);
    auto at = text.find("buffer ");
    if (at == std::string::npos ||
        std::sscanf(text.c_str() + at, "buffer %llx %llx", &s, &e) != 2) {
      ADD_FAILURE() << "the test program did not start: " << text;
      return {};
    }
    buf_start_ = s;
    buf_end_ = e;
    maps_ = exec_mappings(pid_);
    rec_path_ = (dir_ / "rec.kscope").string();
    events_path_ = (dir_ / "events.csv").string();
    std::string err = (dir_ / "kscope.err").string();
    std::filesystem::remove(err);  // nor the first kscope's "tracing page faults"
    int kpid = spawn({kKscope, "faults", "-p", std::to_string(pid_),
                      walker.empty() ? "--stacks" : "--stacks=" + walker, "-o", rec_path_,
                      "--events", events_path_, "--format", "csv", "--no-plot"},
                     (dir_ / "kscope.out").string(), err);
    // Loading and verifying the walker takes seconds on a loaded machine.
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
    while (read_file(err).find("tracing page faults") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline && wait_for(kpid, 0) == -1)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    kill(pid_, SIGUSR1);
    EXPECT_EQ(wait_for(pid_, 60), 0) << read_file(out);
    pid_ = -1;
    int rc = wait_for(kpid, 120);
    kscope_err_ = read_file(err);
    kscope_out_ = read_file((dir_ / "kscope.out").string());
    EXPECT_EQ(rc, 0) << kscope_err_;
    auto rec = read_recording(rec_path_);
    if (!rec.ok()) {
      ADD_FAILURE() << rec.error().describe();
      return {};
    }
    return std::move(*rec);
  }

  bool in_buffer(const FaultRecord& f) const { return f.addr >= buf_start_ && f.addr < buf_end_; }

  // A fault's frames (leaf first), named as `kscope report`/`export` name them: the recording's
  // last mappings, then its stored names.
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
  static std::vector<std::string> names(const std::vector<NamedStackFrame>& frames) {
    std::vector<std::string> out;
    for (const auto& f : frames) out.push_back(stack_frame_word(f));
    return out;
  }

  void expect_user_frames_mapped(const FaultStack& s) {
    for (uint64_t ip : s.user) {
      bool inside = false;
      for (const auto& m : maps_) inside = inside || (ip >= m.start && ip < m.end);
      EXPECT_TRUE(inside) << std::hex << ip << " is in no executable mapping";
    }
  }

  // Every fault in the program's buffer (`pages` of them, one a page) has a complete user stack
  // whose frames all lie in executable mappings of the program; `check` looks at its frames,
  // named (`n`: the words of `fr`, leaf first).
  using StackCheck = std::function<void(const FaultRecord& f, const FaultStack& s,
                                        const std::vector<NamedStackFrame>& fr,
                                        const std::vector<std::string>& n)>;
  void expect_complete_stacks(const Recording& rec, int pages, const StackCheck& check) {
    int seen = 0;
    for (const FaultRecord& f : rec.faults) {
      if (!in_buffer(f)) continue;
      ++seen;
      ASSERT_NE(f.stack, 0u);
      const FaultStack& s = rec.stacks.at(f.stack);
      EXPECT_EQ(s.user_status, kStackStatusComplete) << user_stack_marker(s.user_status);
      expect_user_frames_mapped(s);
      auto fr = frames(rec, f);
      check(f, s, fr, names(fr));
    }
    EXPECT_EQ(seen, pages);
  }

  std::filesystem::path dir_;
  std::string prog_, rec_path_, events_path_, kscope_err_, kscope_out_;
  int pid_ = -1;
  uint64_t buf_start_ = 0, buf_end_ = 0;
  std::vector<ExecRange> maps_;
  std::unique_ptr<Symbolizer> symbolizer_;
};

TEST_F(FaultStacksRuntime, DeepChainEveryFaultHasTheWholeChain) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  constexpr int kPages = 64;
  Recording rec = trace("chain", kPages);
  ASSERT_TRUE(rec.has_stacks);
  expect_complete_stacks(
      rec, kPages,
      [](const FaultRecord& f, const FaultStack& s, const auto&,
         const std::vector<std::string>& n) {
        EXPECT_EQ(s.kernel_status, kStackStatusNone);
        EXPECT_EQ(s.user.front(), f.ip);  // the first frame is where the fault was
        ASSERT_GE(n.size(), kChain.size()) << join(n);
        EXPECT_EQ(std::vector<std::string>(n.begin(), n.begin() + kChain.size()), kChain)
            << join(n);
      });
  // The summary names the chain as its top call path, root first.
  EXPECT_NE(kscope_out_.find("top call paths"), std::string::npos) << kscope_out_;
  EXPECT_NE(kscope_out_.find("main -> run_chain -> f1 -> f2 -> f3 -> f4 -> f5 -> f6 -> f7 -> f8 "
                             "-> toucher"),
            std::string::npos)
      << kscope_out_;
  // The events' stack field: leaf first.
  std::string events = read_file(events_path_);
  EXPECT_EQ(events.substr(0, events.find('\n')),
            "time_ns,pid,tid,comm,addr,ip,access,mode,kind,segment,latency_ns,cpu,stack");
  size_t with_chain = 0, pos = 0;
  std::string want = join(kChain, ";");
  while ((pos = events.find(want, pos)) != std::string::npos) ++with_chain, ++pos;
  EXPECT_GE(with_chain, static_cast<size_t>(kPages));

  // Folded export: comm;root;...;leaf COUNT, summing to the faults recorded.
  auto folded = run({kKscope, "export", rec_path_, "--format", "folded", "-o", "-"}, 120);
  ASSERT_EQ(folded.exit_code, 0) << folded.err;
  std::istringstream in(folded.out);
  std::string line;
  uint64_t sum = 0, chain_count = 0;
  std::string root_first = "main;run_chain;f1;f2;f3;f4;f5;f6;f7;f8;toucher ";
  while (std::getline(in, line)) {
    auto sp = line.rfind(' ');
    ASSERT_NE(sp, std::string::npos) << line;
    uint64_t n = std::stoull(line.substr(sp + 1));
    sum += n;
    if (line.find(root_first) != std::string::npos) chain_count += n;
  }
  EXPECT_EQ(sum, rec.faults.size());
  EXPECT_GE(chain_count, static_cast<uint64_t>(kPages)) << folded.out;

  // The binary deleted: the recording still names every frame (its stored names).
  std::filesystem::remove(prog_);
  auto again = run({kKscope, "export", rec_path_, "--format", "folded", "-o", "-"}, 120);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, folded.out);
}

// --stacks=fp on a program built without frame pointers: the kernel's frame-pointer walk
// reads data as return addresses. No such word may be shown as a frame: every user frame of
// every fault lies in an executable mapping of the process, and a stack the filter cut ends
// with the "pc outside executable mappings" reason (and its marker frame), not with a guess.
// kscope faults -- COMMAND with the command faulting from its first instruction (no wait for a
// tracer): the program's, the dynamic loader's and the libraries' tables are loaded before the
// command may exec, and the executable mappings it makes are noted in BPF as they are made
// (bpf/unwind.bpf.h's early mappings), so the loader's first faults and the chain's have whole
// stacks although user space reads the process's mappings only later. Before both, none of
// this run's stacks was whole (the loader's faults ended with "process tables not loaded yet",
// the chain's with "pc outside executable mappings" after main).
TEST_F(FaultStacksRuntime, LaunchedCommandHasWholeStacksFromItsFirstInstruction) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  constexpr int kPages = 64;
  rec_path_ = (dir_ / "rec.kscope").string();
  std::string out = (dir_ / "kscope.out").string(), err = (dir_ / "kscope.err").string();
  int kpid = spawn({kKscope, "faults", "--stacks", "-v", "-o", rec_path_, "--no-plot", "--", prog_,
                    "chain", std::to_string(kPages), "go"},
                   out, err);
  int rc = wait_for(kpid, 240);
  kscope_err_ = read_file(err);
  kscope_out_ = read_file(out);
  ASSERT_EQ(rc, 0) << kscope_err_;
  // Every file the command maps at start had its table before it ran: the program, ld.so, libc.
  EXPECT_NE(kscope_err_.find("loaded before it ran: 3 of 3 files"), std::string::npos)
      << kscope_err_;
  unsigned long long bs = 0, be = 0;
  auto at = kscope_out_.find("buffer ");
  ASSERT_NE(at, std::string::npos) << kscope_out_;
  ASSERT_EQ(std::sscanf(kscope_out_.c_str() + at, "buffer %llx %llx", &bs, &be), 2);
  buf_start_ = bs;
  buf_end_ = be;
  auto rec = read_recording(rec_path_);
  ASSERT_TRUE(rec.ok()) << rec.error().describe();
  ASSERT_TRUE(rec->has_stacks);
  size_t total = 0, whole = 0, chain = 0;
  std::map<std::string, size_t> not_whole;
  for (const FaultRecord& f : rec->faults) {
    ASSERT_NE(f.stack, 0u);
    const FaultStack& s = rec->stacks.at(f.stack);
    auto n = names(frames(*rec, f));
    ++total;
    if (s.user_status == kStackStatusComplete) {
      ++whole;
      // A whole stack ends at an entry point: the program's _start (its CFI marks the return
      // address undefined) or the loader's (no CFI; its sp is the initial stack pointer): the
      // return address of its `call _dl_start` is the label _dl_start_user.
      EXPECT_TRUE(n.back() == "_start" || n.back() == "_dl_start_user") << join(n);
      for (const auto& name : n) EXPECT_EQ(name.find("[unknown"), std::string::npos) << join(n);
    } else {
      not_whole[unwind_reason_text(s.user_status)] += 1;
    }
    if (!in_buffer(f)) continue;
    ++chain;
    EXPECT_EQ(s.user_status, kStackStatusComplete) << join(n);
    EXPECT_EQ(s.user.front(), f.ip);
    ASSERT_GE(n.size(), kChain.size()) << join(n);
    EXPECT_EQ(std::vector<std::string>(n.begin(), n.begin() + kChain.size()), kChain) << join(n);
  }
  EXPECT_EQ(chain, static_cast<size_t>(kPages));
  std::string reasons;
  for (const auto& [why, count] : not_whole) reasons += why + ": " + std::to_string(count) + "; ";
  // The kernel's own count of the command's faults is what the recording holds (none unseen).
  EXPECT_GE(total, static_cast<size_t>(kPages) + 20);
  EXPECT_GE(whole * 100, total * 99) << whole << " of " << total << " whole; " << reasons;
}

TEST_F(FaultStacksRuntime, FramePointerWalkNeverShowsAWordOutsideTheCode) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  constexpr int kPages = 64;
  Recording rec = trace("chain", kPages, "fp");
  ASSERT_TRUE(rec.has_stacks);
  int seen = 0, cut = 0;
  for (const FaultRecord& f : rec.faults) {
    if (!in_buffer(f)) continue;
    ++seen;
    ASSERT_NE(f.stack, 0u);
    const FaultStack& s = rec.stacks.at(f.stack);
    ASSERT_FALSE(s.user.empty());
    EXPECT_EQ(s.user.front(), f.ip);
    expect_user_frames_mapped(s);
    EXPECT_TRUE(s.user_status == kStackStatusFramePointers ||
                s.user_status == KSCOPE_UNWIND_NO_MAPPING)
        << int{s.user_status};
    if (s.user_status == KSCOPE_UNWIND_NO_MAPPING) {
      ++cut;
      auto n = names(frames(rec, f));
      ASSERT_FALSE(n.empty());
      EXPECT_NE(n.back().find("incomplete"), std::string::npos) << join(n);
    }
  }
  EXPECT_EQ(seen, kPages);
  std::cerr << cut << " of " << seen << " frame-pointer stacks cut at a word outside the code\n";
}

// Code built without frame pointers may keep a data pointer in rbp, here into the page about to
// fault. The frame-pointer walk reads there (page faults disabled): the kernel raises its
// page-fault tracepoint for that read too, in kernel mode, before failing it. Such a read is not
// the program's fault and must not take the place of the fault being recorded (it did: with
// clang-built programs no fault of the chain was recorded, each counted as "never completed").
TEST_F(FaultStacksRuntime, FramePointerIntoAnUntouchedPageIsNotTakenForAFault) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  constexpr int kPages = 64;
  for (const char* walker : {"fp", "dwarf"}) {
    SCOPED_TRACE(walker);
    Recording rec = trace("rbp", kPages, walker);
    std::set<uint64_t> pages;
    for (const FaultRecord& f : rec.faults) {
      if (!in_buffer(f)) continue;
      EXPECT_EQ(f.addr % 4096, 0u) << std::hex << f.addr << ": the program wrote each page's first "
                                   << "byte; rbp pointed 64 bytes further";
      pages.insert(f.addr);
      ASSERT_NE(f.stack, 0u);
      const FaultStack& st = rec.stacks.at(f.stack);
      ASSERT_FALSE(st.user.empty());
      EXPECT_EQ(st.user.front(), f.ip);
      expect_user_frames_mapped(st);
    }
    EXPECT_EQ(pages.size(), static_cast<size_t>(kPages)) << kscope_out_;
    EXPECT_EQ(kscope_out_.find("never completed"), std::string::npos) << kscope_out_;
    // The frame-pointer walk read each page once before the program touched it, and says so;
    // the native walker follows the CFI, which restores rbp from the stack, not through it.
    bool fp = std::string(walker) == "fp";
    EXPECT_EQ(kscope_out_.find("stack walk: " + std::to_string(kPages) + " of its reads faulted") !=
                  std::string::npos,
              fp)
        << kscope_out_;
  }
}

TEST_F(FaultStacksRuntime, FaultInsideLibcMemsetShowsItsCallers) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  constexpr int kPages = 64;
  Recording rec = trace("memset", kPages);
  expect_complete_stacks(
      rec, kPages,
      [](const FaultRecord&, const FaultStack&, const auto& fr, const std::vector<std::string>& n) {
        ASSERT_GE(n.size(), 3u) << join(n);
        EXPECT_NE(n[0].find("memset"), std::string::npos) << join(n);
        EXPECT_EQ(fr[0].symbol.module, "libc.so.6") << join(n);
        EXPECT_EQ(n[1], "memset_caller") << join(n);
        EXPECT_EQ(n[2], "main") << join(n);
      });
}

TEST_F(FaultStacksRuntime, QsortCallbackShowsQsortBetweenTheProgramsFrames) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  constexpr int kPages = 32;
  Recording rec = trace("qsort", kPages);
  expect_complete_stacks(
      rec, kPages,
      [](const FaultRecord&, const FaultStack&, const auto& fr, const std::vector<std::string>& n) {
        ASSERT_GE(n.size(), 4u) << join(n);
        EXPECT_EQ(n[0], "compare_touch") << join(n);
        auto driver = std::find(n.begin(), n.end(), "qsort_driver");
        ASSERT_NE(driver, n.end()) << join(n);
        ASSERT_NE(driver + 1, n.end());
        EXPECT_EQ(*(driver + 1), "main") << join(n);
        size_t d = static_cast<size_t>(driver - n.begin());
        ASSERT_GE(d, 2u) << "no libc frame between the callback and qsort_driver: " << join(n);
        bool qsort_named = false;
        for (size_t i = 1; i < d; ++i) {
          EXPECT_EQ(fr[i].symbol.module, "libc.so.6") << n[i] << " in " << join(n);
          qsort_named = qsort_named || n[i].find("sort") != std::string::npos;
        }
        EXPECT_TRUE(qsort_named) << join(n);
      });
}

TEST_F(FaultStacksRuntime, KernelModeFaultHasKernelAndUserStacks) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  constexpr int kPages = 32;
  Recording rec = trace("read", kPages);
  expect_complete_stacks(
      rec, kPages,
      [](const FaultRecord& f, const FaultStack& s, const auto& fr,
         const std::vector<std::string>& n) {
        ASSERT_EQ(f.mode, FaultMode::kKernel);  // read() writes the buffer from the kernel
        EXPECT_EQ(s.kernel_status, kStackStatusPresent);
        size_t k = 0;
        while (k < fr.size() && fr[k].kernel) ++k;
        ASSERT_GE(k, 1u) << join(n);
        EXPECT_EQ(std::find(n.begin(), n.end(), "asm_exc_page_fault_[k]"), n.end()) << join(n);
        // The user part: the read wrapper in libc, its caller, main.
        ASSERT_GE(n.size(), k + 3) << join(n);
        EXPECT_EQ(fr[k].symbol.module, "libc.so.6") << join(n);
        EXPECT_EQ(n[k + 1], "read_caller") << join(n);
        EXPECT_EQ(n[k + 2], "main") << join(n);
      });
}

// perf's own DWARF unwinding (libdw/libunwind on a copy of the stack) on the same program: the
// function chains of the toucher's faults agree with kscope's.
TEST_F(FaultStacksRuntime, AgreesWithPerfDwarfCallGraphs) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  KSCOPE_REQUIRE_TOOL_OR_SKIP(perf, "perf", "linux-perf");
  constexpr int kPages = 32;
  Recording rec = trace("chain", kPages);
  std::vector<std::string> ours;
  for (const FaultRecord& f : rec.faults) {
    if (!in_buffer(f)) continue;
    auto n = names(frames(rec, f));
    if (n.size() > kChain.size()) n.resize(kChain.size());
    ours = n;
    break;
  }
  ASSERT_EQ(ours, kChain);
  std::string data = (dir_ / "perf.data").string();
  auto rec_run = run({perf, "record", "-q", "-e", "page-faults", "-c", "1", "--call-graph", "dwarf",
                      "-o", data, "--", prog_, "chain", std::to_string(kPages), "go"},
                     180);
  ASSERT_EQ(rec_run.exit_code, 0) << rec_run.err;
  auto script = run({perf, "script", "-i", data, "-F", "ip,sym"}, 180);
  ASSERT_EQ(script.exit_code, 0) << script.err;
  // Samples are separated by blank lines; each frame line is "ADDR SYMBOL".
  std::istringstream in(script.out);
  std::string line;
  std::vector<std::string> sample;
  int toucher_samples = 0, agreeing = 0;
  auto finish = [&] {
    if (!sample.empty() && sample[0] == "toucher") {
      ++toucher_samples;
      std::vector<std::string> head(sample.begin(),
                                    sample.begin() + std::min(sample.size(), kChain.size()));
      if (head == ours)
        ++agreeing;
      else
        ADD_FAILURE() << "perf: " << join(sample) << "\nkscope: " << join(ours);
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
  EXPECT_EQ(toucher_samples, kPages);
  EXPECT_EQ(agreeing, toucher_samples);
}

}  // namespace
}  // namespace kscope::testing
