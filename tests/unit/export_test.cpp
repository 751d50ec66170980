// kscope export against ground truth: the records written into a synthetic recording, decoded
// back by independent readers (sqlite3 library, nlohmann::json, go tool pprof).
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "export/chrome_trace.h"
#include "export/fault_event_writer.h"
#include "export/pprof.h"
#include "subprocess.h"
#include "synthetic_fixture.h"
#include "tools.h"

namespace kscope::testing {
namespace {

class ExportTest : public SyntheticRecordingTest {
 protected:
  RunResult kscope_export(const std::string& format, const std::string& out) {
    return run({KSCOPE_BINARY, "export", rec_, "--format", format, "-o", out});
  }
};

TEST_F(ExportTest, CsvAndJsonlAreTheEventsOfTheRecording) {
  std::map<uint32_t, std::string> comm;
  for (const auto& t : data_.threads) comm[t.tid] = t.comm;
  for (auto [name, format] :
       {std::pair{"csv", EventFormat::kCsv}, {"jsonl", EventFormat::kJsonl}}) {
    std::string out = dir_ + "/f." + name;
    auto r = kscope_export(name, out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    fmt::memory_buffer expected;
    if (format == EventFormat::kCsv) {
      expected.append(kFaultCsvHeader);
      expected.push_back('\n');
    }
    for (const auto& f : data_.faults) FaultEventWriter::format(expected, format, f, comm[f.tid]);
    EXPECT_EQ(read_file(out), fmt::to_string(expected)) << name;
  }
  // Exported files are for sharing: 0666 minus the umask, not the recording's 0600.
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/f.csv").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u & ~static_cast<unsigned>(::umask(022)));
}

int64_t query_int(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sql;
  int64_t v = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) v = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  return v;
}

TEST_F(ExportTest, SqliteCountsMatchTheRecording) {
  std::string out = dir_ + "/f.sqlite";
  auto r = kscope_export("sqlite", out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(out.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  EXPECT_EQ(query_int(db, "SELECT count(*) FROM faults"),
            static_cast<int64_t>(data_.faults.size()));
  std::map<std::string, int64_t> by_segment, by_pid;
  int64_t majors = 0;
  for (const auto& f : data_.faults) {
    ++by_segment[std::string(to_string(f.segment))];
    ++by_pid[std::to_string(f.pid)];
    majors += f.kind == FaultKind::kMajor;
  }
  for (const auto& [seg, n] : by_segment)
    EXPECT_EQ(query_int(db, "SELECT count(*) FROM faults WHERE segment='" + seg + "'"), n) << seg;
  for (const auto& [pid, n] : by_pid) {
    EXPECT_EQ(query_int(db, "SELECT faults FROM processes WHERE pid=" + pid), n);
    // accounts (the stack view) agree with the per-fault rows.
    EXPECT_EQ(query_int(db, "SELECT sum(value) FROM accounts WHERE type='faults' AND pid=" + pid),
              n);
  }
  EXPECT_EQ(query_int(db, "SELECT count(*) FROM faults WHERE kind='major'"), majors);
  EXPECT_EQ(query_int(db, "SELECT sum(value) FROM accounts WHERE type='major_faults'"), majors);
  EXPECT_EQ(query_int(db, "SELECT count(*) FROM threads"), 3);
  EXPECT_EQ(query_int(db, "SELECT count(*) FROM mappings"), 2);
  EXPECT_EQ(query_int(db, "SELECT kernel_minflt FROM processes WHERE pid=100"), 30);
  // Every fault points at a frame whose address is the fault's ip (same process).
  EXPECT_EQ(query_int(db, "SELECT count(*) FROM faults f JOIN frames fr ON f.frame_id = fr.id"),
            static_cast<int64_t>(data_.faults.size()));
  // Kernel-mode faults resolve to kernel frames.
  EXPECT_EQ(query_int(db,
                      "SELECT count(*) FROM faults f JOIN frames fr ON f.frame_id = fr.id "
                      "WHERE fr.kernel = 1"),
            by_segment["stack"]);
  // The page column is addr >> 12 and indexes exist on the obvious keys.
  EXPECT_EQ(
      query_int(
          db, "SELECT count(*) FROM faults WHERE page * 4096 > addr OR page * 4096 + 4096 <= addr"),
      0);
  EXPECT_GE(
      query_int(db, "SELECT count(*) FROM sqlite_master WHERE type='index' AND tbl_name='faults'"),
      4);
  sqlite3_close(db);
}

TEST_F(ExportTest, ChromeTraceHasOneInstantPerFaultAndValidEvents) {
  std::string out = dir_ + "/f.json";
  auto r = kscope_export("chrome-trace", out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(read_file(out));
  ASSERT_TRUE(j["traceEvents"].is_array());
  size_t instants = 0;
  std::map<uint32_t, std::string> thread_names;
  for (const auto& e : j["traceEvents"]) {
    ASSERT_TRUE(e["ph"].is_string());
    ASSERT_TRUE(e["pid"].is_number_integer());
    ASSERT_TRUE(e["tid"].is_number_integer());
    if (e["ph"] == "i") {
      ASSERT_TRUE(e["ts"].is_number());
      EXPECT_EQ(e["s"], "t");
      const FaultRecord& f = data_.faults[instants];
      EXPECT_DOUBLE_EQ(e["ts"].get<double>(), static_cast<double>(f.time_ns) / 1000.0);
      EXPECT_EQ(e["args"]["segment"], std::string(to_string(f.segment)));
      EXPECT_EQ(e["args"]["addr"], fmt::format("{:#x}", f.addr));
      ++instants;
    } else if (e["ph"] == "M" && e["name"] == "thread_name") {
      thread_names[e["tid"].get<uint32_t>()] = e["args"]["name"].get<std::string>();
    }
  }
  EXPECT_EQ(instants, data_.faults.size());
  EXPECT_EQ(thread_names[101], "alpha-worker");
  EXPECT_EQ(thread_names[200], "beta<script>");
}

TEST(ChromeTrace, SchedSlicesBecomeCompleteEvents) {
  std::vector<SchedSlice> slices = {{1, 1, 0, 1000, 251500, "main"}, {1, 2, 1, 5000, 9000, "w\"x"}};
  ChromeTraceInput in;
  in.slices = slices;
  in.thread_names = {{1, "main"}, {2, "w\"x"}};
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  ASSERT_TRUE(write_chrome_trace(in, f).ok());
  std::fclose(f);
  auto j = nlohmann::json::parse(std::string(buf, len));
  std::free(buf);
  std::vector<nlohmann::json> complete;
  for (const auto& e : j["traceEvents"])
    if (e["ph"] == "X") complete.push_back(e);
  ASSERT_EQ(complete.size(), 2u);
  EXPECT_DOUBLE_EQ(complete[0]["ts"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(complete[0]["dur"].get<double>(), 250.5);
  EXPECT_EQ(complete[0]["args"]["cpu"], 0);
  EXPECT_EQ(complete[1]["name"], "w\"x");
  EXPECT_EQ(complete[1]["tid"], 2);
}

// go tool pprof, offline: module mode off, no toolchain download, caches in a temp dir.
RunResult go_pprof(const std::string& go, const std::vector<std::string>& args,
                   const std::string& tmp) {
  std::vector<std::string> argv = {"/usr/bin/env",
                                   "HOME=" + tmp,
                                   "GOCACHE=" + tmp + "/cache",
                                   "GOPATH=" + tmp + "/go",
                                   "GOTOOLCHAIN=local",
                                   "GOFLAGS=",
                                   "GOPROXY=off",
                                   "GO111MODULE=off",
                                   go,
                                   "tool",
                                   "pprof"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, 120);
}

TEST(Pprof, GoToolPprofReadsASyntheticProfile) {
  KSCOPE_REQUIRE_TOOL_OR_SKIP(go, "go", "golang-go");
  StackProfile p;
  p.value_types = {{"oncpu", "nanoseconds"}, {"switches", "count"}};
  auto frame = [](std::string fn, bool kernel, std::string module) {
    ProfileFrame f;
    f.function = std::move(fn);
    f.resolved = true;
    f.kernel = kernel;
    f.module = module;
    f.module_path = kernel ? "" : "/usr/bin/" + module;
    f.addr = kernel ? 0xffffffff81000000 : 0x401000;
    return f;
  };
  p.frames = {frame("main", false, "app"), frame("compute_hot", false, "app"),
              frame("io_wait", false, "app"), frame("do_syscall_64", true, "kernel")};
  // leaf first
  p.samples.push_back({{1, 0}, {7'000'000, 3}, 1, 1, "app"});
  p.samples.push_back({{3, 2, 0}, {2'000'000, 9}, 1, 1, "app"});
  p.samples.push_back({{0}, {500'000, 1}, 1, 2, "app"});
  p.duration_ns = 1'000'000'000;
  auto bytes = encode_pprof(p);
  ASSERT_TRUE(bytes.ok());
  std::string dir = temp_dir();
  std::string path = dir + "/p.pb.gz";
  std::ofstream(path, std::ios::binary) << *bytes;
  auto r = go_pprof(go, {"-top", path}, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  // The first row of -top is the largest flat value: compute_hot with 7ms of 9.5ms total.
  auto pos = r.out.find("flat%");
  ASSERT_NE(pos, std::string::npos) << r.out;
  std::string rows = r.out.substr(r.out.find('\n', pos) + 1);
  std::string first_row = rows.substr(0, rows.find('\n'));
  EXPECT_NE(first_row.find("compute_hot"), std::string::npos) << r.out;
  EXPECT_NE(first_row.find("7000us"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("9500us total"), std::string::npos) << r.out;
  // The second value type: do_syscall_64 has the most switches.
  r = go_pprof(go, {"-top", "-sample_index=switches", path}, dir);
  rows = r.out.substr(r.out.find('\n', r.out.find("flat%")) + 1);
  EXPECT_NE(rows.substr(0, rows.find('\n')).find("do_syscall_64"), std::string::npos) << r.out;
  run({"/bin/rm", "-rf", dir});
}

TEST_F(ExportTest, PprofOfFaultsNamesTheLocations) {
  KSCOPE_REQUIRE_TOOL_OR_SKIP(go, "go", "golang-go");
  std::string out = dir_ + "/f.pb.gz";
  auto r = kscope_export("pprof", out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = go_pprof(go, {"-top", "-nodecount=100", out}, dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Type: faults"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(fmt::format("Total samples = {}", data_.faults.size())), std::string::npos)
      << r.out;
}

// Recorded without --stacks: each line is a process and its faulting location, summing to the
// faults (stacks: tests/unit/fault_stacks_test.cpp).
TEST_F(ExportTest, FoldedOfAFaultsRecordingWithoutStacksIsByLocation) {
  std::string out = dir_ + "/f.folded";
  auto r = kscope_export("folded", out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream in(read_file(out));
  std::string line;
  uint64_t sum = 0;
  while (std::getline(in, line)) {
    auto sp = line.rfind(' ');
    ASSERT_NE(sp, std::string::npos) << line;
    EXPECT_EQ(std::count(line.begin(), line.begin() + static_cast<long>(sp), ';'), 1) << line;
    sum += std::stoull(line.substr(sp + 1));
  }
  EXPECT_EQ(sum, data_.faults.size());
}

TEST_F(ExportTest, UnwritableOutputFailsBeforeReading) {
  // The recording does not exist either: the output path is checked first.
  auto r = run({KSCOPE_BINARY, "export", dir_ + "/missing.kscope", "--format", "csv", "-o",
                dir_ + "/no/such/dir/out.csv"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot write " + dir_ + "/no/such/dir/out.csv"), std::string::npos)
      << r.err;
  r = run({KSCOPE_BINARY, "export", rec_, "--format", "pprof", "-o", "-"});
  EXPECT_EQ(r.exit_code, 2) << "binary formats refuse stdout";
  r = run({KSCOPE_BINARY, "export", rec_, "--format", "xml", "-o", dir_ + "/x"});
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(ExportTest, RecordingWhoseOnlyFaultsBlockIsDamagedNamesTheOffset) {
  // The 4,000 faults are one block: damaged, nothing usable is left (thread names and mappings
  // alone are no export). Damage that leaves something: report_test's DamagedRecording.
  std::string bytes = read_file(rec_);
  const size_t off = bytes.size() / 2;
  bytes[off] = static_cast<char>(bytes[off] ^ 0x5a);
  std::string bad = dir_ + "/bad.kscope";
  std::ofstream(bad, std::ios::binary) << bytes;
  for (const char* format : {"csv", "sqlite", "pprof", "chrome-trace"}) {
    auto r = run({KSCOPE_BINARY, "export", bad, "--format", format, "-o", dir_ + "/o"});
    EXPECT_EQ(r.exit_code, 1) << format;
    EXPECT_NE(r.err.find("nothing usable"), std::string::npos) << format << ": " << r.err;
    EXPECT_NE(r.err.find("a faults block (4000 fault records)"), std::string::npos)
        << format << ": " << r.err;
    EXPECT_NE(r.err.find(" skipped ("), std::string::npos) << format << ": " << r.err;
    EXPECT_NE(::access((dir_ + "/o").c_str(), F_OK), 0) << format;
  }
}

TEST_F(ExportTest, TruncatedRecordingExportsWhatItHoldsWithAWarning) {
  std::string bytes = read_file(rec_);
  std::string cut = dir_ + "/cut.kscope";
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() - 10);
  auto r = run({KSCOPE_BINARY, "export", cut, "--format", "csv", "-o", dir_ + "/o.csv"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("incomplete block at byte"), std::string::npos) << r.err;
}

TEST(ExportEmpty, EmptyRecordingGivesHeaderOnlyCsvAndEmptyTables) {
  std::string dir = temp_dir();
  SyntheticRecording empty;
  ASSERT_EQ(write_synthetic(dir + "/e.kscope", empty), "");
  auto r =
      run({KSCOPE_BINARY, "export", dir + "/e.kscope", "--format", "csv", "-o", dir + "/e.csv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(dir + "/e.csv"), std::string(kFaultCsvHeader) + "\n");
  r = run({KSCOPE_BINARY, "export", dir + "/e.kscope", "--format", "sqlite", "-o", dir + "/e.db"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  run({"/bin/rm", "-rf", dir});
}

}  // namespace
}  // namespace kscope::testing
