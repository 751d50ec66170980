// kscope export of a real recording against ground truth: faultprog's known behaviour and the
// `--events csv` stream of the same run.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "runtime_env.h"
#include "subprocess.h"
#include "synthetic_recording.h"
#include "tools.h"

namespace kscope::testing {
namespace {

TEST(ExportRuntime, ExportsAgreeWithTheRunThatRecordedThem) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  std::string dir = temp_dir();
  std::string rec = dir + "/run.kscope";
  // anon-write: 3000 faults in touch_pages_permuted, more than anything else in the program.
  auto r = run(
      {KSCOPE_BINARY, "faults", "--no-plot", "-o", rec, "--events", dir + "/events.csv", "--format",
       "csv", "--", std::string(KSCOPE_TEST_PROGS_DIR) + "/faultprog", "anon-write", "3000", "7"},
      120);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = run({KSCOPE_BINARY, "export", rec, "--format", "csv", "-o", dir + "/export.csv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(dir + "/export.csv"), read_file(dir + "/events.csv"));

  r = run({KSCOPE_BINARY, "export", rec, "--format", "sqlite", "-o", dir + "/run.db"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir + "/run.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT fr.function, count(*) FROM faults f JOIN frames fr ON "
                               "f.frame_id = fr.id GROUP BY fr.function ORDER BY 2 DESC LIMIT 1",
                               -1, &stmt, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "touch_pages_permuted");
  EXPECT_GE(sqlite3_column_int64(stmt, 1), 3000);
  sqlite3_finalize(stmt);
  sqlite3_close(db);

  std::string go = find_tool("go");
  if (go.empty()) {
    if (bpf_required()) FAIL() << "KSCOPE_REQUIRE_BPF=1 but go (golang-go) is missing";
    GTEST_SKIP() << "go not found (Debian package golang-go): pprof part skipped";
  }
  r = run({KSCOPE_BINARY, "export", rec, "--format", "pprof", "-o", dir + "/run.pb.gz"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run({"/usr/bin/env", "HOME=" + dir, "GOCACHE=" + dir + "/cache", "GOPATH=" + dir + "/go",
           "GOTOOLCHAIN=local", "GOFLAGS=", "GOPROXY=off", go, "tool", "pprof", "-top",
           dir + "/run.pb.gz"},
          120);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string rows = r.out.substr(r.out.find('\n', r.out.find("flat%")) + 1);
  EXPECT_NE(rows.substr(0, rows.find('\n')).find("touch_pages_permuted"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("File: faultprog"), std::string::npos) << r.out;
  run({"/bin/rm", "-rf", dir});
}

}  // namespace
}  // namespace kscope::testing
