// kscope export of a real recording against ground truth: faultprog's known behaviour and the
// `--events csv` stream of the same run.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <vector>

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

// The csv/jsonl exports' `symbol` field (--symbols) comes from the names the recording stored
// when it was made: a faults recording of a binary deleted afterwards still names its function.
// Ground truth: faultprog anon-write faults 3000 pages in touch_pages_permuted, and the names
// `kscope faults --events --symbols` streamed while the binary existed.
TEST(ExportRuntime, SymbolFieldFromStoredNamesAfterTheBinaryWasDeleted) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  std::string dir = temp_dir();
  std::string prog = dir + "/faultprog_gone", rec = dir + "/run.kscope";
  ASSERT_EQ(run({"/bin/cp", std::string(KSCOPE_TEST_PROGS_DIR) + "/faultprog", prog}).exit_code, 0);
  auto r = run(
      {KSCOPE_BINARY, "faults", "--no-plot", "--stacks", "-o", rec, "--events", dir + "/events.csv",
       "--format", "csv", "--symbols", "--", prog, "anon-write", "3000", "7"},
      180);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(::unlink(prog.c_str()), 0);

  r = run(
      {KSCOPE_BINARY, "export", rec, "--format", "csv", "--symbols", "-o", dir + "/export.csv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // time_ns,pid,tid,comm,addr,ip,access,mode,kind,segment,latency_ns,cpu,symbol,stack: the
  // fields a row's symbol and stack are (comm has no comma here: faultprog_gone).
  auto rows_of = [](const std::string& text) {
    std::vector<std::vector<std::string>> rows;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      std::vector<std::string> f;
      std::istringstream fields(line);
      for (std::string x; std::getline(fields, x, ',');) f.push_back(x);
      rows.push_back(std::move(f));
    }
    return rows;
  };
  auto exported = rows_of(read_file(dir + "/export.csv"));
  auto streamed = rows_of(read_file(dir + "/events.csv"));
  ASSERT_FALSE(exported.empty());
  ASSERT_EQ(exported.size(), streamed.size());
  EXPECT_EQ(exported[0], streamed[0]) << "the same columns as faults --events --symbols --stacks";
  ASSERT_GE(exported[0].size(), 14u);
  EXPECT_EQ(exported[0][12], "symbol");
  EXPECT_EQ(exported[0][13], "stack");
  size_t touch = 0, same = 0, named_while_tracing = 0;
  for (size_t i = 1; i < exported.size(); ++i) {
    ASSERT_GE(exported[i].size(), 14u) << i;
    ASSERT_GE(streamed[i].size(), 14u) << i;
    const std::string& symbol = exported[i][12];
    if (symbol.starts_with("touch_pages_permuted+0x") && symbol.ends_with(" (faultprog_gone)")) {
      ++touch;
      // The stack's leaf frame is the same function (leaf first).
      EXPECT_TRUE(exported[i][13].starts_with("touch_pages_permuted")) << exported[i][13];
    }
    // Where the stream named the address by function ("function+0xoff (module)"; unresolved
    // ones are "module+0xoff" or "0xaddr"), the export names it the same way.
    if (streamed[i][12].ends_with(")")) {
      ++named_while_tracing;
      same += symbol == streamed[i][12];
    }
  }
  EXPECT_GE(touch, 3000u) << read_file(dir + "/export.csv").substr(0, 2000);
  EXPECT_EQ(same, named_while_tracing);
  EXPECT_GE(named_while_tracing, touch);

  r = run({KSCOPE_BINARY, "export", rec, "--format", "jsonl", "--symbols", "-o",
           dir + "/export.jsonl"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t json_touch = 0;
  std::istringstream in(read_file(dir + "/export.jsonl"));
  for (std::string line; std::getline(in, line);)
    json_touch += line.find("\"symbol\":\"touch_pages_permuted+0x") != std::string::npos;
  EXPECT_EQ(json_touch, touch);

  // Without --symbols the export has no symbol field; with another format it is refused.
  r = run({KSCOPE_BINARY, "export", rec, "--format", "csv", "-o", dir + "/plain.csv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(rows_of(read_file(dir + "/plain.csv"))[0].size(), exported[0].size() - 1);
  r = run(
      {KSCOPE_BINARY, "export", rec, "--format", "folded", "--symbols", "-o", dir + "/x.folded"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--symbols"), std::string::npos) << r.err;
  run({"/bin/rm", "-rf", dir});
}

}  // namespace
}  // namespace kscope::testing
