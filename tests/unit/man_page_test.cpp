// docs/kscope.1 renders cleanly: no warnings from mandoc's linter or from groff, and each
// SYNOPSIS entry on its own line (a missing .br once ran "-o FILE kscope monitor" together).
#include <gtest/gtest.h>
#include <unistd.h>

#include <sstream>

#include "subprocess.h"

namespace kscope::testing {
namespace {

const std::string kManPage = std::string(KSCOPE_SOURCE_DIR) + "/docs/kscope.1";

bool have(const char* tool) {
  return run({"/bin/sh", "-c", std::string("command -v ") + tool}).exit_code == 0;
}

TEST(ManPage, MandocLintFindsNothing) {
  if (!have("mandoc")) GTEST_SKIP() << "mandoc is not installed (scripts/deps.sh check)";
  // Warnings and above; mandoc's STYLE level only asks for source lines under 80 bytes.
  auto r = run({"mandoc", "-T", "lint", "-W", "warning", kManPage});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out + r.err, "");
}

TEST(ManPage, GroffGivesNoWarnings) {
  if (!have("groff")) GTEST_SKIP() << "groff is not installed";
  // 78 columns, as `man` formats for an 80-column terminal.
  auto r = run({"groff", "-ww", "-z", "-man", "-Tutf8", "-rLL=78n", kManPage});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err, "") << "groff warnings";
}

TEST(ManPage, EachSynopsisEntryStartsALine) {
  if (!have("groff")) GTEST_SKIP() << "groff is not installed";
  // So wide that nothing wraps: every entry must be exactly one line of its own.
  auto r = run({"groff", "-man", "-Tascii", "-P-cbou", "-rLL=1000n", kManPage});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream in(r.out);
  std::string line;
  bool in_synopsis = false;
  std::vector<std::string> entries;
  while (std::getline(in, line)) {
    if (line == "SYNOPSIS") {
      in_synopsis = true;
      continue;
    }
    if (in_synopsis && !line.empty() && line[0] != ' ') break;  // the next section heading
    if (in_synopsis && !line.empty()) entries.push_back(line.substr(line.find_first_not_of(' ')));
  }
  // The source's entries: each `.B kscope...` line of the SYNOPSIS section.
  std::string source = read_file(kManPage);
  size_t from = source.find(".SH SYNOPSIS"), to = source.find(".SH DESCRIPTION");
  ASSERT_NE(from, std::string::npos);
  size_t expected = 0;
  for (size_t at = source.find("\n.B kscope", from); at < to;
       at = source.find("\n.B kscope", at + 1))
    ++expected;
  ASSERT_GE(expected, 10u);
  EXPECT_EQ(entries.size(), expected);
  for (const auto& e : entries) {
    EXPECT_TRUE(e.starts_with("kscope")) << e;
    // One command per line: "kscope " appears once, at the start.
    EXPECT_EQ(e.find(" kscope ", 1), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace kscope::testing
