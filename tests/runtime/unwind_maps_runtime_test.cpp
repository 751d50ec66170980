// The lifetime of the native unwinder's maps, end to end.
//
// Tables of unmapped files: tests/progs/unwind_dlloop dlopen()s, runs and dlclose()s copies of a
// library one after another (copies without a build-id: one table each, keyed by inode) under
// `kscope top -p` with a rows map that holds the process's own tables and two copies'. Each copy
// needs the rows of one no longer mapped: kscope must free them (files_freed), never run out of
// room (files_without_room 0), and end with no more tables than fit.
//
// The native unwinder's early mappings (bpf/unwind.bpf.h: executable mappings BPF notes at
// execve and mmap(), for walks before user space read the process's mappings) against the
// kernel's own view: tests/progs/unwind_remap maps a file's text, unmaps it and maps another
// file's text at the same address, step by step. After each step, kscope's unwind_early entry
// for the process (read with bpftool, the map found through kscope's own file descriptors) must
// hold exactly the live file at that address: nothing after munmap, the second file (and not the
// first) after the remap. Before munmap was tracked, the first file's note stayed and could serve
// a PC in a range that was unmapped and reused.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <thread>

#include "exec_mappings.h"
#include "runtime_env.h"
#include "subprocess.h"
#include "tools.h"
#include "unwind/unwind_table.h"
#include "util/result.h"

namespace kscope::testing {
namespace {

const std::string kKscope = KSCOPE_BINARY;

struct Noted {
  uint64_t start = 0, end = 0, ino = 0;
};

// The ids of the BPF maps named `name` that process `pid` holds open (its /proc fdinfo).
std::vector<uint32_t> own_map_ids(int pid, const std::string& name, const std::string& bpftool) {
  std::vector<uint32_t> ids;
  std::error_code ec;
  for (const auto& fd :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::string info =
        read_file("/proc/" + std::to_string(pid) + "/fdinfo/" + fd.path().filename().string());
    auto at = info.find("map_id:");
    if (at == std::string::npos) continue;
    uint32_t id = static_cast<uint32_t>(std::stoul(info.substr(at + 7)));
    auto show = run({bpftool, "-j", "map", "show", "id", std::to_string(id)}, 30);
    auto j = nlohmann::json::parse(show.out, nullptr, false);
    if (j.is_object() && j.value("name", "") == name) ids.push_back(id);
  }
  return ids;
}

// The ready noted mappings of `tgid` in map `id`; nullopt when the process has no entry.
std::optional<std::vector<Noted>> noted(uint32_t id, int tgid, const std::string& bpftool) {
  std::vector<std::string> argv = {bpftool, "-j", "map", "lookup", "id", std::to_string(id), "key"};
  for (int i = 0; i < 4; ++i)
    argv.push_back(std::to_string((static_cast<uint32_t>(tgid) >> (8 * i)) & 0xff));
  auto r = run(argv, 30);
  if (r.exit_code != 0) return std::nullopt;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (!j.is_object() || !j.contains("formatted")) {
    ADD_FAILURE() << "bpftool printed no BTF-formatted value: " << r.out << r.err;
    return std::nullopt;
  }
  const auto& v = j["formatted"]["value"];
  std::vector<Noted> out;
  uint64_t reserved = v["reserved"].get<uint64_t>();
  const auto& maps = v["mappings"];
  for (size_t i = 0; i < maps.size() && i < reserved; ++i) {
    if (maps[i]["ready"].get<uint64_t>() == 0) continue;
    out.push_back({maps[i]["start"].get<uint64_t>(), maps[i]["end"].get<uint64_t>(),
                   maps[i]["key"]["ino"].get<uint64_t>()});
  }
  return out;
}

uint64_t inode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

// Rows of the unwind table kscope builds for a file (for the vDSO: of this process's image), and
// the elements of the rows map it takes: the rows and their row index.
struct TableSize {
  size_t rows = 0, elements = 0;
};
TableSize table_size(const ExecRange& m) {
  Result<unwind::ElfUnwindSource> source = make_error("none");
  if (m.path == "[vdso]") {
    source = unwind::read_unwind_source_image(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(m.start), m.end - m.start));
  } else {
    source = unwind::read_unwind_source(m.path);
  }
  if (!source.ok()) return {};
  auto table = unwind::build_file_table(*source, m.path);
  if (!table.ok()) return {};
  return {table->rows.size(),
          table->rows.size() + unwind::build_row_index(table->rows).buckets.size()};
}

TEST(UnwindMapsRuntime, TablesOfDlclosedLibrariesAreFreedForTheNext) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  KSCOPE_REQUIRE_TOOL_OR_SKIP(objcopy, "objcopy", "binutils");
  auto dir = fresh_test_dir("kscope-udlloop");
  std::string progs = KSCOPE_TEST_PROGS_DIR;
  constexpr int kCopies = 5;
  std::vector<std::string> argv = {progs + "/unwind_dlloop", "0.3", "3.5"};
  for (int i = 0; i < kCopies; ++i) {
    std::string copy = (dir / ("libcopy" + std::to_string(i) + ".so")).string();
    auto r = run(
        {objcopy, "--remove-section", ".note.gnu.build-id", progs + "/libunwind_dl.so", copy}, 60);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    argv.push_back(copy);
  }
  std::string pout = (dir / "prog.out").string();
  int pid = spawn(argv, pout);
  ASSERT_TRUE(wait_for_text(pout, "ready", 60)) << read_file(pout);
  // Room for the process's own tables (the program, libc, ld.so, the vDSO: this process maps the
  // same libc, ld.so and vDSO) and two and a half copies.
  size_t base = 0;
  for (const ExecRange& m : exec_mappings(pid)) {
    if (m.path == "[vdso]") continue;
    base += table_size(m).elements;
  }
  for (const ExecRange& m : exec_mappings(getpid()))
    if (m.path == "[vdso]") base += table_size(m).elements;
  TableSize copy = table_size({0, 0, argv[3]});
  size_t copy_rows = copy.rows;
  ASSERT_GT(copy_rows, 0u);
  size_t capacity = base + 2 * copy.elements + copy.elements / 2;
  std::string out = (dir / "top.json").string(), err = (dir / "top.err").string();
  setenv("KSCOPE_UNWIND_ROWS", std::to_string(capacity).c_str(), 1);
  double duration = kCopies * 3.8 + 8;
  int kpid = spawn({kKscope, "top", "-p", std::to_string(pid), "--once", "--duration",
                    std::to_string(duration), "--format", "json"},
                   out, err);
  unsetenv("KSCOPE_UNWIND_ROWS");
  bool measuring = wait_for_text(err, "measuring", 180);
  kill(pid, SIGUSR1);
  ASSERT_TRUE(measuring) << read_file(err);
  EXPECT_TRUE(wait_for_text(pout, "done", duration + 60)) << read_file(pout);
  EXPECT_EQ(wait_for(kpid, duration + 120), 0) << read_file(err);
  kill(pid, SIGKILL);
  wait_for(pid, 10);
  auto j = nlohmann::json::parse(read_file(out), nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("unwind")) << read_file(out) << read_file(err);
  const auto& u = j["unwind"];
  EXPECT_EQ(u["table_rows_capacity"].get<uint64_t>(), capacity) << u.dump();
  EXPECT_EQ(u["files_without_room"].get<uint64_t>(), 0u) << u.dump();
  // Copies 2..5 each took the rows of one no longer mapped.
  EXPECT_GE(u["files_freed"].get<uint64_t>(), static_cast<uint64_t>(kCopies - 2)) << u.dump();
  EXPECT_GE(u["rows_freed"].get<uint64_t>(), (kCopies - 2) * copy_rows) << u.dump();
  EXPECT_LE(u["table_rows"].get<uint64_t>(), capacity) << u.dump();
  // The early-mapping counters are part of the JSON (the program started before kscope: its
  // mappings were read from /proc, none noted at its execve).
  for (const char* key : {"noted", "not_noted", "removed", "lookups_found", "lookups_missed"})
    EXPECT_TRUE(u["early_mappings"].contains(key)) << key << " " << u.dump();
  // The copies' stacks were walked with their tables: the library's chain is in the rows.
  EXPECT_NE(read_file(out).find("dl_middle"), std::string::npos) << u.dump();
  std::filesystem::remove_all(dir);
}

TEST(UnwindMapsRuntime, MunmapAndRemapLeaveOnlyTheLiveFileNoted) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  KSCOPE_REQUIRE_TOOL_OR_SKIP(bpftool, "bpftool", "bpftool");
  auto dir = fresh_test_dir("kscope-uearly");
  std::string progs = KSCOPE_TEST_PROGS_DIR;
  std::string a = progs + "/libunwind_plt_lib.so", b = progs + "/libunwind_dl.so";
  std::string out = (dir / "kscope.out").string(), err = (dir / "kscope.err").string();
  // Launched by kscope: the process is noted from its execve on.
  int kpid = spawn({kKscope, "faults", "--stacks", "--no-plot", "-o", (dir / "rec.kscope").string(),
                    "--", progs + "/unwind_remap", a, b},
                   out, err);
  ASSERT_TRUE(wait_for_text(out, "ready ", 240)) << read_file(err);
  int pid = 0;
  std::string text = read_file(out);
  ASSERT_EQ(std::sscanf(text.c_str() + text.find("ready "), "ready %d", &pid), 1);
  auto ids = own_map_ids(kpid, "unwind_early", bpftool);
  ASSERT_EQ(ids.size(), 1u) << "kscope's unwind_early map";
  uint32_t id = ids[0];

  // One step of the program: release it, wait for its line, read its range.
  auto next = [&](const std::string& word, uint64_t* s, uint64_t* e) {
    kill(pid, SIGUSR1);
    ASSERT_TRUE(wait_for_text(out, word, 60)) << read_file(out);
    std::string t = read_file(out);
    unsigned long long s1 = 0, e1 = 0;
    ASSERT_EQ(std::sscanf(t.c_str() + t.find(word) + word.size(), "%llx %llx", &s1, &e1), 2) << t;
    *s = s1;
    *e = e1;
  };
  auto overlapping = [&](uint64_t s, uint64_t e) {
    auto n = noted(id, pid, bpftool);
    EXPECT_TRUE(n.has_value()) << "the process has no early-mapping entry";
    std::vector<Noted> hit;
    for (const Noted& m : n.value_or(std::vector<Noted>{}))
      if (m.start < e && m.end > s) hit.push_back(m);
    return hit;
  };
  uint64_t s = 0, e = 0;
  ASSERT_NO_FATAL_FAILURE(next("mapped a ", &s, &e));
  auto hit = overlapping(s, e);
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0].ino, inode_of(a));
  EXPECT_EQ(hit[0].start, s);
  EXPECT_EQ(hit[0].end, e);

  ASSERT_NO_FATAL_FAILURE(next("unmapped ", &s, &e));
  EXPECT_TRUE(overlapping(s, e).empty()) << "a note of the unmapped file is left";

  ASSERT_NO_FATAL_FAILURE(next("mapped b ", &s, &e));
  hit = overlapping(s, e);
  ASSERT_EQ(hit.size(), 1u);
  EXPECT_EQ(hit[0].ino, inode_of(b));

  kill(pid, SIGUSR1);
  EXPECT_EQ(wait_for(kpid, 120), 0) << read_file(err);
  // The summary counts what was noted and removed: at execve the program, ld.so and the vDSO,
  // then libc, the two files; one munmap() over a noted mapping (the remap found none left).
  std::string summary = read_file(out) + read_file(err);
  auto at = summary.find("early mappings: ");
  ASSERT_NE(at, std::string::npos) << summary;
  unsigned long long n = 0, d = 0, r = 0, found = 0, missed = 0;
  ASSERT_EQ(std::sscanf(summary.c_str() + at,
                        "early mappings: %llu noted, %llu not noted (no room or mmap_lock busy), "
                        "%llu removed (munmap/mmap over them); lookups: %llu found, %llu missed",
                        &n, &d, &r, &found, &missed),
            5)
      << summary.substr(at, 200);
  EXPECT_EQ(r, 1u) << summary.substr(at, 200);
  EXPECT_GE(n + d, 6u) << summary.substr(at, 200);
  EXPECT_GE(n, 5u) << summary.substr(at, 200);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kscope::testing
