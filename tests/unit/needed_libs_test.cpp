// unwind::needed_files (the files kscope loads tables for before a launched command runs)
// against ld.so itself: `ldd` (the loader with LD_TRACE_LOADED_OBJECTS) lists what the loader
// maps for the same program; both lists, compared as real paths, must be equal. And the
// ld.so.cache reader against `ldconfig -p`, and on bad input.
#include "unwind/needed_libs.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>

namespace kscope::unwind {
namespace {

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

std::string real(const std::string& p) {
  std::error_code ec;
  auto r = std::filesystem::canonical(p, ec);
  return ec ? p : r.string();
}

// ldd's paths ("name => /path (0x...)" and "/path/ld.so (0x...)"), the vDSO left out.
std::set<std::string> ldd_files(const std::string& program) {
  std::set<std::string> out;
  std::istringstream in(run("ldd '" + program + "' 2>/dev/null"));
  std::string line;
  while (std::getline(in, line)) {
    auto arrow = line.find("=> ");
    std::string rest = arrow == std::string::npos ? line : line.substr(arrow + 3);
    auto start = rest.find('/');
    if (start == std::string::npos) continue;
    auto end = rest.find(" (", start);
    out.insert(real(rest.substr(start, end - start)));
  }
  return out;
}

void expect_like_ldd(const std::string& program) {
  if (!std::filesystem::exists(program)) GTEST_SKIP() << program << " is not installed";
  std::set<std::string> expected = ldd_files(program);
  ASSERT_FALSE(expected.empty()) << "ldd printed nothing for " << program;
  expected.insert(real(program));
  NeededFiles got = needed_files(program, "");
  std::set<std::string> ours;
  for (const auto& f : got.files) ours.insert(real(f));
  EXPECT_EQ(ours, expected) << program;
  EXPECT_EQ(ours.size(), got.files.size()) << "a file listed twice under two names";
  EXPECT_TRUE(got.missing.empty());
  EXPECT_FALSE(got.capped);
  ASSERT_FALSE(got.files.empty());
  EXPECT_EQ(got.files.front(), program);  // the program first
}

TEST(NeededFiles, SameFilesAsTheLoaderForSystemPrograms) {
  for (const char* p : {"/usr/bin/python3", "/usr/bin/gzip", "/usr/bin/perl", "/usr/bin/ls"}) {
    SCOPED_TRACE(p);
    expect_like_ldd(std::filesystem::exists(p) ? real(p) : p);
  }
}

TEST(NeededFiles, SameFilesAsTheLoaderForTheTestPrograms) {
  for (const char* p : {"fault_stacks", "unwind_cxx", "unwind_chain"}) {
    SCOPED_TRACE(p);
    expect_like_ldd(std::string(KSCOPE_TEST_PROGS_DIR) + "/" + p);
  }
}

TEST(NeededFiles, CapIsReported) {
  if (!std::filesystem::exists("/usr/bin/python3")) GTEST_SKIP();
  NeededFiles got = needed_files("/usr/bin/python3", "", 2);
  EXPECT_TRUE(got.capped);
  EXPECT_LE(got.files.size(), 2u);
}

TEST(NeededFiles, NotAnElfFileGivesNothing) {
  EXPECT_TRUE(needed_files("/etc/passwd", "").files.empty());
  EXPECT_TRUE(needed_files("/nonexistent/program", "").files.empty());
}

TEST(LdSoCache, AgreesWithLdconfig) {
  auto cache = read_ld_so_cache();
  if (cache.empty()) GTEST_SKIP() << "no /etc/ld.so.cache in the new format";
  // ldconfig -p: "\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6"
  std::istringstream in(run("ldconfig -p 2>/dev/null"));
  std::string line;
  size_t checked = 0;
  std::set<std::string> seen;
  while (std::getline(in, line)) {
    if (line.find("(libc6,x86-64") == std::string::npos) continue;
    auto first = line.find_first_not_of(" \t");
    auto sp = line.find(' ', first);
    auto arrow = line.find("=> ");
    if (first == std::string::npos || sp == std::string::npos || arrow == std::string::npos)
      continue;
    std::string name = line.substr(first, sp - first), path = line.substr(arrow + 3);
    if (!seen.insert(name).second) continue;  // the first entry of a name is ld.so's choice
    auto it = cache.find(name);
    ASSERT_NE(it, cache.end()) << name;
    EXPECT_EQ(it->second, path) << name;
    ++checked;
  }
  EXPECT_GT(checked, 10u);
}

TEST(LdSoCache, TruncatedOrCorruptIsRefusedOrBounded) {
  std::string good;
  {
    FILE* f = fopen("/etc/ld.so.cache", "rb");
    if (!f) GTEST_SKIP();
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) good.append(buf, n);
    fclose(f);
  }
  // Every truncation: no crash, no string read past the end (run under ASan for the proof).
  for (size_t len = 0; len < good.size(); len += 1 + len / 7) {
    auto m = parse_ld_so_cache(good.substr(0, len));
    for (const auto& [k, v] : m) EXPECT_LE(k.size() + v.size(), len);
  }
  // A header claiming more entries than bytes.
  std::string bad = good.substr(0, 48);
  if (bad.size() == 48) {
    bad[20] = '\xff';
    bad[21] = '\xff';
    EXPECT_TRUE(parse_ld_so_cache(bad).empty());
  }
  // Offsets pointing past the end.
  std::string wild = good;
  for (size_t i = 48 + 4; i + 8 < wild.size() && i < 48 + 24 * 50; i += 24) {
    wild[i + 3] = '\x7f';
  }
  (void)parse_ld_so_cache(wild);
  EXPECT_TRUE(parse_ld_so_cache("not a cache").empty());
}

}  // namespace
}  // namespace kscope::unwind
