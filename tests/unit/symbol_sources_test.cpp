// Where the names of stripped binaries come from (issue 13): MiniDebugInfo made the way
// distributions make it, a real debuginfod server on loopback (and broken ones), Debian's
// libc6-dbg, and JIT perf maps. Ground truth: the addresses tests/progs/sym_target prints of its
// own functions, nm on the debug files, and map files the tests write.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime_env.h"
#include "subprocess.h"
#include "symbols/debuginfod.h"
#include "symbols/elf_binary.h"
#include "symbols/perf_map.h"
#include "symbols/proc_maps.h"
#include "symbols/symbolizer.h"
#include "temp_dir.h"
#include "tools.h"

namespace kscope {
namespace {

namespace fs = std::filesystem;
using kscope::testing::run;
using kscope::testing::RunResult;

constexpr uint32_t kExitedPid = 4000002;
const std::string kProgsDir = KSCOPE_TEST_PROGS_DIR;

std::string prog(const std::string& name) { return kProgsDir + "/" + name; }

class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("kscope_src") {}
};

RunResult sh(const std::string& command) { return run({"/bin/sh", "-c", command}, 120); }

// What sym_target printed: its functions' runtime addresses and its /proc/self/maps.
struct TargetRun {
  std::map<std::string, uint64_t> funcs;
  std::vector<Mapping> mappings;
};

std::optional<TargetRun> run_target(const std::string& path) {
  RunResult r = run({path}, 60);
  if (r.exit_code != 0) return std::nullopt;
  size_t maps_at = r.out.find("\nmaps\n");
  if (maps_at == std::string::npos) return std::nullopt;
  TargetRun t;
  std::istringstream header(r.out.substr(0, maps_at));
  std::string kind, name, value;
  while (header >> kind >> name >> value) {
    if (kind == "func") t.funcs[name] = std::stoull(value, nullptr, 16);
  }
  auto mappings = parse_proc_maps(r.out.substr(maps_at + 6));
  if (!mappings) return std::nullopt;
  t.mappings = *mappings;
  return t;
}

// Captures what a Symbolizer or DebuginfodClient says (its `messages` stream).
class Messages {
 public:
  Messages() : file_(std::tmpfile()) {}
  ~Messages() {
    if (file_) std::fclose(file_);
  }
  FILE* file() { return file_; }
  std::string text() {
    std::fflush(file_);
    std::rewind(file_);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) out.append(buf, n);
    return out;
  }
  size_t lines_containing(const std::string& what) {
    std::istringstream in(text());
    size_t n = 0;
    for (std::string line; std::getline(in, line);) n += line.find(what) != std::string::npos;
    return n;
  }

 private:
  FILE* file_;
};

// sym_target stripped of everything (no .symtab, no DWARF, no debuglink), and its debug file.
class StrippedTarget : public ::testing::Test {
 protected:
  void SetUp() override {
    KSCOPE_REQUIRE_TOOL_OR_SKIP(objcopy, "objcopy", "binutils");
    binary_ = dir_ / "sym_stripped_target";
    debug_ = dir_ / "sym_stripped_target.debug";
    ASSERT_EQ(sh("objcopy --only-keep-debug '" + prog("sym_target") + "' '" + debug_ +
                 "' && strip --strip-all -o '" + binary_ + "' '" + prog("sym_target") + "'")
                  .exit_code,
              0);
    auto id = read_build_id(binary_);
    ASSERT_TRUE(id.ok()) << id.error().describe();
    build_id_ = *id;
    auto target = run_target(binary_);
    ASSERT_TRUE(target) << "could not run " << binary_;
    target_ = *target;
  }

  // Resolves sym_target_beta+2 of the stripped binary with these options.
  Symbol resolve_beta(SymbolizerOptions options, SymbolDetail detail = SymbolDetail::kSourceLine) {
    Symbolizer symbolizer(std::move(options));
    symbolizer.set_mappings(kExitedPid, target_.mappings);
    return symbolizer.resolve_user(kExitedPid, target_.funcs.at("sym_target_beta") + 2, detail);
  }

  static SymbolizerOptions nothing_else(const std::string& empty_root) {
    SymbolizerOptions options;
    options.debug_search.debug_dirs = {empty_root};
    options.debug_search.use_debuglink = false;
    return options;
  }

  TempDir dir_;
  std::string binary_, debug_, build_id_;
  TargetRun target_;
};

TEST_F(StrippedTarget, NothingNamesItWithoutADebugSource) {
  Symbol s = resolve_beta(nothing_else(dir_ / "empty"));
  EXPECT_FALSE(s.resolved) << s.format();
  EXPECT_EQ(s.module, "sym_stripped_target");
}

// MiniDebugInfo as Fedora's find-debuginfo makes it: the function symbols that .dynsym lacks,
// in a symbol-table-only ELF, xz-compressed into .gnu_debugdata of the stripped binary.
TEST_F(StrippedTarget, NamedFromMiniDebugInfo) {
  KSCOPE_REQUIRE_TOOL_OR_SKIP(xz, "xz", "xz-utils");
  KSCOPE_REQUIRE_TOOL_OR_SKIP(nm, "nm", "binutils");
  std::string d = dir_.path();
  std::string full = prog("sym_target");
  std::string recipe =
      "cd '" + d + "' && nm -D '" + full +
      "' --format=posix --defined-only | awk '{print $1}' | sort > dynsyms && nm '" + full +
      "' --format=posix --defined-only | awk '{ if ($2 == \"T\" || $2 == \"t\" || $2 == \"D\") "
      "print $1 }' | sort > funcsyms && comm -13 dynsyms funcsyms > keep_symbols && "
      "objcopy --only-keep-debug '" +
      full +
      "' debug && "
      "objcopy -S --remove-section .gdb_index --remove-section .comment "
      "--keep-symbols=keep_symbols debug mini_debuginfo && xz --keep mini_debuginfo && "
      "objcopy --add-section .gnu_debugdata=mini_debuginfo.xz '" +
      binary_ + "'";
  RunResult made = sh(recipe);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_NE(sh("grep -c sym_target_beta '" + d + "/keep_symbols'").out, "0\n");

  Symbol s = resolve_beta(nothing_else(dir_ / "empty"));
  EXPECT_EQ(s.format(), "sym_target_beta+0x2 (sym_stripped_target)");
  EXPECT_FALSE(s.file.has_value()) << "MiniDebugInfo has no line table";
  auto binary = ElfBinary::open(binary_, nothing_else(dir_ / "empty").debug_search);
  ASSERT_TRUE(binary.ok());
  EXPECT_EQ((*binary)->symbol_source(), ElfBinary::SymbolSource::kMiniDebugInfo);
  EXPECT_NE((*binary)->describe_sources().find("MiniDebugInfo"), std::string::npos);

  // Turned off, or damaged: nothing (and no crash on the damaged stream).
  SymbolizerOptions off = nothing_else(dir_ / "empty");
  off.debug_search.use_minidebuginfo = false;
  EXPECT_FALSE(resolve_beta(off).resolved);
  std::string garbage = d + "/garbage.xz";
  std::ofstream(garbage) << "\xfd"
                            "7zXZ not really xz";
  std::string damaged = d + "/damaged";
  ASSERT_EQ(sh("objcopy --update-section .gnu_debugdata='" + garbage + "' '" + binary_ + "' '" +
               damaged + "'")
                .exit_code,
            0);
  auto opened = ElfBinary::open(damaged, off.debug_search);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ((*opened)->symbol_source(), ElfBinary::SymbolSource::kNone);
}

// --debug-dir / KSCOPE_DEBUG_DIR through the command line: a faults recording of the stripped
// binary exported with its functions named from a build-id tree the test lays out.
TEST_F(StrippedTarget, DebugDirOptionNamesFunctionsInExports) {
  std::string root = dir_ / "root";
  std::string by_id =
      root + "/.build-id/" + build_id_.substr(0, 2) + "/" + build_id_.substr(2) + ".debug";
  fs::create_directories(fs::path(by_id).parent_path());
  fs::copy_file(debug_, by_id);
  SymbolizerOptions options = nothing_else(dir_ / "empty");
  options.debug_search.debug_dirs = {root};
  Symbol s = resolve_beta(options);
  EXPECT_EQ(s.format(), "sym_target_beta+0x2 (sym_stripped_target)");
  EXPECT_TRUE(s.file && s.file->ends_with("sym_target.c"));
  auto binary = ElfBinary::open(binary_, options.debug_search);
  ASSERT_TRUE(binary.ok());
  EXPECT_EQ((*binary)->debug_origin(), ElfBinary::DebugOrigin::kBuildIdDir);
  EXPECT_NE((*binary)->describe_sources().find("by build-id " + by_id), std::string::npos);
}

// The same binary under three paths (itself, a hard link, a copy: same build-id, another inode)
// in three processes is read once, and the sources table counts the addresses each named. A
// copy owned by another user is not taken for it (a forged build-id must not name root's code).
TEST_F(StrippedTarget, CopiesAreReadOnceByBuildIdAndCounted) {
  std::string root = dir_ / "root";
  std::string by_id =
      root + "/.build-id/" + build_id_.substr(0, 2) + "/" + build_id_.substr(2) + ".debug";
  fs::create_directories(fs::path(by_id).parent_path());
  fs::copy_file(debug_, by_id);
  std::string link = dir_ / "hard_link", copy = dir_ / "copy", other = dir_ / "other_owner";
  fs::create_hard_link(binary_, link);
  fs::copy_file(binary_, copy);
  fs::copy_file(binary_, other);
  SymbolizerOptions options = nothing_else(dir_ / "empty");
  options.debug_search.debug_dirs = {root};
  auto mapped_as = [this](const std::string& path) {
    std::vector<Mapping> maps = target_.mappings;
    for (Mapping& m : maps) {
      if (m.path == binary_) {
        m.path = path;
        struct stat st {};
        ::stat(path.c_str(), &st);
        m.inode = st.st_ino;
      }
    }
    return maps;
  };
  uint64_t beta = target_.funcs.at("sym_target_beta");
  {
    Symbolizer symbolizer(options);
    symbolizer.set_mappings(1, mapped_as(binary_));
    symbolizer.set_mappings(2, mapped_as(link));
    symbolizer.set_mappings(3, mapped_as(copy));
    for (uint32_t pid : {1u, 2u, 3u}) {
      EXPECT_EQ(symbolizer.resolve_user(pid, beta + 2, SymbolDetail::kFunction).function,
                "sym_target_beta");
      EXPECT_EQ(symbolizer.resolve_user(pid, beta + 3, SymbolDetail::kFunction).function,
                "sym_target_beta");
    }
    // The same address again is not counted again.
    symbolizer.resolve_user(1, beta + 2, SymbolDetail::kFunction);
    EXPECT_EQ(symbolizer.stats().binaries_loaded, 1u);
    std::vector<BinarySource> sources = symbolizer.binary_sources();
    ASSERT_EQ(sources.size(), 1u);
    EXPECT_EQ(sources[0].build_id, build_id_);
    EXPECT_EQ(sources[0].source, "build-id debug file");
    EXPECT_EQ(sources[0].detail, by_id);
    EXPECT_EQ(sources[0].addresses_named, 6u);
    // What was named in a process is forgotten with it (a long run does not keep every
    // (pid, address) it ever named): a new process 1 counts its addresses again.
    symbolizer.forget_process(1);
    symbolizer.set_mappings(1, mapped_as(binary_));
    symbolizer.resolve_user(1, beta + 2, SymbolDetail::kFunction);
    EXPECT_EQ(symbolizer.binary_sources().at(0).addresses_named, 7u);
  }
  if (::geteuid() != 0) return;  // chown needs root
  ASSERT_EQ(::chown(other.c_str(), 65534, 65534), 0);
  Symbolizer symbolizer(options);
  symbolizer.set_mappings(1, mapped_as(binary_));
  symbolizer.set_mappings(2, mapped_as(other));
  symbolizer.resolve_user(1, beta + 2, SymbolDetail::kFunction);
  symbolizer.resolve_user(2, beta + 2, SymbolDetail::kFunction);
  EXPECT_EQ(symbolizer.stats().binaries_loaded, 2u);
}

// ---------------------------------------------------------------------------------------------
// debuginfod

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

// A loopback listening socket: `answer` decides what each connection gets (nothing = the
// connection is accepted by the kernel and never answered).
class FakeServer {
 public:
  explicit FakeServer(std::string answer, bool accept_connections) : answer_(std::move(answer)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    if (accept_connections) {
      thread_ = std::thread([this] {
        for (;;) {
          int c = ::accept(fd_, nullptr, nullptr);
          if (c < 0 || stop_) {
            if (c >= 0) ::close(c);
            return;
          }
          char buf[4096];
          std::string response =
              "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(answer_.size()) +
              "\r\nConnection: close\r\n\r\n" + answer_;
          // The request (one read is enough), then the answer; a client gone is its business.
          if (::recv(c, buf, sizeof buf, 0) > 0) {
            ::send(c, response.data(), response.size(), MSG_NOSIGNAL);
          }
          ::close(c);
        }
      });
    }
  }
  ~FakeServer() {
    stop_ = true;
    if (thread_.joinable()) {
      // Wake the accept() with one last connection.
      int c = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(port_));
      if (::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        ::shutdown(fd_, SHUT_RDWR);
      ::close(c);
      thread_.join();
    }
    ::close(fd_);
  }
  int port() const { return port_; }

 private:
  std::string answer_;
  int fd_ = -1;
  int port_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

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

class Debuginfod : public StrippedTarget {
 protected:
  void SetUp() override {
    StrippedTarget::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    cache_ = dir_ / "cache";
    ::setenv("DEBUGINFOD_CACHE_PATH", cache_.c_str(), 1);
  }
  void TearDown() override {
    if (server_pid_ > 0) {
      ::kill(server_pid_, SIGTERM);
      if (kscope::testing::wait_for(server_pid_, 20) < 0) {
        ::kill(server_pid_, SIGKILL);
        kscope::testing::wait_for(server_pid_, 20);
      }
    }
    ::unsetenv("DEBUGINFOD_CACHE_PATH");
    ::unsetenv("DEBUGINFOD_URLS");
    ::unsetenv("DEBUGINFOD_TIMEOUT");
  }
  // A real debuginfod serving the debug file of the stripped binary.
  void start_server() {
    KSCOPE_REQUIRE_TOOL_OR_SKIP(debuginfod, "debuginfod", "debuginfod");
    std::string served = dir_ / "served";
    fs::create_directories(served);
    fs::copy_file(debug_, served + "/sym_stripped_target.debug");
    for (int attempt = 0; attempt < 5 && server_pid_ <= 0; ++attempt) {
      port_ = free_loopback_port();
      int pid = kscope::testing::spawn({debuginfod, "-F", served, "-p", std::to_string(port_), "-d",
                                        dir_ / "db.sqlite", "-t", "0", "-g", "0"},
                                       dir_ / "debuginfod.out", dir_ / "debuginfod.err");
      // Ready when it has scanned the directory and serves the file (under load: seconds).
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (std::chrono::steady_clock::now() < deadline) {
        if (http_status(port_, "/buildid/" + build_id_ + "/debuginfo") == 200) {
          server_pid_ = pid;
          break;
        }
        if (kscope::testing::wait_for(pid, 0.2) >= 0) break;  // exited: port taken? retry
      }
      if (server_pid_ <= 0) {
        ::kill(pid, SIGKILL);
        kscope::testing::wait_for(pid, 20);
      }
    }
    ASSERT_GT(server_pid_, 0) << "debuginfod did not serve the file: "
                              << kscope::testing::read_file(dir_ / "debuginfod.err");
  }
  SymbolizerOptions with_urls(const std::string& urls, Messages& messages, int timeout_s = 3) {
    SymbolizerOptions options = nothing_else(dir_ / "empty");
    options.debuginfod.urls = urls;
    options.debuginfod.timeout_s = timeout_s;
    options.debuginfod.messages = messages.file();
    return options;
  }

  std::string cache_;
  int server_pid_ = -1;
  int port_ = -1;
};

TEST_F(Debuginfod, RealServerOnLoopbackNamesFunctionsAndLines) {
  start_server();
  if (IsSkipped() || HasFatalFailure()) return;
  Messages messages;
  std::string url = "http://127.0.0.1:" + std::to_string(port_);
  Symbol s = resolve_beta(with_urls(url, messages));
  EXPECT_EQ(s.format(), "sym_target_beta+0x2 (sym_stripped_target)");
  EXPECT_TRUE(s.file && s.file->ends_with("sym_target.c"));
  EXPECT_EQ(messages.lines_containing("fetching debug info for " + binary_), 1u) << messages.text();
  EXPECT_EQ(messages.lines_containing("going on without it"), 0u) << messages.text();
  // It went to debuginfod's cache, where the next run (and gdb, perf) find it.
  EXPECT_TRUE(fs::exists(cache_ + "/" + build_id_ + "/debuginfo"));

  Messages again;
  SymbolizerOptions options = with_urls(url, again);
  DebuginfodClient* client = nullptr;
  auto owned = DebuginfodClient::create(options.debuginfod);
  client = owned.get();
  ASSERT_NE(client, nullptr);
  options.debug_search.debuginfod = client;
  auto binary = ElfBinary::open(binary_, options.debug_search);
  ASSERT_TRUE(binary.ok());
  EXPECT_EQ((*binary)->debug_origin(), ElfBinary::DebugOrigin::kDebuginfod);
  EXPECT_EQ((*binary)->symbol_source(), ElfBinary::SymbolSource::kDebugFileSymtab);
  EXPECT_EQ((*binary)->debug_file(), cache_ + "/" + build_id_ + "/debuginfo");

  // Without URLs, nothing is asked.
  Messages none;
  EXPECT_FALSE(resolve_beta(with_urls("", none)).resolved);
  EXPECT_EQ(none.text(), "");
}

// Each broken server: kscope says so once, goes on with what it has (module+offset), and
// returns within the timeout.
TEST_F(Debuginfod, ServerDownRefusedSaysSoOnce) {
  int port = free_loopback_port();  // nothing listens there
  Messages messages;
  auto t0 = std::chrono::steady_clock::now();
  Symbolizer symbolizer(with_urls("http://127.0.0.1:" + std::to_string(port), messages));
  symbolizer.set_mappings(kExitedPid, target_.mappings);
  Symbol beta = symbolizer.resolve_user(kExitedPid, target_.funcs.at("sym_target_beta") + 2);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(beta.resolved);
  EXPECT_EQ(beta.module, "sym_stripped_target");
  EXPECT_EQ(messages.lines_containing("going on without it"), 1u) << messages.text();
  EXPECT_LT(seconds, 20.0);
  // A second stripped binary is not asked about: no second message, no second wait.
  std::string other = dir_ / "other_stripped";
  ASSERT_EQ(sh("strip --strip-all -o '" + other + "' '" + prog("sym_cxx_target") + "'").exit_code,
            0);
  auto other_run = run_target(other);
  ASSERT_TRUE(other_run);
  symbolizer.set_mappings(kExitedPid + 1, other_run->mappings);
  std::string before = messages.text();
  EXPECT_FALSE(symbolizer.resolve_user(kExitedPid + 1, other_run->funcs.begin()->second).resolved);
  EXPECT_EQ(messages.text(), before);
}

TEST_F(Debuginfod, SlowServerIsAbandonedAfterTheTimeout) {
  FakeServer silent("", /*accept_connections=*/false);  // the kernel accepts; nobody answers
  ASSERT_GT(silent.port(), 0);
  Messages messages;
  SymbolizerOptions options =
      with_urls("http://127.0.0.1:" + std::to_string(silent.port()), messages, /*timeout_s=*/2);
  Symbolizer symbolizer(options);
  symbolizer.set_mappings(kExitedPid, target_.mappings);
  auto t0 = std::chrono::steady_clock::now();
  Symbol beta = symbolizer.resolve_user(kExitedPid, target_.funcs.at("sym_target_beta") + 2);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(beta.resolved);
  EXPECT_EQ(beta.module, "sym_stripped_target");
  // 2 s without progress, plus the once-a-second polling of libdebuginfod and a loaded machine.
  EXPECT_GE(seconds, 1.5);
  EXPECT_LT(seconds, 15.0);
  EXPECT_EQ(messages.lines_containing("going on without it"), 1u) << messages.text();
  EXPECT_EQ(messages.lines_containing("fetching debug info for"), 1u) << messages.text();
}

TEST_F(Debuginfod, GarbageIsRejectedOnce) {
  FakeServer garbage("<html>this is not an ELF file</html>", /*accept_connections=*/true);
  ASSERT_GT(garbage.port(), 0);
  Messages messages;
  auto t0 = std::chrono::steady_clock::now();
  Symbol beta =
      resolve_beta(with_urls("http://127.0.0.1:" + std::to_string(garbage.port()), messages));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_FALSE(beta.resolved) << beta.format();
  EXPECT_EQ(beta.module, "sym_stripped_target");
  EXPECT_LT(seconds, 15.0);
  EXPECT_EQ(messages.lines_containing("is not the debug file asked for"), 1u) << messages.text();
}

// ---------------------------------------------------------------------------------------------
// libc6-dbg: a function that only the debug file's .symtab names (static in glibc, so not in
// .dynsym), checked against nm on that debug file.
TEST(DistributionDebugFiles, LibcInternalFunctionFromLibc6Dbg) {
  KSCOPE_REQUIRE_TOOL_OR_SKIP(nm, "nm", "binutils");
  auto maps = read_proc_maps(static_cast<uint32_t>(::getpid()));
  ASSERT_TRUE(maps.ok());
  std::string libc;
  for (const Mapping& m : *maps) {
    if (m.path.find("/libc.so.6") != std::string::npos) libc = m.path;
  }
  ASSERT_FALSE(libc.empty());
  auto id = read_build_id(libc);
  ASSERT_TRUE(id.ok());
  std::string debug =
      "/usr/lib/debug/.build-id/" + id->substr(0, 2) + "/" + id->substr(2) + ".debug";
  if (!fs::exists(debug)) {
    if (kscope::testing::bpf_required()) FAIL() << "libc6-dbg is not installed (" << debug << ")";
    GTEST_SKIP() << "libc6-dbg is not installed";
  }
  // sysmalloc is static in malloc/malloc.c: a local text symbol of the debug file only.
  RunResult nm_debug =
      sh("nm --defined-only '" + debug + "' | awk '$2==\"t\" && $3==\"sysmalloc\"'");
  RunResult nm_dyn = sh("nm -D --defined-only '" + libc + "' | grep -cw sysmalloc");
  ASSERT_FALSE(nm_debug.out.empty()) << "no local sysmalloc in " << debug;
  EXPECT_EQ(nm_dyn.out, "0\n");
  uint64_t vaddr = std::stoull(nm_debug.out.substr(0, nm_debug.out.find(' ')), nullptr, 16);

  auto binary = ElfBinary::open(libc, DebugSearchPaths{});
  ASSERT_TRUE(binary.ok());
  EXPECT_EQ((*binary)->debug_origin(), ElfBinary::DebugOrigin::kBuildIdDir);
  EXPECT_EQ((*binary)->debug_file(), debug);
  auto f = (*binary)->find_function(vaddr + 8);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->name, "sysmalloc");
  EXPECT_EQ(f->start, vaddr);

  // Without the debug directory, .dynsym cannot name it.
  auto bare = ElfBinary::open(libc, DebugSearchPaths{{"/nonexistent"}, false});
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ((*bare)->symbol_source(), ElfBinary::SymbolSource::kDynsym);
  auto g = (*bare)->find_function(vaddr + 8);
  EXPECT_TRUE(!g || g->name != "sysmalloc");
}

// ---------------------------------------------------------------------------------------------
// JIT perf maps

TEST(PerfMap, ParsesPerfFormatAndSkipsMalformedLines) {
  PerfMap map;
  std::string text =
      "7f0000001000 40 LazyCompile:*hot /tmp/x.js:3\n"
      "0x7f0000002000 0x10 Builtin:ArrayPush\n"
      "zzz 10 bad-address\n"
      "7f0000003000 0 zero-size\n"
      "7f0000003000 10\n"  // no name
      "ffffffffffffffff 10 wraps\n"
      "7f0000004000 10 " +
      std::string(PerfMap::kMaxLineBytes, 'x') +
      "\n"
      "7f0000005000 20 partial";  // no newline yet: left for later
  size_t left = map.append(text);
  EXPECT_EQ(left, std::string("7f0000005000 20 partial").size());
  EXPECT_EQ(map.size(), 2u);
  EXPECT_EQ(map.skipped_lines(), 5u);
  auto hit = map.lookup(0x7f000000103f);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->name, "LazyCompile:*hot /tmp/x.js:3");
  EXPECT_EQ(hit->start, 0x7f0000001000u);
  EXPECT_FALSE(map.lookup(0x7f0000001040));
  EXPECT_EQ(map.lookup(0x7f0000002000)->name, "Builtin:ArrayPush");
  EXPECT_FALSE(map.lookup(0x7f0000005000));
  // Code freed and reused: the region written last names the address.
  map.append("7f0000001000 20 LazyCompile:*newer /tmp/x.js:9\n");
  EXPECT_EQ(map.lookup(0x7f0000001010)->name, "LazyCompile:*newer /tmp/x.js:9");
  EXPECT_EQ(map.lookup(0x7f0000001030)->name, "LazyCompile:*hot /tmp/x.js:3");
}

class JitMaps : public ::testing::Test {
 protected:
  void SetUp() override {
    // An anonymous executable mapping of a process that wrote a perf map.
    Mapping jit;
    jit.start = 0x7f0000000000;
    jit.end = 0x7f0000100000;
    jit.perms = "rwxp";
    mappings_ = {jit};
    options_.perf_map_dir = dir_.path();
    options_.messages = messages_.file();
    path_ = dir_ / ("perf-" + std::to_string(kExitedPid) + ".map");
  }
  TempDir dir_;
  std::vector<Mapping> mappings_;
  SymbolizerOptions options_;
  Messages messages_;
  std::string path_;
};

TEST_F(JitMaps, NamesJitCodeAndFollowsTheFileAsItGrows) {
  std::ofstream(path_) << "7f0000001000 100 JS:*hotLoop file:///w.js:2\n";
  Symbolizer symbolizer(options_);
  symbolizer.set_process_owner(kExitedPid, ::getuid());
  symbolizer.set_mappings(kExitedPid, mappings_);
  Symbol s = symbolizer.resolve_user(kExitedPid, 0x7f0000001010);
  EXPECT_EQ(s.format(), "JS:*hotLoop file:///w.js:2+0x10 ([jit])");
  EXPECT_EQ(s.module_path, path_);
  // Not in the map yet; the runtime then appends it.
  EXPECT_FALSE(symbolizer.resolve_user(kExitedPid, 0x7f0000009000).resolved);
  std::ofstream(path_, std::ios::app) << "7f0000009000 80 JS:*later file:///w.js:7\n";
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // past the re-check interval
  EXPECT_EQ(symbolizer.resolve_user(kExitedPid, 0x7f0000009004).format(),
            "JS:*later file:///w.js:7+0x4 ([jit])");
  EXPECT_EQ(symbolizer.stats().jit_symbols, 2u);
  // Code space flipped to writable when the snapshot was taken (W^X) is still JIT code; an
  // address outside every mapping (code mapped after the snapshot) too; [heap] is not.
  mappings_[0].perms = "rw-p";
  symbolizer.set_mappings(kExitedPid, mappings_);
  EXPECT_TRUE(symbolizer.resolve_user(kExitedPid, 0x7f0000001010).resolved);
  symbolizer.set_mappings(kExitedPid, {});
  EXPECT_TRUE(symbolizer.resolve_user(kExitedPid, 0x7f0000001010).resolved);
  mappings_[0].path = "[heap]";
  symbolizer.set_mappings(kExitedPid, mappings_);
  EXPECT_FALSE(symbolizer.resolve_user(kExitedPid, 0x7f0000001010).resolved);
}

// An address already named is named again by a region the runtime wrote later over the same
// code (freed and reused): the file is read again on hits too. (NodeJit's faults were once all
// named ^SafeMap, the baseline code the hot loop's had replaced.)
TEST_F(JitMaps, CodeReusedAfterTheLastReadIsNamedByTheNewerRegion) {
  std::ofstream(path_) << "7f0000001000 100 JS:^SafeMap node:internal/primordials:408:16\n";
  Symbolizer symbolizer(options_);
  symbolizer.set_process_owner(kExitedPid, ::getuid());
  symbolizer.set_mappings(kExitedPid, mappings_);
  EXPECT_EQ(symbolizer.resolve_user(kExitedPid, 0x7f0000001010).function,
            "JS:^SafeMap node:internal/primordials:408:16");
  std::ofstream(path_, std::ios::app) << "7f0000001000 c0 JS:*kscopeHotLoop file:///h.js:2\n";
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // past the re-check interval
  Symbol s = symbolizer.resolve_user(kExitedPid, 0x7f0000001010);
  EXPECT_EQ(s.format(), "JS:*kscopeHotLoop file:///h.js:2+0x10 ([jit])");
  EXPECT_EQ(symbolizer.stats().jit_symbols, 2u);
  // Within the interval the file is not read again: what was read names it.
  std::ofstream(path_, std::ios::app) << "7f0000001000 c0 JS:*newest file:///h.js:9\n";
  EXPECT_EQ(symbolizer.resolve_user(kExitedPid, 0x7f0000001010).function,
            "JS:*kscopeHotLoop file:///h.js:2");
}

TEST_F(JitMaps, RefusesMapsOfAnotherUserSymlinksAndHardLinks) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file another owner";
  std::ofstream(path_) << "7f0000001000 100 JS:*spoofed\n";
  ASSERT_EQ(::chown(path_.c_str(), 12345, 12345), 0);
  {
    Symbolizer symbolizer(options_);
    symbolizer.set_process_owner(kExitedPid, 23456);
    symbolizer.set_mappings(kExitedPid, mappings_);
    EXPECT_FALSE(symbolizer.resolve_user(kExitedPid, 0x7f0000001010).resolved);
    EXPECT_EQ(messages_.lines_containing("not to the process's owner"), 1u) << messages_.text();
  }
  {
    Symbolizer symbolizer(options_);
    symbolizer.set_process_owner(kExitedPid, 12345);  // the owner's own map is fine
    symbolizer.set_mappings(kExitedPid, mappings_);
    EXPECT_TRUE(symbolizer.resolve_user(kExitedPid, 0x7f0000001010).resolved);
  }
  // A symlink (to a root-only file, say) and a second hard link are refused.
  std::string real = dir_ / "real.map";
  fs::rename(path_, real);
  fs::create_symlink(real, path_);
  {
    Symbolizer symbolizer(options_);
    symbolizer.set_mappings(kExitedPid, mappings_);
    EXPECT_FALSE(symbolizer.resolve_user(kExitedPid, 0x7f0000001010).resolved);
  }
  fs::remove(path_);
  fs::create_hard_link(real, path_);
  {
    Symbolizer symbolizer(options_);
    symbolizer.set_mappings(kExitedPid, mappings_);
    EXPECT_FALSE(symbolizer.resolve_user(kExitedPid, 0x7f0000001010).resolved);
    EXPECT_GE(messages_.lines_containing("more than one link"), 1u) << messages_.text();
  }
}

}  // namespace
}  // namespace kscope
