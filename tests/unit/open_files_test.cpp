// Tests for symbols/open_files.h, the run's shared open files: one open per file whatever path
// names it, never the descriptor of another file than the path names now, the mapping's
// inode/device checked, and a bounded number of descriptors (least recently used dropped,
// counted, opened again when asked for). Ground truth: stat() of the files, the kernel's list of
// this process's descriptors (/proc/self/fd), and the bytes read back through the descriptor.
#include "symbols/open_files.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "symbols/proc_maps.h"
#include "symbols/symbolizer.h"
#include "temp_dir.h"
#include "unwind/table_loader.h"

namespace kscope {
namespace {

namespace fs = std::filesystem;

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string read_all(int fd) {
  std::string out(4096, '\0');
  ssize_t n = ::pread(fd, out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

// The descriptors of this process that name `path` (readlink of /proc/self/fd/N).
size_t fds_naming(const std::string& path) {
  size_t n = 0;
  std::string want = fs::canonical(path).string();
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    fs::path target = fs::read_symlink(entry.path(), ec);
    if (!ec && target.string() == want) ++n;
  }
  return n;
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st;
}

TEST(OpenFiles, OneOpenPerFileWhateverPathNamesIt) {
  testing::TempDir dir("kscope_open_files");
  std::string file = dir / "a", link = dir / "b";
  write_file(file, "alpha");
  ASSERT_EQ(::link(file.c_str(), link.c_str()), 0);
  OpenFiles files;
  auto first = files.open(file);
  ASSERT_TRUE(first.ok()) << first.error().describe();
  auto by_link = files.open(link);
  ASSERT_TRUE(by_link.ok());
  // /proc/self/fd/N names the file too, as /proc/PID/map_files does for a mapping.
  auto by_proc = files.open(fmt::format("/proc/self/fd/{}", (*first)->fd()));
  ASSERT_TRUE(by_proc.ok());
  EXPECT_EQ((*by_link)->fd(), (*first)->fd());
  EXPECT_EQ((*by_proc)->fd(), (*first)->fd());
  EXPECT_EQ(files.stats().opened, 1u);
  EXPECT_EQ(files.stats().reused, 2u);
  EXPECT_EQ(fds_naming(file), 1u) << "one descriptor for the file in this process";
  struct stat st = stat_of(file);
  EXPECT_EQ((*first)->identity(), FileIdentity::of(st));
  EXPECT_EQ((*first)->owner(), st.st_uid);
  EXPECT_EQ(read_all((*first)->fd()), "alpha");
}

TEST(OpenFiles, APathNamingAnotherFileNowGetsThatFile) {
  testing::TempDir dir("kscope_open_files");
  std::string file = dir / "lib.so", next = dir / "lib.so.new";
  write_file(file, "old");
  OpenFiles files;
  auto old_file = files.open(file);
  ASSERT_TRUE(old_file.ok());
  write_file(next, "new contents");
  ASSERT_EQ(::rename(next.c_str(), file.c_str()), 0);  // an upgrade replaces the file
  auto new_file = files.open(file);
  ASSERT_TRUE(new_file.ok());
  EXPECT_NE((*new_file)->fd(), (*old_file)->fd());
  EXPECT_EQ(read_all((*new_file)->fd()), "new contents");
  EXPECT_EQ(read_all((*old_file)->fd()), "old");
  EXPECT_EQ((*new_file)->identity(), FileIdentity::of(stat_of(file)));
  EXPECT_EQ(files.stats().opened, 2u);
  EXPECT_EQ(files.stats().reused, 0u);
}

TEST(OpenFiles, TheMappingsInodeAndDeviceAreChecked) {
  testing::TempDir dir("kscope_open_files");
  std::string file = dir / "prog", other = dir / "other";
  write_file(file, "prog");
  write_file(other, "other");
  struct stat st = stat_of(file);
  MappedFileCheck right{st.st_ino, major(st.st_dev), minor(st.st_dev)};
  MappedFileCheck wrong_inode{stat_of(other).st_ino, major(st.st_dev), minor(st.st_dev)};
  OpenFiles files;
  EXPECT_TRUE(files.open(file, right).ok());
  auto refused = files.open(file, wrong_inode);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().describe().find("is not the file that was mapped"), std::string::npos)
      << refused.error().describe();
  // The device: checked where stat() reports the block device the mapping shows.
  MappedFileCheck wrong_dev{st.st_ino, major(st.st_dev) + 1, minor(st.st_dev)};
  EXPECT_EQ(files.open(file, wrong_dev).ok(), major(st.st_dev) == 0)
      << "device " << major(st.st_dev) << ":" << minor(st.st_dev);
  // open_first: the first path that is the mapped file.
  std::vector<std::string> paths = {dir / "missing", other, file};
  auto first = files.open_first(paths, right);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(read_all((*first)->fd()), "prog");
  std::vector<std::string> none = {dir / "missing", other};
  EXPECT_FALSE(files.open_first(none, right).ok());
  EXPECT_FALSE(files.open(dir.path()).ok()) << "a directory is not a regular file";
  EXPECT_EQ(files.stats().opened, 1u);
}

TEST(OpenFiles, BoundedLeastRecentlyUsedFirstAndCounted) {
  testing::TempDir dir("kscope_open_files");
  std::vector<std::string> paths;
  for (int i = 0; i < 5; ++i) {
    paths.push_back(dir / fmt::format("f{}", i));
    write_file(paths.back(), fmt::format("file {}", i));
  }
  OpenFiles files(3);
  EXPECT_EQ(files.stats().capacity, 3u);
  auto held = files.open(paths[0]);  // a caller keeps this one while it is dropped
  ASSERT_TRUE(held.ok());
  for (int i = 1; i < 3; ++i) ASSERT_TRUE(files.open(paths[i]).ok());
  ASSERT_TRUE(files.open(paths[1]).ok());  // 1 is now more recent than 2
  for (int i = 3; i < 5; ++i) ASSERT_TRUE(files.open(paths[i]).ok());
  // Dropped: 0 (least recent), then 2.
  EXPECT_EQ(files.stats().evicted, 2u);
  EXPECT_EQ(files.stats().held, 3u);
  size_t open_now = 0;
  for (const std::string& p : paths) open_now += fds_naming(p);
  EXPECT_EQ(open_now, 4u) << "three held by the cache, one by the caller";
  EXPECT_EQ(fds_naming(paths[2]), 0u);
  EXPECT_EQ(fds_naming(paths[1]), 1u);
  EXPECT_EQ(read_all((*held)->fd()), "file 0") << "a dropped file stays open for its holder";
  held = make_error("released");
  EXPECT_EQ(fds_naming(paths[0]), 0u);
  // Asked for again: opened again, counted.
  auto again = files.open(paths[2]);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(read_all((*again)->fd()), "file 2");
  EXPECT_EQ(files.stats().opened, 6u);
  EXPECT_EQ(files.stats().reopened, 1u);
  EXPECT_EQ(files.stats().evicted, 3u);
}

// A long run over ever-new files remembers only the newest kRememberDropped dropped ones (for
// `reopened`), so what the cache holds does not grow with the files it has seen.
TEST(OpenFiles, RemembersOnlyTheNewestDroppedFiles) {
  testing::TempDir dir("kscope_open_files");
  const size_t n = OpenFiles::kRememberDropped + 3;
  std::vector<std::string> paths;
  for (size_t i = 0; i < n; ++i) {
    paths.push_back(dir / fmt::format("f{}", i));
    write_file(paths.back(), fmt::format("file {}", i));
  }
  OpenFiles files(1);
  for (const std::string& p : paths) ASSERT_TRUE(files.open(p).ok());
  EXPECT_EQ(files.stats().evicted, n - 1);
  EXPECT_EQ(files.stats().reopened, 0u);
  // Files 0 and 1 were dropped longest ago: forgotten, opened as new files.
  ASSERT_TRUE(files.open(paths[0]).ok());
  EXPECT_EQ(files.stats().reopened, 0u);
  // File n - 2 was dropped last: remembered.
  ASSERT_TRUE(files.open(paths[n - 2]).ok());
  EXPECT_EQ(files.stats().reopened, 1u);
  EXPECT_EQ(files.stats().opened, n + 2);
}

// Capacity 0 (a symbolizer or unwinder with no one to share with): each open is the caller's.
TEST(OpenFiles, CapacityZeroHoldsNothing) {
  testing::TempDir dir("kscope_open_files");
  std::string file = dir / "a";
  write_file(file, "alpha");
  OpenFiles files(0);
  auto first = files.open(file);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(fds_naming(file), 1u);
  first = make_error("released");
  EXPECT_EQ(fds_naming(file), 0u);
  EXPECT_TRUE(files.open(file).ok());
  EXPECT_EQ(files.stats().opened, 2u);
  EXPECT_EQ(files.stats().held, 0u);
  EXPECT_EQ(files.stats().evicted, 0u);
}

// The maps in memory (what the BPF walker would read).
class MemoryMaps : public unwind::UnwindMapWriter {
 public:
  Status write_rows(uint32_t, std::span<const kscope_unwind_row>) override { return {}; }
  Status write_file(uint32_t, const kscope_unwind_file&) override { return {}; }
  Status write_process(uint32_t, const kscope_unwind_process&) override { return {}; }
  void delete_process(uint32_t) override {}
};

__attribute__((noinline)) int open_files_test_marker(int x) {
  static volatile int sink;
  sink = sink + x;
  return sink * 7;
}

// The unwinder and the symbolizer of one run share the open files: the unwinder opens this
// test's own binary and libraries through /proc/self/map_files, and the symbolizer, naming a
// function of this binary afterwards, opens nothing of its own.
TEST(OpenFiles, TheUnwinderAndTheSymbolizerOpenEachFileOnce) {
  auto files = std::make_shared<OpenFiles>();
  uint32_t pid = static_cast<uint32_t>(::getpid());
  auto mappings = read_proc_maps(pid);
  ASSERT_TRUE(mappings.ok());
  std::vector<unwind::ExecMapping> exec;
  for (const Mapping& m : *mappings)
    if (m.executable())
      exec.push_back({m.start, m.end, m.offset, m.inode, m.dev_major, m.dev_minor, m.path});
  MemoryMaps maps;
  unwind::TableLoader loader(maps, 1u << 22, 1024, files);
  ASSERT_TRUE(loader.load_process(pid, exec).ok());
  size_t opened = files->stats().opened;
  EXPECT_GE(opened, 2u) << "this binary and libc at least";

  SymbolizerOptions options;
  options.open_files = files;
  options.debug_search.debug_dirs = {};  // nothing beyond the binaries themselves
  options.debug_search.use_debuglink = false;
  options.debug_search.use_minidebuginfo = false;
  Symbolizer symbolizer(options);
  symbolizer.set_mappings(pid, *mappings);
  auto ip = reinterpret_cast<uint64_t>(&open_files_test_marker);
  Symbol s = symbolizer.resolve_user(pid, ip + 1, SymbolDetail::kFunction);
  EXPECT_TRUE(s.resolved);
  EXPECT_NE(s.function.find("open_files_test_marker"), std::string::npos) << s.format();
  EXPECT_EQ(files->stats().opened, opened) << "the symbolizer reused the unwinder's open";
  EXPECT_GE(files->stats().reused, 1u);
  EXPECT_EQ(&symbolizer.open_files(), files.get());
}

}  // namespace
}  // namespace kscope
