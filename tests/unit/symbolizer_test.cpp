// Tests for src/symbols: /proc/PID/maps parsing, kallsyms, ELF/DWARF user symbols and the
// Symbolizer facade. The ground truth is programs built from tests/progs/sym_*.{c,cpp}: they print
// the runtime addresses of their own functions and their /proc/self/maps, then exit; the tests
// resolve those addresses afterwards, as kscope does for processes that are gone.
#include "symbols/symbolizer.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "symbols/elf_binary.h"
#include "symbols/kallsyms.h"
#include "symbols/proc_maps.h"
#include "symbols/symbol.h"
#include "temp_dir.h"

// A function of this test binary with a known name, resolved from our own mappings.
__attribute__((noinline)) int kscope_symbolizer_test_marker(int x) {
  static volatile int sink;
  sink = sink + x;
  return sink * 11;
}

namespace kscope {
namespace {

namespace fs = std::filesystem;

// A pid no real process has: the Symbolizer must not care, it only uses the mappings it is given.
constexpr uint32_t kExitedPid = 4000001;

const std::string kProgsDir = KSCOPE_TEST_PROGS_DIR;
const std::string kSourceDir = KSCOPE_SOURCE_DIR;

struct CommandResult {
  int status = -1;
  std::string out;
};

CommandResult run_command(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return result;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) result.out.append(buf, n);
  result.status = ::pclose(pipe);
  return result;
}

bool have_tool(const std::string& tool) {
  return run_command("command -v " + tool + " >/dev/null 2>&1").status == 0;
}

std::string shell_quote(const std::string& s) { return "'" + s + "'"; }

// What a sym_* program printed.
struct TargetRun {
  std::map<std::string, uint64_t> funcs;
  std::map<std::string, uint64_t> pcs;
  std::map<std::string, int> lines;
  std::vector<Mapping> mappings;
  std::string maps_text;
};

std::optional<TargetRun> run_target(const std::string& path) {
  CommandResult result = run_command(shell_quote(path));
  if (result.status != 0) return std::nullopt;
  TargetRun run;
  size_t maps_at = result.out.find("\nmaps\n");
  if (maps_at == std::string::npos) return std::nullopt;
  std::istringstream header(result.out.substr(0, maps_at));
  std::string kind, name, value;
  while (header >> kind >> name >> value) {
    if (kind == "func") run.funcs[name] = std::stoull(value, nullptr, 16);
    if (kind == "pc") run.pcs[name] = std::stoull(value, nullptr, 16);
    if (kind == "line") run.lines[name] = std::stoi(value);
  }
  run.maps_text = result.out.substr(maps_at + 6);
  auto mappings = parse_proc_maps(run.maps_text);
  if (!mappings) return std::nullopt;
  run.mappings = *mappings;
  return run;
}

const Mapping* mapping_of(const std::vector<Mapping>& mappings, uint64_t addr) {
  for (const Mapping& m : mappings) {
    if (m.contains(addr)) return &m;
  }
  return nullptr;
}

uint64_t file_offset_of(const std::vector<Mapping>& mappings, uint64_t addr) {
  const Mapping* m = mapping_of(mappings, addr);
  return m ? addr - m->start + m->offset : 0;
}

// e_type from the ELF header (little-endian hosts): ET_EXEC = 2, ET_DYN = 3.
int elf_type(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char header[18] = {};
  in.read(reinterpret_cast<char*>(header), sizeof header);
  return header[16] | header[17] << 8;
}

bool ends_with(const std::optional<std::string>& s, std::string_view suffix) {
  return s && std::string_view(*s).ends_with(suffix);
}

class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("kscope_sym") {}
};

std::string prog(const std::string& name) { return kProgsDir + "/" + name; }

// The unit test target does not depend on the test programs; say so when one is missing.
constexpr const char* kNotBuilt =
    "could not run the test program; build them with `cmake --build <dir>` (tests/progs)";

// ---------------------------------------------------------------------------------------------
// Symbol

TEST(SymbolFormat, ThreeShapes) {
  Symbol s = unknown_symbol(0x7f0012345678);
  EXPECT_EQ(s.format(), "0x7f0012345678");
  s.module = "libc.so.6";
  s.offset = 0x1a2b;
  EXPECT_EQ(s.format(), "libc.so.6+0x1a2b");
  s.function = "getpid";
  s.offset = 0x4;
  s.resolved = true;
  EXPECT_EQ(s.format(), "getpid+0x4 (libc.so.6)");
  s.offset = 0;
  EXPECT_EQ(s.format(), "getpid+0x0 (libc.so.6)");
}

TEST(SymbolFormat, SourceFramesInnermostFirst) {
  Symbol s = unknown_symbol(0x1000);
  EXPECT_TRUE(s.source_frames().empty());
  s.resolved = true;
  s.function = "outer";
  s.file = "a.c";
  s.line = 30;
  s.inlined = {InlineFrame{"inner", "a.c", 20}, InlineFrame{"middle", "b.h", 10}};
  std::vector<SourceFrame> frames = s.source_frames();
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0], (SourceFrame{"inner", "a.c", 30, true}));
  EXPECT_EQ(frames[1], (SourceFrame{"middle", "a.c", 20, true}));
  EXPECT_EQ(frames[2], (SourceFrame{"outer", "b.h", 10, false}));
}

TEST(SymbolFormat, Demangle) {
  EXPECT_EQ(demangle("_ZN3foo3barEi"), "foo::bar(int)");
  EXPECT_EQ(demangle("main"), "main");
  EXPECT_EQ(demangle("_Znot_really_mangled"), "_Znot_really_mangled");
  EXPECT_EQ(demangle(""), "");
}

// ---------------------------------------------------------------------------------------------
// /proc/PID/maps

constexpr std::string_view kMapsFixture =
    "55d0c0a00000-55d0c0a01000 r--p 00000000 fe:00 1234                       /usr/bin/prog\n"
    "55d0c0a01000-55d0c0a02000 r-xp 00001000 fe:00 1234                       /usr/bin/prog\n"
    "7f1000000000-7f1000021000 rw-p 00000000 00:00 0 \n"
    "7f1000100000-7f1000200000 r-xp 00002000 103:02 98765                     "
    "/opt/My App/lib with spaces.so (deleted)\n"
    "7f1000300000-7f1000301000 rw-s 00000000 00:01 4242                       /memfd:jit "
    "(deleted)\n"
    "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
    "7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0                          [vdso]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

TEST(ProcMaps, ParsesKernelFormat) {
  size_t malformed = 99;
  auto parsed = parse_proc_maps(kMapsFixture, &malformed);
  ASSERT_TRUE(parsed.ok()) << parsed.error().describe();
  EXPECT_EQ(malformed, 0u);
  const std::vector<Mapping>& m = *parsed;
  ASSERT_EQ(m.size(), 8u);
  EXPECT_EQ(m[1].start, 0x55d0c0a01000u);
  EXPECT_EQ(m[1].end, 0x55d0c0a02000u);
  EXPECT_EQ(m[1].perms, "r-xp");
  EXPECT_TRUE(m[1].executable());
  EXPECT_EQ(m[1].offset, 0x1000u);
  EXPECT_EQ(m[1].dev_major, 0xfeu);
  EXPECT_EQ(m[1].dev_minor, 0u);
  EXPECT_EQ(m[1].inode, 1234u);
  EXPECT_EQ(m[1].path, "/usr/bin/prog");
  EXPECT_EQ(m[2].path, "");
  EXPECT_FALSE(m[2].executable());
  EXPECT_EQ(m[3].path, "/opt/My App/lib with spaces.so (deleted)");
  EXPECT_EQ(m[3].dev_major, 0x103u);
  EXPECT_EQ(m[3].dev_minor, 2u);
  EXPECT_TRUE(path_is_deleted(m[3].path));
  EXPECT_EQ(path_without_deleted(m[3].path), "/opt/My App/lib with spaces.so");
  EXPECT_EQ(m[4].perms, "rw-s");
  EXPECT_EQ(m[5].path, "[stack]");
  EXPECT_FALSE(is_file_mapping(m[5]));
  EXPECT_TRUE(is_file_mapping(m[0]));
  EXPECT_EQ(m[7].start, 0xffffffffff600000u);
  EXPECT_FALSE(path_is_deleted("/usr/bin/prog"));
  EXPECT_FALSE(path_is_deleted(" (deleted)"));
}

TEST(ProcMaps, SkipsAndCountsMalformedLines) {
  std::string text =
      "00400000-00401000 r-xp 00000000 08:01 42 /bin/good\n"
      "garbage\n"
      "00401000-00400000 r-xp 00000000 08:01 42 /bin/end-before-start\n"
      "00500000-00501000 rwxq 00000000 08:01 42 /bin/bad-perms\n"
      "00500000-00501000 r-x 00000000 08:01 42 /bin/short-perms\n"
      "00600000-00601000 r-xp 00000000 08:01\n"
      "1ffffffffffffffff-2ffffffffffffffff r-xp 00000000 08:01 42 /bin/overflow\n"
      "-00601000 r-xp 00000000 08:01 42 /bin/no-start\n"
      "00700000-00701000 r-xp 0000zz00 08:01 42 /bin/bad-offset\n"
      "00700000-00701000 r-xp 00000000 0801 42 /bin/bad-dev\n"
      "00700000-00701000 r-xp 00000000 08:01 42x/bin/glued\n"
      "00700000-00701000 r-xp 00000000 08:01 -42 /bin/negative-inode\n"
      "\n"
      "00800000-00801000 r--p 00001000 08:01 43 /bin/last line without newline";
  size_t malformed = 0;
  auto parsed = parse_proc_maps(text, &malformed);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(malformed, 11u);
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0].path, "/bin/good");
  EXPECT_EQ((*parsed)[1].path, "/bin/last line without newline");
  EXPECT_EQ((*parsed)[1].offset, 0x1000u);
}

TEST(ProcMaps, EmptyIsFineGarbageIsAnError) {
  auto empty = parse_proc_maps("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  size_t malformed = 0;
  auto garbage = parse_proc_maps("hello\nworld\n", &malformed);
  EXPECT_FALSE(garbage.ok());
  EXPECT_EQ(malformed, 2u);
}

TEST(ProcMaps, ReadsOwnMaps) {
  auto maps = read_proc_maps(static_cast<uint32_t>(::getpid()));
  ASSERT_TRUE(maps.ok()) << maps.error().describe();
  auto marker = reinterpret_cast<uint64_t>(&kscope_symbolizer_test_marker);
  const Mapping* m = mapping_of(*maps, marker);
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->executable());
  EXPECT_EQ(fs::path(m->path), fs::canonical("/proc/self/exe"));
  auto missing = read_proc_maps(0x7ffffff0);
  EXPECT_FALSE(missing.ok());
}

// ---------------------------------------------------------------------------------------------
// kallsyms

constexpr std::string_view kKallsymsFixture =
    "ffffffff81000000 T _stext\n"
    "ffffffff81000000 T startup_64\n"
    "ffffffff81000000 t __pi_startup_64\n"
    "ffffffff81000100 T __schedule\n"
    "ffffffff81000500 t finish_task_switch\n"
    "ffffffff81000900 W arch_cpu_idle\n"
    "ffffffff81000a00 T _etext\n"
    "ffffffff82000000 D jiffies\n"
    "ffffffff82000100 R some_rodata\n"
    "0000000000000000 A fixed_percpu_data\n"
    "not a line\n"
    "ffffffffc0a00000 t ext4_readdir\t[ext4]\n"
    "ffffffffc0a00200 T ext4_file_read_iter\t[ext4]\n"
    "ffffffffc0a01000 d ext4_data\t[ext4]\n"
    "ffffffffc0b00000 t bpf_prog_6deef7357e7b4530_sd_fw_ingress\t[bpf]\n"
    "ffffffffc0c00000 t broken\t[unterminated\n";

TEST(Kallsyms, ParsesFixtureAndLooksUp) {
  size_t malformed = 0;
  auto parsed = KernelSymbols::parse(kKallsymsFixture, &malformed);
  ASSERT_TRUE(parsed.ok()) << parsed.error().describe();
  EXPECT_EQ(malformed, 2u);
  const KernelSymbols& k = *parsed;

  // Aliases at one address: the global name with fewest underscores.
  EXPECT_EQ(k.resolve(0xffffffff81000000).format(), "startup_64+0x0 (kernel)");
  EXPECT_EQ(k.resolve(0xffffffff810000ff).format(), "startup_64+0xff (kernel)");
  EXPECT_EQ(k.resolve(0xffffffff81000123).format(), "__schedule+0x23 (kernel)");
  EXPECT_EQ(k.resolve(0xffffffff81000901).format(), "arch_cpu_idle+0x1 (kernel)");
  Symbol s = k.resolve(0xffffffff81000510);
  EXPECT_TRUE(s.resolved);
  EXPECT_EQ(s.function, "finish_task_switch");
  EXPECT_EQ(s.offset, 0x10u);
  EXPECT_EQ(s.module, "kernel");
  EXPECT_EQ(s.addr, 0xffffffff81000510u);

  // Module symbols carry the module name.
  EXPECT_EQ(k.resolve(0xffffffffc0a00010).format(), "ext4_readdir+0x10 (ext4)");
  EXPECT_EQ(k.resolve(0xffffffffc0a00fff).format(), "ext4_file_read_iter+0xdff (ext4)");
  EXPECT_EQ(k.resolve(0xffffffffc0b00004).format(),
            "bpf_prog_6deef7357e7b4530_sd_fw_ingress+0x4 (bpf)");

  // Below the first symbol, and in data: not resolved, never attributed to a function.
  EXPECT_EQ(k.resolve(0xffffffff80000000).format(), "0xffffffff80000000");
  EXPECT_FALSE(k.resolve(0xffffffff82000010).resolved);
  EXPECT_FALSE(k.resolve(0xffffffffc0a01010).resolved);
  EXPECT_EQ(k.resolve(0x1000).format(), "0x1000");
  EXPECT_EQ(k.text_symbol_count(), 8u);  // aliases merged, "broken" skipped
}

TEST(Kallsyms, HiddenAddressesAreUnavailable) {
  std::string hidden =
      "0000000000000000 T _stext\n"
      "0000000000000000 T schedule\n"
      "0000000000000000 t ext4_readdir\t[ext4]\n";
  auto parsed = KernelSymbols::parse(hidden);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.error().message.find("unavailable"), std::string::npos);
  EXPECT_NE(parsed.error().hint.find("kptr_restrict"), std::string::npos);

  // The facade reports it once and still never drops an address.
  TempDir dir;
  std::ofstream(dir / "kallsyms") << hidden;
  SymbolizerOptions options;
  options.kallsyms_path = dir / "kallsyms";
  Symbolizer symbolizer(options);
  EXPECT_FALSE(symbolizer.kernel_symbols_status().ok());
  Symbol s = symbolizer.resolve_kernel(0xffffffff81234567);
  EXPECT_FALSE(s.resolved);
  EXPECT_EQ(s.format(), "0xffffffff81234567");
}

TEST(Kallsyms, FixtureThroughTheFacade) {
  Symbolizer symbolizer;
  auto parsed = KernelSymbols::parse(kKallsymsFixture);
  ASSERT_TRUE(parsed.ok());
  symbolizer.set_kernel_symbols(std::move(*parsed));
  EXPECT_TRUE(symbolizer.kernel_symbols_status().ok());
  EXPECT_EQ(symbolizer.resolve_kernel(0xffffffffc0a00201).format(),
            "ext4_file_read_iter+0x1 (ext4)");
  EXPECT_FALSE(KernelSymbols::parse("junk\nmore junk\n").ok());
  EXPECT_FALSE(KernelSymbols::parse("").ok());
}

TEST(Kallsyms, RealKallsymsRoundTrip) {
  std::ifstream in("/proc/kallsyms");
  std::string line;
  uint64_t addr = 0;
  while (std::getline(in, line)) {
    if (line.ends_with(" T schedule")) {
      addr = std::stoull(line, nullptr, 16);
      break;
    }
  }
  if (addr == 0) GTEST_SKIP() << "/proc/kallsyms hides addresses or has no 'schedule'";
  auto loaded = KernelSymbols::load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().describe();
  Symbol s = loaded->resolve(addr + 4);
  EXPECT_EQ(s.function, "schedule");
  EXPECT_EQ(s.offset, 4u);
  EXPECT_EQ(s.module, "kernel");
}

// ---------------------------------------------------------------------------------------------
// User symbols

TEST(SymbolizerUser, ResolvesPieFunctionsAfterTheProcessExited) {
  std::string path = prog("sym_target");
  ASSERT_EQ(elf_type(path), 3) << "expected a PIE (ET_DYN) test program";
  auto run = run_target(path);
  ASSERT_TRUE(run.has_value()) << kNotBuilt;
  const Mapping* text = mapping_of(run->mappings, run->funcs.at("sym_target_alpha"));
  ASSERT_NE(text, nullptr);
  EXPECT_NE(text->offset, 0u) << "text is usually not at file offset 0 (separate-code layout)";

  Symbolizer symbolizer;
  symbolizer.set_mappings(kExitedPid, run->mappings);
  for (const char* name : {"sym_target_alpha", "sym_target_beta", "sym_target_outer", "main"}) {
    uint64_t addr = run->funcs.at(name);
    Symbol s = symbolizer.resolve_user(kExitedPid, addr + 3, SymbolDetail::kFunction);
    EXPECT_EQ(s.format(), std::string(name) + "+0x3 (sym_target)");
    EXPECT_EQ(s.module_path, path);
    EXPECT_EQ(s.addr, addr + 3);
    EXPECT_FALSE(s.file.has_value()) << "no line info asked for";
  }
  Symbol with_line = symbolizer.resolve_user(kExitedPid, run->funcs.at("sym_target_alpha"));
  EXPECT_TRUE(with_line.resolved);
  EXPECT_TRUE(ends_with(with_line.file, "tests/progs/sym_target.c")) << with_line.file.value_or("");
  EXPECT_TRUE(with_line.line.has_value());
  // The same address again comes from the last-result cache, identical.
  EXPECT_EQ(symbolizer.resolve_user(kExitedPid, run->funcs.at("sym_target_alpha")), with_line);
}

TEST(SymbolizerUser, InlineChainAndSourceLines) {
  auto run = run_target(prog("sym_target"));
  ASSERT_TRUE(run.has_value()) << kNotBuilt;
  Symbolizer symbolizer;
  symbolizer.set_mappings(kExitedPid, run->mappings);
  // A return address points after the call; the call itself is one byte earlier.
  uint64_t call = run->pcs.at("sym_target_record_call") - 1;
  Symbol s = symbolizer.resolve_user(kExitedPid, call, SymbolDetail::kInlineFrames);
  ASSERT_TRUE(s.resolved) << s.format();
  EXPECT_EQ(s.function, "sym_target_outer");
  // The line table position is the innermost one.
  EXPECT_EQ(s.line, run->lines.at("sym_target_innermost_call"));
  EXPECT_TRUE(ends_with(s.file, "tests/progs/sym_target.c"));
  ASSERT_EQ(s.inlined.size(), 2u);
  EXPECT_EQ(s.inlined[0].function, "sym_target_innermost");
  EXPECT_TRUE(ends_with(s.inlined[0].call_file, "sym_target.c"));
  EXPECT_EQ(s.inlined[0].call_line, run->lines.at("sym_target_inner_call"));
  EXPECT_EQ(s.inlined[1].function, "sym_target_inner");
  EXPECT_EQ(s.inlined[1].call_line, run->lines.at("sym_target_outer_call"));

  std::vector<SourceFrame> frames = s.source_frames();
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0], (SourceFrame{"sym_target_innermost", s.file,
                                    run->lines.at("sym_target_innermost_call"), true}));
  EXPECT_EQ(frames[1], (SourceFrame{"sym_target_inner", s.inlined[0].call_file,
                                    run->lines.at("sym_target_inner_call"), true}));
  EXPECT_EQ(frames[2], (SourceFrame{"sym_target_outer", s.inlined[1].call_file,
                                    run->lines.at("sym_target_outer_call"), false}));

  // Without the inline request the line is the same, the chain is not computed.
  Symbol plain = symbolizer.resolve_user(kExitedPid, call, SymbolDetail::kSourceLine);
  EXPECT_EQ(plain.line, s.line);
  EXPECT_TRUE(plain.inlined.empty());
}

TEST(SymbolizerUser, DemanglesCxx) {
  auto run = run_target(prog("sym_cxx_target"));
  ASSERT_TRUE(run.has_value()) << kNotBuilt;
  Symbolizer symbolizer;
  symbolizer.set_mappings(kExitedPid, run->mappings);
  EXPECT_EQ(symbolizer.resolve_user(kExitedPid, run->funcs.at("namespaced") + 2).format(),
            "kscope_symtest::inner::sym_namespaced(int)+0x2 (sym_cxx_target)");
  EXPECT_EQ(symbolizer.resolve_user(kExitedPid, run->funcs.at("scale_long")).format(),
            "long kscope_symtest::sym_scale<long>(long, int)+0x0 (sym_cxx_target)");
  Symbol area = symbolizer.resolve_user(kExitedPid, run->pcs.at("area") - 1);
  EXPECT_EQ(area.function, "kscope_symtest::Shape::area(double) const");
  EXPECT_GT(area.offset, 0u);
  EXPECT_TRUE(ends_with(area.file, "sym_cxx_target.cpp"));
}

TEST(SymbolizerUser, SharedLibraryFunctionFromDynsym) {
  void* getpid_addr = ::dlsym(RTLD_DEFAULT, "getpid");
  ASSERT_NE(getpid_addr, nullptr);
  auto pid = static_cast<uint32_t>(::getpid());
  auto maps = read_proc_maps(pid);
  ASSERT_TRUE(maps.ok());
  Symbolizer symbolizer;
  symbolizer.set_mappings(pid, *maps);
  Symbol s = symbolizer.resolve_user(pid, reinterpret_cast<uint64_t>(getpid_addr) + 2);
  ASSERT_TRUE(s.resolved) << s.format();
  // libc exports the same code as getpid (weak) and __getpid (global); the public name wins.
  EXPECT_EQ(s.function, "getpid");
  EXPECT_EQ(s.offset, 2u);
  EXPECT_TRUE(s.module.starts_with("libc.so")) << s.module;

  Dl_info info{};
  ASSERT_NE(::dladdr(getpid_addr, &info), 0);
  EXPECT_EQ(fs::canonical(s.module_path), fs::canonical(info.dli_fname));
}

TEST(SymbolizerUser, OwnBinaryAndVdso) {
  auto pid = static_cast<uint32_t>(::getpid());
  auto maps = read_proc_maps(pid);
  ASSERT_TRUE(maps.ok());
  Symbolizer symbolizer;
  symbolizer.set_mappings(pid, *maps);
  auto marker = reinterpret_cast<uint64_t>(&kscope_symbolizer_test_marker);
  EXPECT_EQ(symbolizer.resolve_user(pid, marker + 1).format(),
            "kscope_symbolizer_test_marker(int)+0x1 (kscope_unit_tests)");

  // glibc registers the vDSO as a loaded object, so dlsym finds its functions.
  void* vdso = ::dlopen("linux-vdso.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (!vdso) GTEST_SKIP() << "no vDSO handle from the dynamic linker";
  void* fn = ::dlsym(vdso, "__vdso_clock_gettime");
  ::dlclose(vdso);
  if (!fn) GTEST_SKIP() << "vDSO has no __vdso_clock_gettime";
  Symbol s = symbolizer.resolve_user(pid, reinterpret_cast<uint64_t>(fn) + 1);
  ASSERT_TRUE(s.resolved) << s.format();
  EXPECT_TRUE(s.function == "clock_gettime" || s.function == "__vdso_clock_gettime") << s.function;
  EXPECT_EQ(s.offset, 1u);
  EXPECT_EQ(s.module, "[vdso]");
}

TEST(SymbolizerUser, UnresolvedAddressesKeepWhatIsKnown) {
  auto run = run_target(prog("sym_target"));
  ASSERT_TRUE(run.has_value()) << kNotBuilt;
  Symbolizer symbolizer;
  symbolizer.set_mappings(kExitedPid, run->mappings);

  // In the binary but not in any function: the ELF header at file offset 0x10.
  const Mapping* first = nullptr;
  for (const Mapping& m : run->mappings) {
    if (m.path == prog("sym_target") && m.offset == 0) first = &m;
  }
  ASSERT_NE(first, nullptr);
  Symbol header = symbolizer.resolve_user(kExitedPid, first->start + 0x10);
  EXPECT_FALSE(header.resolved);
  EXPECT_EQ(header.format(), "sym_target+0x10");

  // No mapping, an unknown process, anonymous memory: only the address.
  EXPECT_EQ(symbolizer.resolve_user(kExitedPid, 0x1234).format(), "0x1234");
  EXPECT_EQ(symbolizer.resolve_user(kExitedPid + 1, run->funcs.at("main")).format(),
            fmt::format("{:#x}", run->funcs.at("main")));
  for (const Mapping& m : run->mappings) {
    if (m.path.empty() || m.path == "[stack]" || m.path == "[heap]") {
      EXPECT_EQ(symbolizer.resolve_user(kExitedPid, m.start + 8).format(),
                fmt::format("{:#x}", m.start + 8));
    }
  }
  symbolizer.forget_process(kExitedPid);
  EXPECT_FALSE(symbolizer.resolve_user(kExitedPid, run->funcs.at("main")).resolved);
}

TEST(SymbolizerUser, BinaryGoneGivesModuleAndFileOffset) {
  TempDir dir;
  std::string copy = dir / "sym_gone";
  fs::copy_file(prog("sym_target"), copy);
  auto run = run_target(copy);
  ASSERT_TRUE(run.has_value()) << kNotBuilt;
  fs::remove(copy);
  Symbolizer symbolizer;
  symbolizer.set_mappings(kExitedPid, run->mappings);
  uint64_t alpha = run->funcs.at("sym_target_alpha");
  Symbol s = symbolizer.resolve_user(kExitedPid, alpha);
  EXPECT_FALSE(s.resolved);
  EXPECT_EQ(s.format(), fmt::format("sym_gone+{:#x}", file_offset_of(run->mappings, alpha)));
  EXPECT_EQ(symbolizer.stats().binaries_unavailable, 1u);
}

TEST(SymbolizerUser, DeletedPathIsUsedOnlyIfItIsStillTheSameFile) {
  TempDir dir;
  std::string copy = dir / "sym_replaced";
  fs::copy_file(prog("sym_target"), copy);
  auto run = run_target(copy);
  ASSERT_TRUE(run.has_value()) << kNotBuilt;
  // As if the process had still been running when the file was unlinked.
  std::vector<Mapping> deleted = run->mappings;
  for (Mapping& m : deleted) {
    if (m.path == copy) m.path += " (deleted)";
  }
  uint64_t alpha = run->funcs.at("sym_target_alpha");
  {
    Symbolizer symbolizer;
    symbolizer.set_mappings(kExitedPid, deleted);
    EXPECT_EQ(symbolizer.resolve_user(kExitedPid, alpha).format(),
              "sym_target_alpha+0x0 (sym_replaced)");
  }
  // Replace the file by another one at the same path. Both exist at once, so the new one
  // cannot reuse the old inode number.
  fs::copy_file(prog("sym_cxx_target"), dir / "replacement");
  fs::rename(dir / "replacement", copy);
  {
    Symbolizer symbolizer;
    symbolizer.set_mappings(kExitedPid, deleted);
    Symbol s = symbolizer.resolve_user(kExitedPid, alpha);
    EXPECT_FALSE(s.resolved) << s.format();
    EXPECT_EQ(s.format(), fmt::format("sym_replaced+{:#x}", file_offset_of(run->mappings, alpha)));
  }
  {
    SymbolizerOptions strict;
    strict.require_same_inode = true;
    Symbolizer symbolizer(strict);
    symbolizer.set_mappings(kExitedPid, run->mappings);  // no " (deleted)" marker
    EXPECT_FALSE(symbolizer.resolve_user(kExitedPid, alpha).resolved);
  }
}

TEST(SymbolizerUser, StrippedBinaryGivesModuleAndFileOffset) {
  if (!have_tool("strip")) GTEST_SKIP() << "strip is not installed";
  TempDir dir;
  std::string stripped = dir / "sym_stripped";
  ASSERT_EQ(run_command("strip --strip-all -o " + shell_quote(stripped) + " " +
                        shell_quote(prog("sym_target")))
                .status,
            0);
  auto run = run_target(stripped);
  ASSERT_TRUE(run.has_value()) << kNotBuilt;
  Symbolizer symbolizer(SymbolizerOptions{DebugSearchPaths{{}, false}});
  symbolizer.set_mappings(kExitedPid, run->mappings);
  uint64_t alpha = run->funcs.at("sym_target_alpha");
  // The executable exports nothing, so .dynsym has no entry for it either.
  EXPECT_EQ(symbolizer.resolve_user(kExitedPid, alpha + 4).format(),
            fmt::format("sym_stripped+{:#x}", file_offset_of(run->mappings, alpha + 4)));
  auto binary = ElfBinary::open(stripped, DebugSearchPaths{{}, false});
  ASSERT_TRUE(binary.ok());
  EXPECT_NE((*binary)->symbol_source(), ElfBinary::SymbolSource::kSymtab);
}

// Builds tests/progs/sym_target.c as a non-PIE executable that exports its symbols (-rdynamic)
// and keeps code and data in shared pages (-z noseparate-code): the other common layout.
class SymbolizerNonPie : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_tool("cc")) GTEST_SKIP() << "no C compiler to build the non-PIE variant";
    binary_ = dir_ / "sym_target_nopie";
    std::string command =
        "cc -O1 -g -fno-omit-frame-pointer -fno-pie -no-pie -rdynamic "
        "-Wl,-z,noseparate-code -o " +
        shell_quote(binary_) + " " + shell_quote(kSourceDir + "/tests/progs/sym_target.c") +
        " 2>&1";
    CommandResult built = run_command(command);
    if (built.status != 0) GTEST_SKIP() << "cannot build non-PIE: " << built.out;
  }
  TempDir dir_;
  std::string binary_;
};

TEST_F(SymbolizerNonPie, ResolvesAndFallsBackToDynsymWhenStripped) {
  ASSERT_EQ(elf_type(binary_), 2) << "expected ET_EXEC";
  auto run = run_target(binary_);
  ASSERT_TRUE(run.has_value()) << kNotBuilt;
  uint64_t alpha = run->funcs.at("sym_target_alpha");
  EXPECT_LT(alpha, 0x10000000u) << "non-PIE code sits at its link address";
  {
    Symbolizer symbolizer;
    symbolizer.set_mappings(kExitedPid, run->mappings);
    EXPECT_EQ(symbolizer.resolve_user(kExitedPid, alpha + 5).format(),
              "sym_target_alpha+0x5 (sym_target_nopie)");
    EXPECT_EQ(symbolizer.resolve_user(kExitedPid, run->funcs.at("main")).format(),
              "main+0x0 (sym_target_nopie)");
  }
  if (!have_tool("strip")) GTEST_SKIP() << "strip is not installed";
  std::string stripped = dir_ / "sym_nopie_stripped";
  ASSERT_EQ(
      run_command("strip --strip-all -o " + shell_quote(stripped) + " " + shell_quote(binary_))
          .status,
      0);
  auto stripped_run = run_target(stripped);
  ASSERT_TRUE(stripped_run.has_value()) << kNotBuilt;
  Symbolizer symbolizer(SymbolizerOptions{DebugSearchPaths{{}, false}});
  symbolizer.set_mappings(kExitedPid, stripped_run->mappings);
  Symbol s = symbolizer.resolve_user(kExitedPid, stripped_run->funcs.at("sym_target_beta") + 1);
  EXPECT_EQ(s.format(), "sym_target_beta+0x1 (sym_nopie_stripped)");
  EXPECT_FALSE(s.file.has_value());
  auto binary = ElfBinary::open(stripped, DebugSearchPaths{{}, false});
  ASSERT_TRUE(binary.ok());
  EXPECT_EQ((*binary)->symbol_source(), ElfBinary::SymbolSource::kDynsym);
}

// A stripped binary and its debug file, split the way distributions do it.
class SymbolizerDebugFile : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_tool("objcopy") || !have_tool("strip")) GTEST_SKIP() << "binutils not installed";
    fs::create_directories(dir_ / "bin/.debug");
    binary_ = dir_ / "bin/sym_split";
    debug_ = dir_ / "sym_split.debug";
    ASSERT_EQ(run_command("objcopy --only-keep-debug " + shell_quote(prog("sym_target")) + " " +
                          shell_quote(debug_))
                  .status,
              0);
    ASSERT_EQ(run_command("strip --strip-all -o " + shell_quote(binary_) + " " +
                          shell_quote(prog("sym_target")))
                  .status,
              0);
    auto id = read_build_id(binary_);
    ASSERT_TRUE(id.ok()) << id.error().describe();
    build_id_ = *id;
  }
  void expect_resolves_with_lines(const SymbolizerOptions& options, const std::string& where) {
    auto run = run_target(binary_);
    ASSERT_TRUE(run.has_value()) << kNotBuilt;
    Symbolizer symbolizer(options);
    symbolizer.set_mappings(kExitedPid, run->mappings);
    Symbol s = symbolizer.resolve_user(kExitedPid, run->funcs.at("sym_target_beta") + 2);
    EXPECT_EQ(s.format(), "sym_target_beta+0x2 (sym_split)");
    EXPECT_TRUE(ends_with(s.file, "sym_target.c"));
    auto binary = ElfBinary::open(binary_, options.debug_search);
    ASSERT_TRUE(binary.ok());
    EXPECT_EQ((*binary)->debug_file(), where);
    EXPECT_EQ((*binary)->symbol_source(), ElfBinary::SymbolSource::kDebugFileSymtab);
  }
  TempDir dir_;
  std::string binary_, debug_, build_id_;
};

TEST_F(SymbolizerDebugFile, FoundByGnuDebuglinkInDotDebug) {
  std::string linked = dir_ / "bin/.debug/sym_split.debug";
  fs::copy_file(debug_, linked);
  // The link records the debug file's name and CRC; it is added after stripping.
  ASSERT_EQ(
      run_command("objcopy --add-gnu-debuglink=" + shell_quote(linked) + " " + shell_quote(binary_))
          .status,
      0);
  SymbolizerOptions options;
  options.debug_search.debug_dirs = {dir_ / "empty-root"};
  expect_resolves_with_lines(options, linked);

  // Without following debug links there is nothing but file offsets.
  options.debug_search.use_debuglink = false;
  Symbolizer symbolizer(options);
  auto run = run_target(binary_);
  ASSERT_TRUE(run.has_value()) << kNotBuilt;
  symbolizer.set_mappings(kExitedPid, run->mappings);
  EXPECT_FALSE(symbolizer.resolve_user(kExitedPid, run->funcs.at("sym_target_beta")).resolved);
}

TEST_F(SymbolizerDebugFile, FoundByBuildIdUnderADebugRoot) {
  std::string root = dir_ / "debug-root";
  std::string by_id =
      root + "/.build-id/" + build_id_.substr(0, 2) + "/" + build_id_.substr(2) + ".debug";
  fs::create_directories(fs::path(by_id).parent_path());
  fs::copy_file(debug_, by_id);
  SymbolizerOptions options;
  options.debug_search.debug_dirs = {root};
  expect_resolves_with_lines(options, by_id);
}

TEST_F(SymbolizerDebugFile, DebugFileOfAnotherBuildIsIgnored) {
  // A debug file under the right name but from another binary must not be trusted.
  std::string wrong = dir_ / "bin/.debug/sym_split.debug";
  ASSERT_EQ(run_command("objcopy --only-keep-debug " + shell_quote(prog("sym_cxx_target")) + " " +
                        shell_quote(wrong))
                .status,
            0);
  std::string root = dir_ / "debug-root";
  std::string by_id =
      root + "/.build-id/" + build_id_.substr(0, 2) + "/" + build_id_.substr(2) + ".debug";
  fs::create_directories(fs::path(by_id).parent_path());
  fs::copy_file(wrong, by_id);
  ASSERT_EQ(
      run_command("objcopy --add-gnu-debuglink=" + shell_quote(debug_) + " " + shell_quote(binary_))
          .status,
      0);
  SymbolizerOptions options;
  options.debug_search.debug_dirs = {root};
  auto binary = ElfBinary::open(binary_, options.debug_search);
  ASSERT_TRUE(binary.ok());
  EXPECT_EQ((*binary)->debug_file(), "");
}

// Without a build-id, only the CRC recorded in .gnu_debuglink says the debug file matches.
TEST(SymbolizerDebuglinkCrc, AcceptsMatchingRejectsModified) {
  if (!have_tool("cc") || !have_tool("objcopy") || !have_tool("strip")) {
    GTEST_SKIP() << "needs cc and binutils";
  }
  TempDir dir;
  std::string full = dir / "sym_noid_full";
  std::string binary = dir / "sym_noid";
  std::string debug = dir / "sym_noid.debug";
  CommandResult built =
      run_command("cc -O1 -g -Wl,--build-id=none -o " + shell_quote(full) + " " +
                  shell_quote(kSourceDir + "/tests/progs/sym_target.c") + " 2>&1");
  if (built.status != 0) GTEST_SKIP() << "cannot build: " << built.out;
  ASSERT_EQ(run_command(
                "objcopy --only-keep-debug " + shell_quote(full) + " " + shell_quote(debug) +
                " && strip --strip-all -o " + shell_quote(binary) + " " + shell_quote(full) +
                " && objcopy --add-gnu-debuglink=" + shell_quote(debug) + " " + shell_quote(binary))
                .status,
            0);
  ASSERT_FALSE(read_build_id(binary).ok());
  DebugSearchPaths search{{dir / "empty-root"}, true};
  {
    auto opened = ElfBinary::open(binary, search);
    ASSERT_TRUE(opened.ok());
    EXPECT_EQ((*opened)->debug_file(), debug);
    EXPECT_EQ((*opened)->symbol_source(), ElfBinary::SymbolSource::kDebugFileSymtab);
  }
  // Still a valid ELF file, but not the bytes the link was made for.
  std::ofstream(debug, std::ios::app) << "x";
  auto opened = ElfBinary::open(binary, search);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ((*opened)->debug_file(), "");
  EXPECT_EQ((*opened)->function_count(), 0u);
}

// Binaries are untrusted input too: truncated or corrupted files must fail cleanly or resolve
// nothing, never crash (run under -DKSCOPE_SANITIZE=ON to catch out-of-bounds reads).
TEST(SymbolizerRobustness, TruncatedAndCorruptedFiles) {
  std::ifstream in(prog("sym_target"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 4096u) << kNotBuilt;
  TempDir dir;
  std::string path = dir / "damaged";
  DebugSearchPaths search{{dir / "empty-root"}, true};
  auto exercise = [&](const std::string& content) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    auto binary = ElfBinary::open(path, search);
    if (!binary.ok()) return;
    for (uint64_t off = 0; off < bytes.size(); off += 97) {
      if (auto vaddr = (*binary)->file_offset_to_vaddr(off, true)) {
        (*binary)->find_function(*vaddr);
        Symbol out;
        (*binary)->describe_source(*vaddr, true, out);
      }
    }
  };
  for (size_t len : {size_t{0}, size_t{4}, size_t{52}, size_t{64}, size_t{1000}, bytes.size() / 3,
                     bytes.size() / 2, bytes.size() - 200, bytes.size() - 1}) {
    exercise(bytes.substr(0, len));
  }
  // Deterministic byte scribbles over the headers and the tail (section headers, .symtab).
  uint32_t state = 12345;
  for (int round = 0; round < 40; ++round) {
    std::string damaged = bytes;
    for (int i = 0; i < 64; ++i) {
      state = state * 1103515245 + 12345;
      size_t at = round % 2 == 0 ? state % 256 : bytes.size() - 1 - state % 8192;
      damaged[at] = static_cast<char>(state >> 16);
    }
    exercise(damaged);
  }
}

TEST(SymbolizerBuildId, MatchesReadelf) {
  auto id = read_build_id(prog("sym_target"));
  ASSERT_TRUE(id.ok()) << id.error().describe();
  EXPECT_EQ(id->size(), 40u) << "GNU ld's default build-id is a 160-bit SHA1";
  if (have_tool("readelf")) {
    CommandResult notes = run_command("readelf -n " + shell_quote(prog("sym_target")));
    EXPECT_NE(notes.out.find("Build ID: " + *id), std::string::npos) << notes.out;
  }
  TempDir dir;
  std::ofstream(dir / "not-elf") << "just text";
  EXPECT_FALSE(read_build_id(dir / "not-elf").ok());
  EXPECT_FALSE(read_build_id(dir / "missing").ok());
}

// ---------------------------------------------------------------------------------------------
// Speed: printed, not asserted (machines differ).

TEST(SymbolizerPerf, LookupThroughput) {
  auto pid = static_cast<uint32_t>(::getpid());
  auto maps = read_proc_maps(pid);
  ASSERT_TRUE(maps.ok());
  Symbolizer symbolizer;
  symbolizer.set_mappings(pid, *maps);
  auto marker = reinterpret_cast<uint64_t>(&kscope_symbolizer_test_marker);
  const Mapping* text = mapping_of(*maps, marker);
  ASSERT_NE(text, nullptr);

  constexpr int kLookups = 1000000;
  using Clock = std::chrono::steady_clock;
  auto per_lookup_ns = [](Clock::duration d) {
    return std::chrono::duration<double, std::nano>(d).count() / kLookups;
  };
  size_t resolved = 0;

  // The same address again and again (a hot loop faulting): the last-result cache.
  auto t0 = Clock::now();
  for (int i = 0; i < kLookups; ++i) {
    resolved += symbolizer.resolve_user(pid, marker + 1, SymbolDetail::kFunction).resolved;
  }
  double same_ns = per_lookup_ns(Clock::now() - t0);

  // 4096 addresses spread over the test binary's code: mapping and symbol binary searches.
  std::vector<uint64_t> addrs(4096);
  for (size_t i = 0; i < addrs.size(); ++i) {
    addrs[i] = text->start + (text->end - text->start) * i / addrs.size();
  }
  t0 = Clock::now();
  for (int i = 0; i < kLookups; ++i) {
    resolved +=
        symbolizer.resolve_user(pid, addrs[i % addrs.size()], SymbolDetail::kFunction).resolved;
  }
  double spread_ns = per_lookup_ns(Clock::now() - t0);

  t0 = Clock::now();
  for (int i = 0; i < kLookups; ++i) {
    resolved +=
        symbolizer.resolve_user(pid, addrs[i % addrs.size()], SymbolDetail::kSourceLine).resolved;
  }
  double lines_ns = per_lookup_ns(Clock::now() - t0);

  auto kernel = KernelSymbols::parse(kKallsymsFixture);
  ASSERT_TRUE(kernel.ok());
  t0 = Clock::now();
  auto real_kernel = KernelSymbols::load();
  double kallsyms_load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const KernelSymbols& k = real_kernel.ok() ? *real_kernel : *kernel;
  uint64_t kbase = 0xffffffff81000000;
  t0 = Clock::now();
  for (int i = 0; i < kLookups; ++i) {
    resolved += k.resolve(kbase + static_cast<uint64_t>(i) * 64).resolved;
  }
  double kernel_ns = per_lookup_ns(Clock::now() - t0);

  EXPECT_GT(resolved, 0u);
  std::printf(
      "[ perf     ] user, same address:          %7.1f ns/resolve\n"
      "[ perf     ] user, 4096 addresses:        %7.1f ns/resolve (function only)\n"
      "[ perf     ] user, 4096 addresses:        %7.1f ns/resolve (with file:line)\n"
      "[ perf     ] kernel, spread (%zu symbols): %7.1f ns/resolve\n"
      "[ perf     ] /proc/kallsyms read+parse:   %7.1f ms (%s)\n",
      same_ns, spread_ns, lines_ns, k.size(), kernel_ns, kallsyms_load_ms,
      real_kernel.ok() ? "ok" : "unavailable, fixture used");
}

}  // namespace
}  // namespace kscope
