// Fault injection (docs/RELIABILITY.md, "Fault injection"): kscope killed with SIGKILL while
// tracing leaves nothing attached and the next run works; a target killed while kscope starts
// gives a clear message or a normal end, never a hang; a ring buffer overrun on purpose is
// counted record for record against the kernel's own fault counters; crafted ELF files in a
// traced process (huge section counts, absurd or cyclic .gnu_debuglink, truncated DWARF, a
// symbol table outside the file) are named as far as they can be, within a time bound.
#include <bpf/bpf.h>
#include <elf.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "counts.h"
#include "runtime_env.h"
#include "subprocess.h"

namespace kscope::testing {
namespace {

const std::string kFaultprog = std::string(KSCOPE_TEST_PROGS_DIR) + "/faultprog";
const std::string kThreadprog = std::string(KSCOPE_TEST_PROGS_DIR) + "/threadprog";
const std::string kKscope = KSCOPE_BINARY;

// The BPF programs, maps and links a process holds, from /proc/PID/fdinfo.
struct BpfObjects {
  std::set<uint32_t> progs, maps, links;
  size_t size() const { return progs.size() + maps.size() + links.size(); }
};
BpfObjects bpf_objects_of(int pid) {
  BpfObjects out;
  std::string dir = "/proc/" + std::to_string(pid) + "/fdinfo";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::istringstream in(read_file(e.path().string()));
    std::string key;
    uint64_t value;
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream l(line);
      if (!(l >> key >> value)) continue;
      if (key == "prog_id:") out.progs.insert(static_cast<uint32_t>(value));
      if (key == "map_id:") out.maps.insert(static_cast<uint32_t>(value));
      if (key == "link_id:") out.links.insert(static_cast<uint32_t>(value));
    }
  }
  return out;
}

// Those of `objects` the kernel still has (an fd can be had by id).
BpfObjects still_alive(const BpfObjects& objects) {
  BpfObjects out;
  auto alive = [](int fd) {
    if (fd >= 0) {
      close(fd);
      return true;
    }
    return errno != ENOENT;
  };
  for (uint32_t id : objects.progs)
    if (alive(bpf_prog_get_fd_by_id(id))) out.progs.insert(id);
  for (uint32_t id : objects.maps)
    if (alive(bpf_map_get_fd_by_id(id))) out.maps.insert(id);
  for (uint32_t id : objects.links)
    if (alive(bpf_link_get_fd_by_id(id))) out.links.insert(id);
  return out;
}

std::string describe(const BpfObjects& o) {
  std::string s;
  for (uint32_t id : o.progs) s += " prog " + std::to_string(id);
  for (uint32_t id : o.maps) s += " map " + std::to_string(id);
  for (uint32_t id : o.links) s += " link " + std::to_string(id);
  return s;
}

class FaultInjection : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fresh_test_dir("kscope-fi"); }
  void TearDown() override {
    for (int pid : pids_)
      if (pid > 0) {
        kill(pid, SIGKILL);
        wait_for(pid, 5);
      }
    std::filesystem::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  int start(const std::vector<std::string>& argv, const std::string& out = {},
            const std::string& err = {}) {
    int pid = spawn(argv, out, err);
    pids_.push_back(pid);
    return pid;
  }
  void reaped(int pid) { std::erase(pids_, pid); }

  // Starts `argv` (a kscope command), waits until it traces, SIGKILLs it and checks that every
  // BPF program, map and link it held is released by the kernel, and nothing is pinned.
  void kill_mid_trace(const std::vector<std::string>& argv, const std::string& ready) {
    int k = start(argv, path("k.out"), path("k.err"));
    ASSERT_TRUE(wait_for_text(path("k.err"), ready, 60)) << read_file(path("k.err"));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    BpfObjects held = bpf_objects_of(k);
    EXPECT_GE(held.progs.size(), 1u) << "kscope holds no BPF program while tracing?";
    EXPECT_GE(held.maps.size(), 1u);
    ASSERT_EQ(kill(k, SIGKILL), 0);
    EXPECT_EQ(wait_for(k, 30), 128 + SIGKILL);
    reaped(k);
    // The kernel releases a dead process's BPF objects when its fds close (programs and maps
    // after an RCU grace period and deferred work): poll, bounded.
    BpfObjects left = still_alive(held);
    for (int i = 0; i < 300 && left.size() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      left = still_alive(held);
    }
    EXPECT_EQ(left.size(), 0u) << "left in the kernel after SIGKILL:" << describe(left)
                               << " (held:" << describe(held) << ")";
    std::error_code ec;
    for (const auto& e : std::filesystem::recursive_directory_iterator("/sys/fs/bpf", ec))
      EXPECT_EQ(e.path().string().find("kscope"), std::string::npos) << "pinned: " << e.path();
  }

  std::filesystem::path dir_;
  std::vector<int> pids_;
};

TEST_F(FaultInjection, FaultsKilledMidTraceLeavesNothingAndTheNextRunWorks) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int prog = start({kFaultprog, "loop-touch"});
  kill_mid_trace({kKscope, "faults", "-p", std::to_string(prog), "--no-plot"}, "tracing");
  // The next run traces the same process normally.
  auto r =
      run({kKscope, "faults", "-p", std::to_string(prog), "--duration", "1", "--no-plot"}, 120);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  std::regex re("pid " + std::to_string(prog) +
                " \\([^)]*\\): kernel ([0-9,]+) \\(minflt [0-9,]+, majflt [0-9,]+\\), seen "
                "individually ([0-9,]+)");
  ASSERT_TRUE(std::regex_search(r.out, m, re)) << r.out;
  EXPECT_GT(parse_count(m[2]), 100u) << "loop-touch faults once per millisecond";
}

TEST_F(FaultInjection, TopKilledMidTraceLeavesNothingAndTheNextRunWorks) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  kill_mid_trace({kKscope, "top", "--batch", "--call-graph", "dwarf"}, "measuring");
  auto r = run({kKscope, "top", "--once", "--duration", "0.5", "--format", "json"}, 120);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"tasks\""), std::string::npos) << r.out.substr(0, 500);
}

// The target dies at some point of kscope's start-up (before, while or after it attaches): kscope
// ends on its own within a bound, either with a summary of what it saw (exit 0) or saying the
// process has exited (exit 1), never by hanging or crashing.
TEST_F(FaultInjection, TargetKilledDuringStartUpEndsClearlyWithoutHanging) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  for (const char* command : {"faults", "top"}) {
    for (int delay_ms : {0, 30, 100, 300}) {
      SCOPED_TRACE(std::string(command) + " after " + std::to_string(delay_ms) + " ms");
      int target = start({kFaultprog, "loop-touch"});
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::vector<std::string> argv = {kKscope, command, "-p", std::to_string(target)};
      if (std::string(command) == "faults") argv.push_back("--no-plot");
      if (std::string(command) == "top") argv.push_back("--once");
      int k = start(argv, path("s.out"), path("s.err"));
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      kill(target, SIGKILL);
      EXPECT_GE(wait_for(target, 10), 0);
      reaped(target);
      auto t0 = std::chrono::steady_clock::now();
      int rc = wait_for(k, 60);
      double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rc < 0) kill(k, SIGKILL), wait_for(k, 5);
      reaped(k);
      std::string err = read_file(path("s.err")), out = read_file(path("s.out"));
      ASSERT_GE(rc, 0) << "kscope " << command << " hung after its target died:\n" << err;
      EXPECT_LT(waited, 30.0) << err;
      EXPECT_TRUE(rc == 0 || rc == 1) << "exit " << rc << "\n" << err;
      if (rc == 1) {
        // "process PID has exited" (a zombie at the check), or "no such process: PID" (reaped).
        std::string pid = std::to_string(target);
        EXPECT_TRUE(err.find("process " + pid + " has exited") != std::string::npos ||
                    err.find("no such process: " + pid) != std::string::npos)
            << err;
      } else if (std::string(command) == "faults") {
        EXPECT_NE(out.find("pid " + std::to_string(target)), std::string::npos) << out << err;
      }
    }
  }
}

// A 1 MiB ring and a reader stopped (SIGSTOP) for a second against four threads faulting without
// pause: records are lost, every one is counted, the summary says so, and what was seen plus
// what was lost is exactly the kernel's own count of the process's faults over the trace.
TEST_F(FaultInjection, RingBufferOverrunIsCountedRecordForRecord) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  int prog = start({kThreadprog, "busy", "4"}, path("prog.out"), path("prog.err"));
  ASSERT_TRUE(wait_for_text(path("prog.out"), "ready", 30)) << read_file(path("prog.err"));
  int k = start({kKscope, "faults", "-p", std::to_string(prog), "--duration", "4", "--no-plot",
                 "--ringbuf-mb", "1"},
                path("k.out"), path("k.err"));
  ASSERT_TRUE(wait_for_text(path("k.err"), "tracing", 60)) << read_file(path("k.err"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(k, SIGSTOP);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  kill(k, SIGCONT);
  int rc = wait_for(k, 120);
  reaped(k);
  std::string out = read_file(path("k.out")), err = read_file(path("k.err"));
  ASSERT_EQ(rc, 0) << err;
  std::smatch m;
  std::regex re("pid " + std::to_string(prog) +
                " \\([^)]*\\): kernel ([0-9,]+) \\(minflt [0-9,]+, majflt [0-9,]+\\), seen "
                "individually ([0-9,]+), not seen individually ([0-9,]+)");
  ASSERT_TRUE(std::regex_search(out, m, re)) << out;
  uint64_t kernel = parse_count(m[1]), seen = parse_count(m[2]), unseen = parse_count(m[3]);
  ASSERT_TRUE(std::regex_search(out, m, std::regex("lost records: ([0-9,]+)"))) << out;
  uint64_t lost = parse_count(m[1]);
  // 4 threads faulting 64 pages per loop for 1.5 s overflow 1 MiB of records many times over.
  EXPECT_GT(lost, 0u) << out;
  EXPECT_EQ(kernel, seen + lost) << out;
  EXPECT_EQ(unseen, lost) << out;
}

// ---- Crafted ELF files ----

// A copy of an ELF64 file whose section headers and contents a test patches.
class ElfPatch {
 public:
  explicit ElfPatch(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), {});
  }
  Elf64_Ehdr& ehdr() { return *reinterpret_cast<Elf64_Ehdr*>(bytes_.data()); }
  Elf64_Shdr& shdr(size_t i) {
    return *reinterpret_cast<Elf64_Shdr*>(bytes_.data() + ehdr().e_shoff + i * sizeof(Elf64_Shdr));
  }
  Elf64_Shdr* section(const std::string& name) {
    const Elf64_Shdr& names = shdr(ehdr().e_shstrndx);
    for (size_t i = 0; i < ehdr().e_shnum; ++i)
      if (name == bytes_.data() + names.sh_offset + shdr(i).sh_name) return &shdr(i);
    return nullptr;
  }
  char* data(const Elf64_Shdr& s) { return bytes_.data() + s.sh_offset; }
  // In place: `to` (with its NUL) must fit in `from`'s name.
  void rename(const std::string& from, const std::string& to) {
    Elf64_Shdr* s = section(from);
    ASSERT_NE(s, nullptr) << from;
    ASSERT_LE(to.size(), from.size());
    std::memcpy(bytes_.data() + shdr(ehdr().e_shstrndx).sh_offset + s->sh_name, to.c_str(),
                to.size() + 1);
  }
  size_t size() const { return bytes_.size(); }
  void write(const std::string& path) const {
    std::ofstream(path, std::ios::binary).write(bytes_.data(), bytes_.size());
    chmod(path.c_str(), 0755);
  }

 private:
  std::vector<char> bytes_;
};

TEST_F(FaultInjection, CraftedElfFilesAreNamedAsFarAsTheyCanBeWithinATimeBound) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  struct Case {
    std::string name;
    bool symtab_usable;  // touch_pages_permuted can still be named from .symtab
    std::function<void(ElfPatch&)> patch;
  };
  auto debuglink = [](const std::string& target) {
    return [target](ElfPatch& e) {
      // .debug_loclists (variables' locations, which no name needs; gcc and clang both write
      // it, while clang writes no .debug_aranges) becomes a .gnu_debuglink naming `target`.
      e.rename(".debug_loclists", ".gnu_debuglink");
      Elf64_Shdr* s = e.section(".gnu_debuglink");
      ASSERT_NE(s, nullptr);
      ASSERT_GE(s->sh_size, target.size() + 1 + 3 + 4);
      std::memset(e.data(*s), 0, s->sh_size);
      std::memcpy(e.data(*s), target.data(), target.size());
      s->sh_size = (target.size() + 1 + 3) / 4 * 4 + 4;
    };
  };
  std::vector<Case> cases = {
      // Section headers claimed far beyond the end of the file.
      {"huge-shnum", false, [](ElfPatch& e) { e.ehdr().e_shnum = 0xffff; }},
      // Extended numbering (e_shnum 0): the count in section 0's sh_size, absurdly large.
      {"extended-shnum", false,
       [](ElfPatch& e) {
         e.ehdr().e_shnum = 0;
         e.shdr(0).sh_size = 0xfffffff0u;
       }},
      // A debug link to the binary itself, with a CRC that cannot match, and one to /dev/zero
      // (endless; not a regular file) by a climbing relative path; and a name with no NUL.
      {"debuglink-self", true, debuglink("faultprog-debuglink-self")},
      {"debuglink-devzero", true, debuglink("../../../../../../../../../../dev/zero")},
      {"debuglink-unterminated", true,
       [](ElfPatch& e) {
         e.rename(".debug_loclists", ".gnu_debuglink");
         Elf64_Shdr* s = e.section(".gnu_debuglink");
         ASSERT_NE(s, nullptr);
         std::memset(e.data(*s), 'A', s->sh_size);
       }},
      // DWARF cut in the middle of its first unit, and a line table past the end of the file.
      {"dwarf-truncated", true,
       [](ElfPatch& e) {
         Elf64_Shdr* info = e.section(".debug_info");
         ASSERT_NE(info, nullptr);
         info->sh_size /= 3;
         Elf64_Shdr* line = e.section(".debug_line");
         ASSERT_NE(line, nullptr);
         line->sh_offset = e.size() + 4096;
       }},
      // The symbol table reaching past the end of the file.
      {"symtab-outside", false,
       [](ElfPatch& e) {
         Elf64_Shdr* s = e.section(".symtab");
         ASSERT_NE(s, nullptr);
         s->sh_size = 0x7fffffff0ull / sizeof(Elf64_Sym) * sizeof(Elf64_Sym);
       }},
      // Every symbol's name offset outside its string table, and its value outside any section.
      {"symbols-pointing-outside", false,
       [](ElfPatch& e) {
         Elf64_Shdr* s = e.section(".symtab");
         ASSERT_NE(s, nullptr);
         auto* syms = reinterpret_cast<Elf64_Sym*>(e.data(*s));
         for (size_t i = 1; i < s->sh_size / sizeof(Elf64_Sym); ++i) {
           syms[i].st_name = 0xfffffff0u - static_cast<uint32_t>(i);
           if (ELF64_ST_TYPE(syms[i].st_info) == STT_FUNC) syms[i].st_size = 0xffffffffffull;
         }
       }},
  };
  // The real function names of the program, from its intact symbol table.
  std::set<std::string> functions;
  {
    ElfPatch original(kFaultprog);
    Elf64_Shdr* symtab = original.section(".symtab");
    ASSERT_NE(symtab, nullptr);
    const char* strtab = original.data(original.shdr(symtab->sh_link));
    auto* syms = reinterpret_cast<const Elf64_Sym*>(original.data(*symtab));
    for (size_t i = 0; i < symtab->sh_size / sizeof(Elf64_Sym); ++i)
      if (ELF64_ST_TYPE(syms[i].st_info) == STT_FUNC) functions.insert(strtab + syms[i].st_name);
    ASSERT_TRUE(functions.count("touch_pages_permuted"));
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string exe = path("faultprog-" + c.name);
    ElfPatch elf(kFaultprog);
    c.patch(elf);
    if (::testing::Test::HasFatalFailure()) return;
    elf.write(exe);
    auto t0 = std::chrono::steady_clock::now();
    auto r = run({kKscope, "faults", "--symbols", "--events", path("ev.csv"), "--format", "csv",
                  "--no-plot", "--", exe, "anon-write", "40", "5"},
                 120);
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_FALSE(r.timed_out) << r.err;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    // A faults run of this program takes about a second; 30 s would mean a file read without
    // end or a search without a bound.
    EXPECT_LT(took, 30.0) << r.err;
    // Every event has a printable symbol field; the program's own faults are named by one of
    // its real functions, by touch_pages_permuted (the writer of the 40 pages) when .symtab
    // survived, else by module+offset: never a made-up name.
    std::istringstream in(read_file(path("ev.csv")));
    std::string line;
    std::getline(in, line);
    size_t named = 0, in_module = 0;
    std::string module = "faultprog-" + c.name;
    std::regex resolved(",([^,]+)\\+0x[0-9a-f]+ \\(" + module + "\\)$");
    while (std::getline(in, line)) {
      for (char ch : line) ASSERT_TRUE(ch >= 0x20 && ch < 0x7f) << line;
      if (line.find(module) == std::string::npos) continue;
      ++in_module;
      std::smatch m;
      if (!std::regex_search(line, m, resolved)) continue;
      EXPECT_TRUE(functions.count(m[1])) << "not a function of faultprog: " << line;
      if (m[1] == "touch_pages_permuted") ++named;
    }
    EXPECT_GE(in_module, 40u) << read_file(path("ev.csv")).substr(0, 3000);
    if (c.symtab_usable) {
      EXPECT_GE(named, 40u) << read_file(path("ev.csv")).substr(0, 3000);
    }
  }
}

}  // namespace
}  // namespace kscope::testing
