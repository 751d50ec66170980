// Symbols of real runs (issue 13): a faults recording names its addresses the same way after
// its binary was deleted and with another kernel's kallsyms in front of the reader; JIT code of
// `node --perf-basic-prof` is named by kscope faults and kscope top. Ground truth: the names the
// same recording gets while everything is still in place, and the perf map node itself wrote.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
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

// ---------------------------------------------------------------------------------------------
// The symbol sources table (recording block type 9, the report's "Symbol sources" panel, -v):
// faultprog, whole or stripped with its debug information in one place, recorded by kscope
// faults. Ground truth: where the test put the debug information, and the names block of the
// same recording (the addresses named per binary must be the names it holds for that binary).

int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// One HTTP GET on loopback; the status code, or -1.
int http_status(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int status = -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[64] = {};
      ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
      if (n > 12 && std::string_view(buf, 5) == "HTTP/") status = std::atoi(buf + 9);
    }
  }
  ::close(fd);
  return status;
}

std::string html_escaped(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

class SourcesTable : public ::testing::Test {
 protected:
  void SetUp() override {
    KSCOPE_REQUIRE_ROOT_OR_SKIP();
    KSCOPE_REQUIRE_TOOL_OR_SKIP(objcopy, "objcopy", "binutils");
    dir_ = temp_dir();
    full_ = dir_ + "/faultprog_full";
    stripped_ = dir_ + "/faultprog_stripped";
    debug_ = dir_ + "/faultprog.debug";
    fs::copy_file(std::string(KSCOPE_TEST_PROGS_DIR) + "/faultprog", full_);
    auto r = run({"/bin/sh", "-c",
                  "objcopy --only-keep-debug '" + full_ + "' '" + debug_ +
                      "' && strip --strip-all -o '" + stripped_ + "' '" + full_ + "'"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto id = read_build_id(stripped_);
    ASSERT_TRUE(id.ok()) << id.error().describe();
    build_id_ = *id;
    fs::create_directories(dir_ + "/empty");
  }
  void TearDown() override {
    if (server_pid_ > 0) {
      ::kill(server_pid_, SIGTERM);
      if (wait_for(server_pid_, 20) < 0) {
        ::kill(server_pid_, SIGKILL);
        wait_for(server_pid_, 20);
      }
    }
    if (!dir_.empty()) run({"/bin/rm", "-rf", dir_});
  }

  // kscope faults over `program anon-write 3000 7` with these environment variables (no debug
  // directory, debuginfod or debuglink beyond what the test sets up).
  Recording record(const std::string& program, std::vector<std::string> env) {
    std::vector<std::string> argv = {"/usr/bin/env", "-u", "DEBUGINFOD_URLS",
                                     "KSCOPE_DEBUG_DIR=" + dir_ + "/empty"};
    argv.insert(argv.end(), env.begin(), env.end());
    rec_ = dir_ + "/run.kscope";
    for (std::string a :
         {std::string(KSCOPE_BINARY), std::string("-v"), std::string("faults"),
          std::string("--no-plot"), std::string("-o"), rec_, std::string("--"), program,
          std::string("anon-write"), std::string("3000"), std::string("7")})
      argv.push_back(a);
    auto r = run(argv, 180);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    faults_err_ = r.err;
    auto recording = read_recording(rec_);
    EXPECT_TRUE(recording.ok());
    return recording.ok() ? std::move(*recording) : Recording{};
  }

  // The recording says `path` was named by `source` with `detail` (a substring), and counts
  // exactly the names its names block holds for that binary (which include the function the
  // program faults in). Then the binary and its debug information are deleted, and the report
  // and -v still say it, from the recording.
  void expect_source(const Recording& rec, const std::string& path, const std::string& source,
                     const std::string& detail) {
    EXPECT_EQ(rec.summary.version_minor, kRecordingVersionMinor);
    const BinarySymbolSource* row = nullptr;
    for (const BinarySymbolSource& s : rec.symbol_sources) {
      if (s.path == path) row = &s;
    }
    ASSERT_NE(row, nullptr) << "no symbol source row for " << path;
    EXPECT_EQ(row->source, source);
    EXPECT_NE(row->detail.find(detail), std::string::npos) << row->detail;
    EXPECT_EQ(row->build_id, build_id_);
    uint64_t named = 0;
    bool touch = false;
    for (const StoredSymbol& s : rec.symbols) {
      if (s.module_path != path || !s.resolved) continue;
      ++named;
      touch = touch || s.function == "touch_pages_permuted";
    }
    EXPECT_TRUE(touch) << "touch_pages_permuted not named";
    EXPECT_EQ(row->addresses_named, named);
    EXPECT_GT(named, 0u);
    std::string line = fmt::format("kscope: symbols: {} build-id {}: {}", path, build_id_, source);
    EXPECT_NE(faults_err_.find(line), std::string::npos) << faults_err_;

    run({"/bin/rm", "-rf", full_, stripped_, debug_, dir_ + "/root", dir_ + "/served",
         dir_ + "/cache"});
    auto r = run({KSCOPE_BINARY, "-v", "report", rec_, "-o", dir_ + "/report.html"}, 120);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string html = read_file(dir_ + "/report.html");
    size_t panel = html.find("id=\"symbol-sources\"");
    ASSERT_NE(panel, std::string::npos);
    std::string row_html = fmt::format(
        "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td "
        "class=\"mono\">{}</td>",
        html_escaped(path), build_id_, html_escaped(source), html_escaped(row->detail));
    EXPECT_NE(html.find(row_html, panel), std::string::npos) << row_html;
    EXPECT_NE(html.find("Names stored in the recording when it was made", panel),
              std::string::npos);
    std::string with_count = fmt::format("{}{}{}; {} addresses named", line,
                                         row->detail.empty() ? "" : " ", row->detail, named);
    EXPECT_NE(r.err.find(with_count), std::string::npos) << with_count << "\n" << r.err;
    // The report's data for scripts carries the same table.
    size_t data = html.find("\"symbol_sources\":");
    ASSERT_NE(data, std::string::npos);
    EXPECT_NE(html.find("\"named_at\":\"recording\"", data), std::string::npos);
  }

  // A real debuginfod on a free loopback port serving the debug files under `served`, up once
  // it serves this test's build-id (server_pid_, stopped by TearDown); its URL, or "" when it
  // would not start (five ports tried).
  std::string start_debuginfod(const std::string& debuginfod, const std::string& served) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      int port = free_loopback_port();
      int pid = spawn({debuginfod, "-F", served, "-p", std::to_string(port), "-d",
                       dir_ + "/db.sqlite", "-t", "0", "-g", "0"},
                      dir_ + "/debuginfod.out", dir_ + "/debuginfod.err");
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (std::chrono::steady_clock::now() < deadline) {
        if (http_status(port, "/buildid/" + build_id_ + "/debuginfo") == 200) {
          server_pid_ = pid;
          return "http://127.0.0.1:" + std::to_string(port);
        }
        if (wait_for(pid, 0.2) >= 0) break;  // exited: port taken? retry
      }
      ::kill(pid, SIGKILL);
      wait_for(pid, 20);
    }
    return "";
  }

  std::string dir_, full_, stripped_, debug_, build_id_, rec_, faults_err_;
  int server_pid_ = -1;
};

TEST_F(SourcesTable, PlainBinaryFromItsSymtab) {
  Recording rec = record(full_, {});
  expect_source(rec, full_, "symtab", "");
}

TEST_F(SourcesTable, StrippedBinaryFromABuildIdDebugFile) {
  std::string by_id =
      dir_ + "/root/.build-id/" + build_id_.substr(0, 2) + "/" + build_id_.substr(2) + ".debug";
  fs::create_directories(fs::path(by_id).parent_path());
  fs::copy_file(debug_, by_id);
  Recording rec = record(stripped_, {"KSCOPE_DEBUG_DIR=" + dir_ + "/root"});
  expect_source(rec, stripped_, "build-id debug file", by_id);
}

// MiniDebugInfo made the way distributions make it (nm, objcopy, xz).
TEST_F(SourcesTable, StrippedBinaryFromMiniDebugInfo) {
  KSCOPE_REQUIRE_TOOL_OR_SKIP(xz, "xz", "xz-utils");
  KSCOPE_REQUIRE_TOOL_OR_SKIP(nm, "nm", "binutils");
  std::string recipe =
      "cd '" + dir_ + "' && nm -D '" + full_ +
      "' --format=posix --defined-only | awk '{print $1}' | sort > dynsyms && nm '" + full_ +
      "' --format=posix --defined-only | awk '{ if ($2 == \"T\" || $2 == \"t\" || $2 == \"D\") "
      "print $1 }' | sort > funcsyms && comm -13 dynsyms funcsyms > keep_symbols && "
      "objcopy -S --remove-section .gdb_index --remove-section .comment "
      "--keep-symbols=keep_symbols '" +
      debug_ + "' mini_debuginfo && xz --keep mini_debuginfo && " +
      "objcopy --add-section .gnu_debugdata=mini_debuginfo.xz '" + stripped_ + "'";
  auto made = run({"/bin/sh", "-c", recipe});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  Recording rec = record(stripped_, {});
  expect_source(rec, stripped_, "minidebuginfo", "");
}

// A real debuginfod on loopback serving the debug file.
TEST_F(SourcesTable, StrippedBinaryFromDebuginfod) {
  KSCOPE_REQUIRE_TOOL_OR_SKIP(debuginfod, "debuginfod", "debuginfod");
  std::string served = dir_ + "/served";
  fs::create_directories(served);
  fs::copy_file(debug_, served + "/faultprog.debug");
  std::string url = start_debuginfod(debuginfod, served);
  ASSERT_FALSE(url.empty()) << read_file(dir_ + "/debuginfod.err");
  std::string cache = dir_ + "/cache";
  Recording rec = record(stripped_, {"DEBUGINFOD_URLS=" + url, "DEBUGINFOD_CACHE_PATH=" + cache});
  expect_source(rec, stripped_, "debuginfod", url + " (cached as " + cache + "/" + build_id_);
}

// Issue 13, "no file opened twice": one stripped binary with a build-id debug file, run by 21
// processes under three names: the file itself, a hard link, and a copy (another inode, same
// build-id). strace (an independent witness) sees every open of kscope and its children: the
// children exec the binaries (execve, not openat), so every openat of these paths is kscope's.
// `options` are kscope faults options beyond -o; returns the run's stdout and stderr.
class NoFileOpenedTwice : public SourcesTable {
 protected:
  std::string run_and_check(const std::vector<std::string>& options) {
    std::string by_id =
        dir_ + "/root/.build-id/" + build_id_.substr(0, 2) + "/" + build_id_.substr(2) + ".debug";
    fs::create_directories(fs::path(by_id).parent_path());
    fs::copy_file(debug_, by_id);
    std::string link = dir_ + "/faultprog_link", copy = dir_ + "/faultprog_copy";
    fs::create_hard_link(stripped_, link);
    fs::copy_file(stripped_, copy);
    std::string log = dir_ + "/strace.log";
    rec_ = dir_ + "/many.kscope";
    std::string workload = "for i in 1 2 3 4 5 6 7; do '" + stripped_ + "' anon-write 300 $i & '" +
                           link + "' anon-write 300 $i & '" + copy +
                           "' anon-write 300 $i & done; wait";
    // LeakSanitizer cannot run under ptrace: in a make check-sanitize build, the strace'd
    // kscope keeps every other ASan/UBSan check but not the leak check (elsewhere it has it).
    const char* asan = std::getenv("ASAN_OPTIONS");
    std::string no_leaks =
        std::string("ASAN_OPTIONS=") + (asan ? std::string(asan) + ":" : "") + "detect_leaks=0";
    std::vector<std::string> argv = {"/usr/bin/env",
                                     "-u",
                                     "DEBUGINFOD_URLS",
                                     "KSCOPE_DEBUG_DIR=" + dir_ + "/root",
                                     no_leaks,
                                     strace_,
                                     "-f",
                                     "-qq",
                                     "-y",  // each returned fd with the file it names
                                     "-e",
                                     "trace=open,openat,openat2",
                                     "-o",
                                     log,
                                     KSCOPE_BINARY,
                                     "faults",
                                     "--no-plot",
                                     "-o",
                                     rec_};
    argv.insert(argv.end(), options.begin(), options.end());
    for (std::string a : {"--", "/bin/sh", "-c"}) argv.push_back(a);
    argv.push_back(workload);
    auto r = run(argv, 300);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto rec = read_recording(rec_);
    EXPECT_TRUE(rec.ok());
    if (!rec.ok()) return {};
    // All three names were named (from the one debug file), in 21 processes.
    std::map<std::string, std::set<uint32_t>> named_pids;
    for (const StoredSymbol& s : rec->symbols) {
      if (s.function == "touch_pages_permuted") named_pids[s.module_path].insert(s.pid);
    }
    EXPECT_EQ(named_pids[stripped_].size(), 7u);
    EXPECT_EQ(named_pids[link].size(), 7u);
    EXPECT_EQ(named_pids[copy].size(), 7u);
    std::string trace = read_file(log);
    // Successful opens of the file `path` names: by that path, or by any other path that
    // gave a descriptor of it (strace -y prints "= FD</the/file>": /proc/PID/map_files/...
    // opens name the path the process mapped the file by).
    auto opens_of = [&trace](const std::string& path) {
      size_t n = 0;
      std::istringstream in(trace);
      for (std::string line; std::getline(in, line);) {
        // "...) = FD</file>", or a call another thread interrupted, resumed on a line of its
        // own and padded: "<... openat resumed>)     = FD</file>" (its "unfinished" line has
        // no result and is not counted).
        size_t result = line.rfind(" = ");
        if (line.find("open") == std::string::npos || result == std::string::npos ||
            result + 3 >= line.size() ||
            !std::isdigit(static_cast<unsigned char>(line[result + 3])))
          continue;
        size_t close = line.rfind(')', result);
        if (close == std::string::npos || line.find_first_not_of(' ', close + 1) != result + 1)
          continue;
        if (line.find("\"" + path + "\"") != std::string::npos ||
            line.find("<" + path + ">", result) != std::string::npos)
          ++n;
      }
      return n;
    };
    // On failure, strace's lines for the file say who opened it (pid) and how.
    auto lines_of = [&trace](const std::string& path) {
      std::string out;
      std::istringstream in(trace);
      for (std::string line; std::getline(in, line);)
        if (line.find("\"" + path + "\"") != std::string::npos ||
            line.find("<" + path + ">") != std::string::npos)
          out += line + "\n";
      return out;
    };
    EXPECT_EQ(opens_of(by_id), 1u) << "the debug file is read once for all three names";
    // With --stacks the unwind layer builds each file's table too, from the same open (the
    // run's shared open files): still one open per file, whichever reads it first and whether
    // through /proc/PID/map_files (while the process lives) or the path.
    EXPECT_EQ(opens_of(stripped_) + opens_of(link), 1u) << "one inode, two paths: opened once\n"
                                                        << lines_of(stripped_) << lines_of(link);
    EXPECT_EQ(opens_of(copy), 1u) << "the copy is opened once, for its build-id, and not parsed\n"
                                  << lines_of(copy);
    EXPECT_LE(opens_of("/proc/kallsyms"), 1u) << "kernel symbols are read once";
    // The copy was recognised by its build-id: one binary in the sources table.
    size_t rows = 0;
    for (const BinarySymbolSource& s : rec->symbol_sources) {
      rows += s.build_id == build_id_;
    }
    EXPECT_EQ(rows, 1u);
    return r.out + r.err;
  }

  void SetUp() override {
    SourcesTable::SetUp();
    if (IsSkipped()) return;
    KSCOPE_REQUIRE_TOOL_OR_SKIP(strace, "strace", "strace");
    strace_ = strace;
  }
  std::string strace_;
};

TEST_F(NoFileOpenedTwice, ForManyProcessesAndPaths) { run_and_check({}); }

// With --events, --symbols and --stacks the names streamed while tracing, those stored in the
// recording and the summary's come from one symbolizer: still one open per file, and the
// streamed names use the same debug directory as the recording's.
TEST_F(NoFileOpenedTwice, WithStacksAndStreamedSymbols) {
  std::string events = dir_ + "/events.txt";
  run_and_check({"--stacks", "--symbols", "--events", events});
  std::string text = read_file(events);
  size_t symbol_fields = 0, stack_fields = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find("touch_pages_permuted");
    if (at == std::string::npos) continue;
    ++symbol_fields;
    // The stack field follows the symbol field: its leaf frame names the function again (its
    // callers depend on the walker having the process's tables: not what this test is about).
    if (line.find(" touch_pages_permuted;", at + 1) != std::string::npos) ++stack_fields;
  }
  // 21 processes fault 300 pages each in touch_pages_permuted (anon-write).
  EXPECT_GE(symbol_fields, 21u * 300u) << text.substr(0, 2000);
  EXPECT_GE(stack_fields, 21u * 300u) << text.substr(0, 2000);
}

// Under sudo the environment is reset, so DEBUGINFOD_URLS is not kscope's: it is read from the
// invoking user's shell (the nearest ancestor running as SUDO_UID). sudo itself is not needed to
// make that situation: a parent running as nobody (real uid 65534, saved uid 0, as a setuid
// sudo runs) with DEBUGINFOD_URLS in its environment starts kscope as root with an environment
// as sudo leaves it (SUDO_UID, SUDO_USER, root's HOME, no DEBUGINFOD_URLS). The debug file
// goes to root's debuginfod cache (kscope runs as root: nothing root-owned is written into the
// user's home), and the function is named.
TEST_F(SourcesTable, UnderSudoTheInvokingUsersDebuginfodUrlsApply) {
  KSCOPE_REQUIRE_TOOL_OR_SKIP(debuginfod, "debuginfod", "debuginfod");
  std::string python = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "";
  if (python.empty()) GTEST_SKIP() << "/usr/bin/python3 not found";
  std::string served = dir_ + "/served";
  fs::create_directories(served);
  fs::copy_file(debug_, served + "/faultprog.debug");
  std::string url = start_debuginfod(debuginfod, served);
  ASSERT_FALSE(url.empty()) << read_file(dir_ + "/debuginfod.err");
  std::string user_home = dir_ + "/userhome", root_home = dir_ + "/roothome";
  fs::create_directories(user_home);
  fs::create_directories(root_home);
  ASSERT_EQ(::chown(user_home.c_str(), 65534, 65534), 0);
  ::chmod(dir_.c_str(), 0755);
  rec_ = dir_ + "/sudo.kscope";
  std::string script =
      "import os, sys\n"
      "os.setresgid(65534, 65534, 0)\n"
      "os.setresuid(65534, 65534, 0)\n"
      "pid = os.fork()\n"
      "if pid == 0:\n"
      "    os.setresuid(0, 0, 0)\n"
      "    os.setresgid(0, 0, 0)\n"
      "    env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'HOME': sys.argv[1],\n"
      "           'SUDO_UID': '65534', 'SUDO_GID': '65534', 'SUDO_USER': 'nobody',\n"
      "           'KSCOPE_DEBUG_DIR': sys.argv[2]}\n"
      "    os.execve(sys.argv[3], sys.argv[3:], env)\n"
      "_, status = os.waitpid(pid, 0)\n"
      "sys.exit(os.waitstatus_to_exitcode(status))\n";
  auto r = run({"/usr/bin/env",
                "-i",
                "PATH=/usr/bin:/bin",
                "HOME=" + user_home,
                "DEBUGINFOD_URLS=" + url,
                python,
                "-c",
                script,
                root_home,
                dir_ + "/empty",
                KSCOPE_BINARY,
                "faults",
                "--no-plot",
                "-o",
                rec_,
                "--",
                stripped_,
                "anon-write",
                "3000",
                "7"},
               180);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("fetching debug info for " + stripped_ + " from debuginfod"),
            std::string::npos)
      << r.err;
  auto rec = read_recording(rec_);
  ASSERT_TRUE(rec.ok());
  bool named = false;
  for (const StoredSymbol& s : rec->symbols) {
    named = named || (s.module_path == stripped_ && s.function == "touch_pages_permuted");
  }
  EXPECT_TRUE(named);
  std::string cached = root_home + "/.cache/debuginfod_client/" + build_id_ + "/debuginfo";
  struct stat st {};
  ASSERT_EQ(::stat(cached.c_str(), &st), 0) << cached;
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_FALSE(fs::exists(user_home + "/.cache")) << "root wrote into the user's home";

  // The control: without SUDO_UID nothing is asked (kscope's own environment has no URLs).
  std::string control =
      "import os, sys\n"
      "env = {'PATH': '/usr/bin:/bin', 'HOME': sys.argv[1], 'KSCOPE_DEBUG_DIR': sys.argv[2]}\n"
      "os.execve(sys.argv[3], sys.argv[3:], env)\n";
  r = run({"/usr/bin/env", "-i", "PATH=/usr/bin:/bin", "DEBUGINFOD_URLS=" + url, python, "-c",
           control, root_home + "2", dir_ + "/empty", KSCOPE_BINARY, "faults", "--no-plot", "-o",
           dir_ + "/control.kscope", "--", stripped_, "anon-write", "300", "7"},
          180);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("debuginfod"), std::string::npos) << r.err;
}

// A recording cut short (kscope faults killed with SIGKILL) has no stored names: report and
// export name its intact records from this machine's files and say so; with the binary deleted
// the names are gone (the control: they really come from the files at report time).
TEST_F(SourcesTable, CutShortRecordingIsNamedAtReportTimeAndSaysSo) {
  int target = spawn({full_, "loop-touch"});
  rec_ = dir_ + "/killed.kscope";
  int tracer =
      spawn({KSCOPE_BINARY, "faults", "--no-plot", "-o", rec_, "-p", std::to_string(target)},
            dir_ + "/faults.out", dir_ + "/faults.err");
  size_t faults = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < deadline && faults < 100) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (auto partial = read_recording(rec_); partial.ok()) faults = partial->faults.size();
  }
  ::kill(tracer, SIGKILL);
  wait_for(tracer, 30);
  ::kill(target, SIGKILL);
  wait_for(target, 30);
  ASSERT_GE(faults, 100u) << read_file(dir_ + "/faults.err");
  auto rec = read_recording(rec_);
  ASSERT_TRUE(rec.ok()) << rec.error().describe();
  EXPECT_FALSE(rec->summary.complete);
  EXPECT_TRUE(rec->symbols.empty());
  EXPECT_TRUE(rec->symbol_sources.empty());

  // Named now, from the binary still in place; the reader says where the names come from.
  auto r = run({KSCOPE_BINARY, "report", rec_, "-o", dir_ + "/killed.html"}, 120);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("kscope: symbols: The recording was cut short"), std::string::npos) << r.err;
  std::string html = read_file(dir_ + "/killed.html");
  size_t panel = html.find("id=\"symbol-sources\"");
  ASSERT_NE(panel, std::string::npos);
  EXPECT_NE(html.find("named at report time from this machine", panel), std::string::npos);
  EXPECT_NE(html.find("<tr><td class=\"mono\">" + html_escaped(full_) + "</td>", panel),
            std::string::npos);
  EXPECT_NE(html.find("\"named_at\":\"report\""), std::string::npos);
  r = run({KSCOPE_BINARY, "export", rec_, "--format", "sqlite", "-o", dir_ + "/killed.db"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("cut short"), std::string::npos) << r.err;
  std::string frames = frames_of(dir_ + "/killed.db");
  EXPECT_NE(frames.find("|faultprog_full|" + full_ + "|"), std::string::npos) << frames;
  EXPECT_NE(frames.find("|main|"), std::string::npos) << frames;

  // With the binary gone, nothing names its code: the names above were the reporting machine's.
  fs::remove(full_);
  r = run({KSCOPE_BINARY, "-v", "export", rec_, "--format", "sqlite", "-o", dir_ + "/gone.db"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("cut short"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kscope: symbols: " + full_ + ": none cannot open"), std::string::npos)
      << r.err;
  EXPECT_EQ(frames_of(dir_ + "/gone.db").find("|main|"), std::string::npos);
}

}  // namespace
}  // namespace kscope::testing
