// kscope faults against ground truth: tests/progs/faultprog knows which pages it touched, in
// which order, and reads its own kernel counters; the kernel's /proc counters are read by the
// test itself.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "counts.h"
#include "model/recording.h"
#include "runtime_env.h"
#include "subprocess.h"
#include "trace/proc.h"
#include "util/csv.h"

namespace kscope::testing {
namespace {

const std::string kFaultprog = std::string(KSCOPE_TEST_PROGS_DIR) + "/faultprog";

struct CsvFault {
  uint64_t time_ns;
  uint32_t pid, tid;
  std::string comm;
  uint64_t addr, ip;
  std::string access, mode, kind, segment, latency;
  uint32_t cpu = 0;
  std::string symbol;  // with --symbols
};

std::vector<CsvFault> parse_events_csv(const std::string& text, bool symbols = false) {
  std::vector<CsvFault> out;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line,
            std::string("time_ns,pid,tid,comm,addr,ip,access,mode,kind,segment,latency_ns,cpu") +
                (symbols ? ",symbol" : ""));
  size_t fields = symbols ? 13 : 12;
  while (std::getline(in, line)) {
    auto f = split_csv_line(line);
    EXPECT_EQ(f.size(), fields) << line;
    if (f.size() != fields) continue;
    out.push_back(CsvFault{std::stoull(f[0]), static_cast<uint32_t>(std::stoul(f[1])),
                           static_cast<uint32_t>(std::stoul(f[2])), f[3],
                           std::stoull(f[4], nullptr, 16), std::stoull(f[5], nullptr, 16), f[6],
                           f[7], f[8], f[9], f[10], static_cast<uint32_t>(std::stoul(f[11])),
                           symbols ? f[12] : std::string()});
  }
  return out;
}

struct Truth {
  std::vector<uint64_t> pages;  // in order
  std::map<std::string, std::pair<uint64_t, uint64_t>> ranges;
  uint64_t minflt = 0, majflt = 0;
  bool has_counters = false;
  std::vector<uint32_t> children;
};

Truth parse_truth(const std::string& text) {
  Truth t;
  std::istringstream in(text);
  std::string kind;
  while (in >> kind) {
    if (kind == "page") {
      std::string a;
      in >> a;
      t.pages.push_back(std::stoull(a, nullptr, 16));
    } else if (kind == "range") {
      std::string name, a, b;
      in >> name >> a >> b;
      t.ranges[name] = {std::stoull(a, nullptr, 16), std::stoull(b, nullptr, 16)};
    } else if (kind == "counters") {
      in >> t.minflt >> t.majflt;
      t.has_counters = true;
    } else if (kind == "child") {
      uint32_t c;
      in >> c;
      t.children.push_back(c);
    } else {
      std::string rest;
      std::getline(in, rest);
    }
  }
  return t;
}

class FaultsRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kscope-rt-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Runs kscope faults -- faultprog ARGS with CSV events; returns the faults of the traced
  // process (the first pid seen).
  RunResult trace_prog(const std::vector<std::string>& prog_args,
                       const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {KSCOPE_BINARY, "faults", "--events", path("events.csv"),
                                     "--format",    "csv",    "--no-plot"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("--");
    argv.push_back(kFaultprog);
    argv.insert(argv.end(), prog_args.begin(), prog_args.end());
    argv.push_back("--truth");
    argv.push_back(path("truth.txt"));
    auto r = run(argv, 120);
    bool symbols = std::find(extra.begin(), extra.end(), "--symbols") != extra.end();
    events_ = parse_events_csv(read_file(path("events.csv")), symbols);
    truth_ = parse_truth(read_file(path("truth.txt")));
    return r;
  }

  // Faults on the given pages, in time order (or, with by_time false, in the order of the
  // event stream).
  std::vector<CsvFault> faults_on(const std::vector<uint64_t>& pages, bool by_time = true) const {
    std::set<uint64_t> set;
    for (auto p : pages) set.insert(p & ~0xfffull);
    std::vector<CsvFault> out;
    for (const auto& f : events_)
      if (set.count(f.addr & ~0xfffull)) out.push_back(f);
    if (by_time)
      std::stable_sort(out.begin(), out.end(),
                       [](const auto& a, const auto& b) { return a.time_ns < b.time_ns; });
    return out;
  }

  std::filesystem::path dir_;
  std::vector<CsvFault> events_;
  Truth truth_;
};

TEST_F(FaultsRuntime, AnonymousWritesAreExactlyTheTouchedPagesInOrder) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = trace_prog({"anon-write", "300", "42"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(truth_.pages.size(), 300u);
  auto seen = faults_on(truth_.pages);
  ASSERT_EQ(seen.size(), truth_.pages.size()) << "each touched page faults exactly once";
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].addr, truth_.pages[i]) << "fault " << i << " out of order";
    EXPECT_EQ(seen[i].access, "write");
    EXPECT_EQ(seen[i].kind, "minor");
    EXPECT_EQ(seen[i].segment, "anon");
    EXPECT_EQ(seen[i].mode, "user");
    EXPECT_EQ(seen[i].comm, "faultprog");
    EXPECT_FALSE(seen[i].latency.empty());
  }
}

// The same while the thread moves between CPUs every 37 pages: records are gathered per CPU in
// the kernel, so a thread's later faults can reach user space before its earlier ones; the
// order must still be the order of the touches.
TEST_F(FaultsRuntime, OrderHoldsWhileTheThreadMigratesBetweenCpus) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = trace_prog({"anon-write-migrate", "2000", "7"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(truth_.pages.size(), 2000u);
  auto seen = faults_on(truth_.pages, /*by_time=*/false);
  ASSERT_EQ(seen.size(), truth_.pages.size()) << "each touched page faults exactly once";
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].addr, truth_.pages[i]) << "fault " << i << " out of order";
    if (i > 0) {
      EXPECT_LE(seen[i - 1].time_ns, seen[i].time_ns) << "fault " << i;
    }
  }
  // The cpu column: the thread was pinned to one CPU after another (sched_setaffinity, every 37
  // pages), so its faults name more than one CPU, and each a CPU that exists. Within one
  // 37-page run (the pages between two moves) every fault is on the same CPU.
  long ncpus = sysconf(_SC_NPROCESSORS_CONF);
  std::set<uint32_t> cpus;
  for (const auto& f : seen) {
    EXPECT_LT(f.cpu, static_cast<uint32_t>(ncpus));
    cpus.insert(f.cpu);
  }
  if (ncpus > 1) {
    EXPECT_GE(cpus.size(), 2u) << "the thread ran on several CPUs";
  }
  for (size_t i = 1; i < seen.size(); ++i)
    if (i % 37 != 0) {
      EXPECT_EQ(seen[i].cpu, seen[i - 1].cpu) << "fault " << i;
    }
}

// Threads that write the first page of their own mapping, rename themselves
// (pthread_setname_np), then write the rest: each range is written by exactly one thread, once
// per page, the first page under the inherited name and the others under the new one.
TEST_F(FaultsRuntime, EachThreadsPagesCarryItsTidAndNewName) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = trace_prog({"threads", "3", "200"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<uint32_t> tids;
  // bpf_find_vma() only trylocks mmap_lock: while the threads mmap and fault at once a lookup
  // can find it held, and kscope then says segment "unknown" (never a guessed segment) and
  // counts it in the summary ("segment unknown: N faults"). Every such page must be so counted.
  size_t unknown = 0;
  for (int i = 0; i < 3; ++i) {
    std::string name = "toucher-" + std::to_string(i);
    SCOPED_TRACE(name);
    ASSERT_TRUE(truth_.ranges.count(name));
    auto [lo, hi] = truth_.ranges[name];
    std::vector<CsvFault> in;
    for (const auto& f : events_)
      if (f.addr >= lo && f.addr < hi) in.push_back(f);
    ASSERT_EQ(in.size(), 200u);
    std::sort(in.begin(), in.end(), [](const auto& a, const auto& b) { return a.addr < b.addr; });
    for (const auto& f : in) {
      EXPECT_EQ(f.comm, &f == &in.front() ? std::string("faultprog") : name) << std::hex << f.addr;
      EXPECT_EQ(f.tid, in.front().tid);
      EXPECT_NE(f.tid, f.pid) << "written by the thread, not the main thread";
      EXPECT_EQ(f.access, "write");
      if (f.segment == "unknown")
        ++unknown;
      else
        EXPECT_EQ(f.segment, "anon");
    }
    tids.insert(in.front().tid);
  }
  if (unknown > 0) {
    std::smatch m;
    std::string text = r.out + r.err;
    ASSERT_TRUE(std::regex_search(text, m, std::regex("segment unknown: ([0-9,]+) faults")))
        << unknown << " pages said 'unknown' with no count\n"
        << text;
    EXPECT_LE(unknown, parse_count(m[1])) << text;
  }
  EXPECT_EQ(tids.size(), 3u);
}

// The recording keeps the kernel's group_dead flag of each thread exit: in a process whose three
// threads are joined before main returns, exactly one exit, the last one (main's exit_group), has
// it.
TEST_F(FaultsRuntime, RecordingMarksOnlyTheLastThreadsExitAsGroupDead) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = trace_prog({"threads", "3", "20"}, {"-o", path("rec.kscope")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rec = read_recording(path("rec.kscope"));
  ASSERT_TRUE(rec.ok()) << rec.error().message;
  ASSERT_FALSE(events_.empty());
  const uint32_t pid = events_.front().pid;
  std::vector<ExitEvent> exits;
  for (const auto& e : rec->exits)
    if (e.pid == pid) exits.push_back(e);
  ASSERT_EQ(exits.size(), 4u) << "three threads and main";
  std::stable_sort(exits.begin(), exits.end(),
                   [](const auto& a, const auto& b) { return a.time_ns < b.time_ns; });
  for (size_t i = 0; i < exits.size(); ++i) {
    SCOPED_TRACE("exit of tid " + std::to_string(exits[i].tid));
    EXPECT_EQ(exits[i].group_dead, i + 1 == exits.size());
  }
  EXPECT_EQ(exits.back().tid, pid) << "main returns after joining its threads";
}

// --symbols: each event names the function of its instruction. faultprog's anon-write pages are
// written by touch_pages_permuted() (noinline), in faultprog itself.
TEST_F(FaultsRuntime, SymbolsNameTheTouchingFunction) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = trace_prog({"anon-write", "40", "5"}, {"--symbols"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto seen = faults_on(truth_.pages);
  ASSERT_EQ(seen.size(), 40u);
  std::regex expected(R"(^touch_pages_permuted\+0x[0-9a-f]+ \(faultprog\)$)");
  for (const auto& f : seen) EXPECT_TRUE(std::regex_match(f.symbol, expected)) << f.symbol;
  // Every other event has a symbol field too (resolved, module+offset, or an address).
  for (const auto& f : events_) EXPECT_FALSE(f.symbol.empty()) << std::hex << f.ip;
}

TEST_F(FaultsRuntime, ReadsOfUntouchedAnonymousMemoryAreReads) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = trace_prog({"anon-read", "64"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto seen = faults_on(truth_.pages);
  ASSERT_EQ(seen.size(), 64u);
  for (const auto& f : seen) {
    EXPECT_EQ(f.access, "read");
    EXPECT_EQ(f.kind, "minor");
    EXPECT_EQ(f.segment, "anon");
  }
}

TEST_F(FaultsRuntime, DataBssHeapAndStackLandInTheirSegments) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = trace_prog({"segments"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::map<std::string, std::string> expected = {
      {"data", "data"}, {"bss", "data"}, {"heap", "heap"}, {"stack", "stack"}};
  for (const auto& [range, segment] : expected) {
    ASSERT_TRUE(truth_.ranges.count(range)) << range;
    auto [lo, hi] = truth_.ranges[range];
    int n = 0;
    for (const auto& f : events_) {
      if (f.addr < lo || f.addr >= hi) continue;
      ++n;
      EXPECT_EQ(f.segment, segment) << range << " fault at " << std::hex << f.addr;
    }
    EXPECT_GE(n, 8) << "too few faults seen in " << range;
  }
}

TEST_F(FaultsRuntime, EvictedFileReadGivesOneMajorFileFaultPerPage) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = trace_prog({"file-major", "32", "/var/tmp"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(truth_.pages.size(), 32u);
  auto seen = faults_on(truth_.pages);
  ASSERT_EQ(seen.size(), 32u);
  for (const auto& f : seen) {
    EXPECT_EQ(f.kind, "major");
    EXPECT_EQ(f.segment, "file");
    EXPECT_EQ(f.access, "read");
  }
}

// The summary line: "pid N (comm): kernel K (minflt a, majflt b), seen individually S, ..."
struct SummaryCounts {
  uint64_t kernel = 0, minflt = 0, majflt = 0, seen = 0, unseen = 0;
  bool found = false;
};
SummaryCounts parse_summary(const std::string& out, uint32_t pid) {
  SummaryCounts c;
  std::regex re("pid " + std::to_string(pid) +
                " \\([^)]*\\): kernel ([0-9,]+) \\(minflt ([0-9,]+), majflt ([0-9,]+)\\), seen "
                "individually ([0-9,]+), not seen individually ([0-9,]+)");
  std::smatch m;
  if (std::regex_search(out, m, re)) {
    c.found = true;
    c.kernel = parse_count(m[1]);
    c.minflt = parse_count(m[2]);
    c.majflt = parse_count(m[3]);
    c.seen = parse_count(m[4]);
    c.unseen = parse_count(m[5]);
  }
  return c;
}

TEST_F(FaultsRuntime, TracedCountEqualsKernelCountMinusGetUserPagesFaults) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  // 100 pages faulted in by MAP_POPULATE (get_user_pages: counted, no per-fault event), then 50
  // pages written normally.
  auto r = trace_prog({"populate", "100", "50"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_FALSE(events_.empty());
  uint32_t pid = events_.front().pid;
  // With a COMMAND, the summary is on stderr (stdout belongs to the command).
  auto c = parse_summary(r.err, pid);
  ASSERT_TRUE(c.found) << r.err;
  uint64_t rows = 0;
  for (const auto& f : events_)
    if (f.pid == pid) ++rows;
  EXPECT_EQ(c.seen, rows) << "summary disagrees with the event stream";
  EXPECT_EQ(c.kernel, c.minflt + c.majflt);
  EXPECT_EQ(c.seen + c.unseen, c.kernel) << r.err;
  // The faults not seen individually are the populate faults (and nothing else of note), and
  // the summary names get_user_pages() as their cause.
  EXPECT_GE(c.unseen, 100u) << r.err;
  EXPECT_LE(c.unseen, 104u) << r.err;
  EXPECT_NE(r.err.find("taken through get_user_pages()"), std::string::npos) << r.err;
  EXPECT_EQ(faults_on(truth_.pages).size(), 50u);
  // The program's own counters just before exit include what it faulted before exec (kscope
  // starts at exec); the kernel delta kscope reports can only be smaller, by a small amount.
  ASSERT_TRUE(truth_.has_counters);
  uint64_t own = truth_.minflt + truth_.majflt;
  EXPECT_LE(c.kernel, own);
  EXPECT_LE(own - c.kernel, 64u) << "pre-exec faults should be few";
}

TEST_F(FaultsRuntime, AttachesToARunningProcessAndMatchesItsKernelCounters) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int prog =
      spawn({kFaultprog, "wait-touch", "128", "--truth", path("truth.txt")}, path("prog.out"));
  ASSERT_GT(prog, 0);
  for (int i = 0; i < 500 && read_file(path("prog.out")).find("ready") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto before = proc::read_stat(prog);
  ASSERT_TRUE(before.ok());
  int tracer = spawn({KSCOPE_BINARY, "faults", "-p", std::to_string(prog), "--events",
                      path("events.csv"), "--format", "csv", "--no-plot"},
                     path("kscope.out"), path("kscope.err"));
  for (int i = 0; i < 1000 && read_file(path("kscope.err")).find("tracing") == std::string::npos;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_NE(read_file(path("kscope.err")).find("tracing"), std::string::npos)
      << read_file(path("kscope.err"));
  kill(prog, SIGUSR1);
  EXPECT_EQ(wait_for(prog, 30), 0);
  ASSERT_EQ(wait_for(tracer, 30), 0) << read_file(path("kscope.err"));
  events_ = parse_events_csv(read_file(path("events.csv")));
  truth_ = parse_truth(read_file(path("truth.txt")));
  auto seen = faults_on(truth_.pages);
  ASSERT_EQ(seen.size(), 128u);
  for (const auto& f : seen) EXPECT_EQ(f.segment, "anon");
  auto c = parse_summary(read_file(path("kscope.out")), static_cast<uint32_t>(prog));
  ASSERT_TRUE(c.found) << read_file(path("kscope.out"));
  ASSERT_TRUE(truth_.has_counters);
  // Ground truth: the process's own counters at the end minus what /proc said before attach.
  // The program reads its counters just before _exit(); the exit path itself (fflush of the
  // truth file, do_exit touching the robust-futex list and clear_child_tid) can still fault
  // once or twice after that reading, so the kernel's final delta may exceed it by that much.
  uint64_t self_measured = truth_.minflt + truth_.majflt - before->minflt - before->majflt;
  EXPECT_GE(c.kernel, self_measured);
  EXPECT_LE(c.kernel, self_measured + 2);
  EXPECT_LE(c.unseen, 2u) << "a plain process has no get_user_pages faults";
}

// A command that is gone within milliseconds: the libraries the loader mapped after execve were
// never in a /proc/PID/maps read kscope could make, yet every user-mode fault's instruction must
// lie in an executable mapping of the recording (learned from the kernel's mmap records), so it
// resolves to a binary.
TEST_F(FaultsRuntime, ShortLivedCommandsLibrariesAreKnown) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = trace_prog({"anon-write", "8", "1"}, {"-o", path("rec.kscope")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rec = read_recording(path("rec.kscope"));
  ASSERT_TRUE(rec) << rec.error().describe();
  ASSERT_FALSE(rec->faults.empty());
  uint32_t pid = rec->faults.front().pid;
  std::vector<Mapping> latest;
  for (const auto& snap : rec->mappings)
    if (snap.pid == pid) latest = snap.mappings;
  bool libc = false;
  for (const auto& m : latest)
    if (m.executable() && m.path.find("libc.so") != std::string::npos) libc = true;
  EXPECT_TRUE(libc) << "libc's executable mapping is missing from the recording";
  size_t user = 0;
  for (const auto& f : rec->faults) {
    if (f.pid != pid || f.mode != FaultMode::kUser) continue;
    ++user;
    bool in_exec = false;
    for (const auto& m : latest) in_exec = in_exec || (m.executable() && m.contains(f.ip));
    EXPECT_TRUE(in_exec) << std::hex << "ip 0x" << f.ip << " is in no executable mapping";
  }
  EXPECT_GT(user, 8u);
}

TEST_F(FaultsRuntime, FollowsChildrenOnlyWhenAsked) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = trace_prog({"fork-touch", "64"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(truth_.children.size(), 1u);
  uint32_t child = truth_.children[0];
  size_t child_anon_writes = 0;
  for (const auto& f : events_)
    if (f.pid == child && f.segment == "anon" && f.access == "write") ++child_anon_writes;
  EXPECT_GE(child_anon_writes, 64u) << "child faults missing with the default (follow)";

  r = trace_prog({"fork-touch", "64"}, {"--no-follow-children"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  child = truth_.children[0];
  for (const auto& f : events_) EXPECT_NE(f.pid, child) << "child traced with --no-follow-children";
}

TEST_F(FaultsRuntime, CtrlCStopsFlushesAndSummarizes) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int tracer =
      spawn({KSCOPE_BINARY, "faults", "-o", path("rec.kscope"), "--", kFaultprog, "loop-touch"},
            path("kscope.out"), path("kscope.err"));
  for (int i = 0; i < 1000 && read_file(path("kscope.err")).find("tracing") == std::string::npos;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  kill(tracer, SIGINT);
  int code = wait_for(tracer, 30);
  // The command was asked to terminate (SIGTERM) like perf record does: 128+15.
  EXPECT_EQ(code, 143) << read_file(path("kscope.err"));
  // With a COMMAND the summary and plot are on stderr; stdout is the command's alone.
  EXPECT_EQ(read_file(path("kscope.out")), "");
  auto out = read_file(path("kscope.err"));
  EXPECT_NE(out.find("kscope faults:"), std::string::npos) << out;
  EXPECT_NE(out.find("virtual page"), std::string::npos) << "plot missing\n" << out;
  auto rec = read_recording(path("rec.kscope"));
  ASSERT_TRUE(rec.ok()) << rec.error().describe();
  EXPECT_TRUE(rec->summary.complete);
  EXPECT_GT(rec->faults.size(), 100u);
  auto plot = run({KSCOPE_BINARY, "plot", path("rec.kscope"), "--by-segment"});
  EXPECT_EQ(plot.exit_code, 0) << plot.err;
  EXPECT_NE(plot.out.find("anon"), std::string::npos) << plot.out;
}

TEST_F(FaultsRuntime, ProcessExitingMidTraceEndsNormallyWithSummary) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int prog = spawn({kFaultprog, "loop-touch"});
  int tracer = spawn({KSCOPE_BINARY, "faults", "-p", std::to_string(prog), "--no-plot"},
                     path("kscope.out"), path("kscope.err"));
  for (int i = 0; i < 1000 && read_file(path("kscope.err")).find("tracing") == std::string::npos;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(prog, SIGKILL);
  wait_for(prog, 10);
  EXPECT_EQ(wait_for(tracer, 30), 0) << read_file(path("kscope.err"));
  auto out = read_file(path("kscope.out"));
  auto c = parse_summary(out, static_cast<uint32_t>(prog));
  ASSERT_TRUE(c.found) << out;
  EXPECT_GT(c.seen, 50u) << "loop-touch faults once per millisecond";
}

TEST_F(FaultsRuntime, OutputPathThatCannotBeWrittenFailsBeforeTracing) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = run({KSCOPE_BINARY, "faults", "-o", "/nonexistent-dir/rec.kscope", "--", kFaultprog,
                "anon-write", "8", "1", "--truth", path("truth.txt")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent-dir/rec.kscope"), std::string::npos) << r.err;
  // No summary (it would be on stderr with a COMMAND): nothing was traced.
  EXPECT_EQ(r.err.find("kscope faults:"), std::string::npos) << "no summary: nothing traced";
  EXPECT_EQ(r.out.find("kscope faults:"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(path("truth.txt"))) << "the command must not have run";
}

TEST_F(FaultsRuntime, WithoutPrivilegesSaysWhatIsMissing) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", KSCOPE_BINARY,
                "faults", "--", "true"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("CAP_BPF"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("sudo"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kscope::testing
