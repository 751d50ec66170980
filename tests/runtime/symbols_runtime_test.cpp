// Symbols of real runs (issue 13): a faults recording names its addresses the same way after
// its binary was deleted and with another kernel's kallsyms in front of the reader; JIT code of
// `node --perf-basic-prof` is named by kscope faults and kscope top. Ground truth: the names the
// same recording gets while everything is still in place, and the perf map node itself wrote.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "model/fault_profile.h"
#include "model/recording.h"
#include "runtime_env.h"
#include "subprocess.h"
#include "symbols/fault_locations.h"
#include "symbols/symbolizer.h"
#include "synthetic_recording.h"
#include "tools.h"

namespace kscope::testing {
namespace {

namespace fs = std::filesystem;

// Every row of the frames table of a sqlite export, one line each, in id order.
std::string frames_of(const std::string& db_path) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return "cannot open " + db_path;
  }
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT kernel, module, module_path, build_id, function, offset, resolved "
                     "FROM frames ORDER BY id",
                     -1, &stmt, nullptr);
  while (stmt && sqlite3_step(stmt) == SQLITE_ROW) {
    for (int c = 0; c < 7; ++c) {
      const unsigned char* text = sqlite3_column_text(stmt, c);
      out += text ? reinterpret_cast<const char*>(text) : "NULL";
      out += c == 6 ? "\n" : "|";
    }
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

// /proc/kallsyms with every address moved by 16 MiB: the symbols of "another boot".
void write_shifted_kallsyms(const std::string& path) {
  std::ifstream in("/proc/kallsyms");
  std::ofstream out(path);
  std::string line;
  while (std::getline(in, line)) {
    size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    uint64_t addr = std::stoull(line.substr(0, space), nullptr, 16);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(addr + (16u << 20)));
    out << buf << line.substr(space) << "\n";
  }
}

TEST(SymbolsRuntime, RecordingKeepsItsNamesAfterTheBinaryIsGoneAndOnAnotherBoot) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  std::string dir = temp_dir();
  std::string copy = dir + "/faultprog_copy";
  fs::copy_file(std::string(KSCOPE_TEST_PROGS_DIR) + "/faultprog", copy);
  std::string rec = dir + "/run.kscope";
  // anon-write: 3000 faults in touch_pages_permuted. dd then read()s a file into a fresh 1 MiB
  // buffer, so some faults are taken in the kernel (copy_to_user), named through kallsyms.
  auto r = run({KSCOPE_BINARY, "faults", "--no-plot", "-o", rec, "--", "/bin/sh", "-c",
                "'" + copy + "' anon-write 3000 7 && dd if='" + copy +
                    "' of=/dev/null bs=1M count=1 status=none"},
               120);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // The recording holds the names, in the new minor version.
  auto recording = read_recording(rec);
  ASSERT_TRUE(recording.ok()) << recording.error().describe();
  EXPECT_EQ(recording->summary.version_minor, kRecordingVersionMinor);
  EXPECT_EQ(recording->summary.skipped_blocks, 0u);
  ASSERT_FALSE(recording->symbols.empty());
  bool named_touch = false;
  for (const StoredSymbol& s : recording->symbols) {
    if (s.function == "touch_pages_permuted") {
      named_touch = true;
      EXPECT_EQ(s.module, "faultprog_copy");
      EXPECT_EQ(s.build_id, read_build_id(copy).value());
    }
  }
  EXPECT_TRUE(named_touch);

  // Ground truth: what the reader names while the binary and this boot's kallsyms are there.
  r = run({KSCOPE_BINARY, "export", rec, "--format", "sqlite", "-o", dir + "/before.db"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string before = frames_of(dir + "/before.db");
  ASSERT_NE(before.find("|touch_pages_permuted|"), std::string::npos) << before;

  // The binary is deleted and another kernel's kallsyms is put in front of the reader.
  fs::remove(copy);
  std::string fake_kallsyms = dir + "/kallsyms";
  write_shifted_kallsyms(fake_kallsyms);
  r = run({"/usr/bin/env", "KSCOPE_KALLSYMS=" + fake_kallsyms, KSCOPE_BINARY, "export", rec,
           "--format", "sqlite", "-o", dir + "/after.db"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(frames_of(dir + "/after.db"), before);
  r = run({"/usr/bin/env", "KSCOPE_KALLSYMS=" + fake_kallsyms, KSCOPE_BINARY, "report", rec, "-o",
           dir + "/report.html"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(read_file(dir + "/report.html").find("touch_pages_permuted"), std::string::npos);

  // The control: the same recording without its stored names cannot be named any more, and
  // its kernel addresses get other names from the fake kallsyms (so the test can fail).
  Recording bare = *recording;
  bare.symbols.clear();
  SymbolizerOptions options;
  options.kallsyms_path = fake_kallsyms;
  Symbolizer symbolizer(options);
  FaultLocations locations = resolve_fault_locations(bare, symbolizer);
  bool bare_named_touch = false;
  for (const ProfileFrame& f : locations.frames) {
    bare_named_touch = bare_named_touch || f.function == "touch_pages_permuted";
  }
  EXPECT_FALSE(bare_named_touch);
  Symbolizer stored(options);
  stored.add_stored_symbols(recording->symbols);
  size_t kernel_checked = 0;
  for (const StoredSymbol& s : recording->symbols) {
    if (!s.kernel) continue;
    ++kernel_checked;
    Symbol named = stored.resolve_kernel(s.ip);
    EXPECT_EQ(named.function, s.function);
    EXPECT_EQ(named.offset, s.offset);
    EXPECT_EQ(named.module, s.module);
    EXPECT_NE(symbolizer.resolve_kernel(s.ip).format(), named.format()) << named.format();
  }
  EXPECT_GE(kernel_checked, 1u)
      << "no fault was taken in the kernel: the kallsyms part is untested";
  run({"/bin/rm", "-rf", dir});
}

// A JavaScript function in a hot loop, writing to fresh pages of a large typed array (so the
// page faults are taken by its JIT code) and spinning on a CPU shared with a competitor (so it
// is preempted in its JIT code and kscope top sees it there).
constexpr const char* kHotLoopJs = R"js(
function kscopeHotLoop(n) {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i += 512) a[i] = i;
  return a[n - 512];
}
const end = Date.now() + Number(process.argv[2]) * 1000;
let sum = 0;
while (Date.now() < end) sum += kscopeHotLoop(1 << 21);
console.log(sum > 0 ? "done" : "zero");
)js";

class NodeJit : public ::testing::Test {
 protected:
  void SetUp() override {
    KSCOPE_REQUIRE_ROOT_OR_SKIP();
    node_ = find_tool("node");
    if (node_.empty()) {
      if (bpf_required())
        FAIL() << "KSCOPE_REQUIRE_BPF=1 but node (Debian package nodejs) is missing";
      GTEST_SKIP() << "node not found (Debian package nodejs)";
    }
    dir_ = temp_dir();
    script_ = dir_ + "/hot.js";
    std::ofstream(script_) << kHotLoopJs;
  }
  void TearDown() override {
    for (int pid : perf_maps_of_) fs::remove("/tmp/perf-" + std::to_string(pid) + ".map");
    if (!dir_.empty()) run({"/bin/rm", "-rf", dir_});
  }
  // The names node wrote for kscopeHotLoop in its perf map (ground truth).
  static bool map_names_hot_loop(int pid) {
    std::string text = read_file("/tmp/perf-" + std::to_string(pid) + ".map");
    return text.find("kscopeHotLoop") != std::string::npos;
  }

  std::string node_, dir_, script_;
  std::vector<int> perf_maps_of_;
};

TEST_F(NodeJit, FaultsNamesTheJitFunction) {
  auto r = run({KSCOPE_BINARY, "faults", "--no-plot", "--top", "20", "-o", dir_ + "/node.kscope",
                "--", node_, "--perf-basic-prof", script_, "3"},
               180);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto recording = read_recording(dir_ + "/node.kscope");
  ASSERT_TRUE(recording.ok());
  ASSERT_FALSE(recording->faults.empty());
  int pid = static_cast<int>(recording->faults.front().pid);  // node: the only traced process
  perf_maps_of_.push_back(pid);
  ASSERT_TRUE(map_names_hot_loop(pid)) << "node wrote no perf map entry for kscopeHotLoop";
  // The summary's top locations name it, as JIT code (with a COMMAND the summary is on stderr).
  EXPECT_NE(r.err.find("kscopeHotLoop"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("([jit])"), std::string::npos) << r.err;
  // And the recording stored the name: reported after the perf map is gone.
  fs::remove("/tmp/perf-" + std::to_string(pid) + ".map");
  r = run({KSCOPE_BINARY, "export", dir_ + "/node.kscope", "--format", "sqlite", "-o",
           dir_ + "/node.db"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(frames_of(dir_ + "/node.db").find("kscopeHotLoop"), std::string::npos);
}

TEST_F(NodeJit, TopNamesTheJitFunction) {
  KSCOPE_REQUIRE_TOOL_OR_SKIP(taskset, "taskset", "util-linux");
  // node and a competitor on one CPU: node is preempted many times a second, in its loop.
  int node_pid = spawn({taskset, "-c", "0", node_, "--perf-basic-prof", script_, "8"},
                       dir_ + "/node.out", dir_ + "/node.err");
  int spin_pid = spawn({taskset, "-c", "0", "/bin/sh", "-c", "while :; do :; done"});
  perf_maps_of_.push_back(node_pid);
  // Let V8 optimize the function (and write its map entry) before measuring.
  for (int i = 0; i < 100 && !map_names_hot_loop(node_pid); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto r = run({KSCOPE_BINARY, "top", "--once", "--duration", "3", "--format", "json", "-n", "50",
                "-p", std::to_string(node_pid)},
               60);
  ::kill(spin_pid, SIGKILL);
  wait_for(spin_pid, 10);
  wait_for(node_pid, 30);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(map_names_hot_loop(node_pid)) << "node wrote no perf map entry for kscopeHotLoop";
  auto table = nlohmann::json::parse(r.out.substr(0, r.out.find('\n')), nullptr, false);
  ASSERT_FALSE(table.is_discarded()) << r.out;
  bool named = false;
  for (const auto& task : table["tasks"]) {
    for (const auto& frame : task["user_stack"]) {
      std::string symbol = frame.value("symbol", "");
      if (symbol.find("kscopeHotLoop") != std::string::npos) {
        named = true;
        EXPECT_EQ(frame.value("module", ""), "[jit]");
      }
    }
  }
  EXPECT_TRUE(named) << r.out;
}

}  // namespace
}  // namespace kscope::testing
