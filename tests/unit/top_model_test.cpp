// kscope top's arithmetic: grouping, differencing and ranking of accounts, and the top
// recording's round trip and corruption handling.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "export/folded.h"
#include "model/top_aggregator.h"
#include "model/top_recording.h"

namespace kscope {
namespace {

TopSample sample(uint64_t t, std::initializer_list<std::pair<TopAccountKey, TopValues>> accounts) {
  TopSample s;
  s.time_ns = t;
  for (const auto& [k, v] : accounts) s.accounts[k] = v;
  return s;
}

std::string comm(uint32_t pid, uint32_t tid) {
  if (tid == 11 || tid == 12) return "worker";
  if (tid == pid) return "main" + std::to_string(pid);
  return "t" + std::to_string(tid);
}

TEST(TopAggregator, DifferencesIntervalsPerStack) {
  TopAccountKey a{10, 11, 1, 2}, b{10, 11, 3, 4}, c{20, 20, 5, 6};
  TopSample prev = sample(1000, {{a, {100, 10, 1, 1, 0}}, {b, {50, 0, 1, 0, 1}}});
  TopSample cur =
      sample(2000, {{a, {400, 30, 3, 2, 1}}, {b, {50, 0, 1, 0, 1}}, {c, {900, 5, 2, 2, 0}}});
  TopTable t = build_top_table(&prev, cur, 0, TopGroupBy::kStack, TopSortKey::kOnCpu, comm);
  EXPECT_EQ(t.interval_ns, 1000u);
  ASSERT_EQ(t.rows.size(), 2u);  // b did not move: no row
  EXPECT_EQ(t.rows[0].pid, 20u);
  EXPECT_EQ(t.rows[0].values.oncpu_ns, 900u);
  EXPECT_EQ(t.rows[0].comm, "main20");
  EXPECT_EQ(t.rows[1].tid, 11u);
  EXPECT_EQ(t.rows[1].values, (TopValues{300, 20, 2, 1, 1}));
  EXPECT_EQ(t.rows[1].kstack, 1);
  EXPECT_EQ(t.rows[1].ustack, 2);
  EXPECT_EQ(t.total.oncpu_ns, 1200u);
}

TEST(TopAggregator, GroupsBeforeDifferencingSoMovingRunningSlicesStayExact) {
  // The running slice of tid 11 was counted under "unknown stack" at the first sample and
  // under its real stack at the second: per-thread totals must not lose or double it.
  TopAccountKey running{10, 11, kStackUnknown, kStackUnknown}, real{10, 11, 7, 8};
  TopSample prev = sample(1000, {{running, {500, 0, 1, 0, 0}}});
  TopSample cur = sample(3000, {{real, {1800, 0, 1, 1, 0}}});
  TopTable t = build_top_table(&prev, cur, 0, TopGroupBy::kTid, TopSortKey::kOnCpu, comm);
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0].values.oncpu_ns, 1300u);
  EXPECT_EQ(t.rows[0].values.switches, 0u);
  EXPECT_EQ(t.rows[0].values.voluntary, 1u);
  EXPECT_EQ(t.rows[0].kstack, 7);  // the known stack represents the thread
}

TEST(TopAggregator, ByPidAndCommSumThreadsAndPickTheBusiestStack) {
  TopAccountKey a{10, 10, 1, 1}, b{10, 11, 2, 2}, c{10, 12, 3, 3}, d{30, 30, 4, 4};
  TopSample cur = sample(5000, {{a, {100, 0, 1, 1, 0}},
                                {b, {700, 0, 2, 2, 0}},
                                {c, {200, 0, 1, 0, 1}},
                                {d, {50, 0, 1, 1, 0}}});
  TopTable byp = build_top_table(nullptr, cur, 1000, TopGroupBy::kPid, TopSortKey::kOnCpu, comm);
  EXPECT_EQ(byp.interval_ns, 4000u);
  ASSERT_EQ(byp.rows.size(), 2u);
  EXPECT_EQ(byp.rows[0].pid, 10u);
  EXPECT_EQ(byp.rows[0].tid, 0u);
  EXPECT_EQ(byp.rows[0].values.oncpu_ns, 1000u);
  EXPECT_EQ(byp.rows[0].comm, "main10");
  EXPECT_EQ(byp.rows[0].kstack, 2);  // tid 11's account had the most on-CPU time
  TopTable byc = build_top_table(nullptr, cur, 1000, TopGroupBy::kComm, TopSortKey::kOnCpu, comm);
  ASSERT_EQ(byc.rows.size(), 3u);  // worker (11+12), main10, main30
  EXPECT_EQ(byc.rows[0].comm, "worker");
  EXPECT_EQ(byc.rows[0].values.oncpu_ns, 900u);
  EXPECT_EQ(byc.rows[0].pid, 0u);
  EXPECT_EQ(byc.rows[0].tid, 0u);
}

TEST(TopAggregator, SortKeys) {
  std::vector<TopRow> rows(3);
  rows[0].pid = 3, rows[0].comm = "b", rows[0].values = {10, 5, 9, 1, 0};
  rows[1].pid = 1, rows[1].comm = "c", rows[1].values = {30, 1, 1, 0, 1};
  rows[2].pid = 2, rows[2].comm = "a", rows[2].values = {20, 9, 4, 4, 0};
  sort_top_rows(rows, TopSortKey::kOnCpu);
  EXPECT_EQ(rows[0].pid, 1u);
  sort_top_rows(rows, TopSortKey::kSwitches);
  EXPECT_EQ(rows[0].pid, 3u);
  sort_top_rows(rows, TopSortKey::kRunqWait);
  EXPECT_EQ(rows[0].pid, 2u);
  sort_top_rows(rows, TopSortKey::kPid);
  EXPECT_EQ(rows[0].pid, 1u);
  sort_top_rows(rows, TopSortKey::kComm);
  EXPECT_EQ(rows[0].comm, "a");
  sort_top_rows(rows, TopSortKey::kAvgSlice);  // 30/1, 10/1, 20/4
  EXPECT_EQ(rows[0].pid, 1u);
  EXPECT_EQ(rows[2].pid, 2u);
}

TEST(TopModel, GroupAndSortCycles) {
  EXPECT_EQ(next_group_by(TopGroupBy::kStack), TopGroupBy::kTid);
  EXPECT_EQ(next_group_by(TopGroupBy::kComm), TopGroupBy::kStack);
  EXPECT_EQ(next_sort_key(TopSortKey::kComm), TopSortKey::kOnCpu);
  EXPECT_EQ(parse_group_by("pid"), TopGroupBy::kPid);
  EXPECT_FALSE(parse_group_by("cpu"));
}

StackProfile make_profile() {
  StackProfile p;
  p.value_types = {{"oncpu", "nanoseconds"}, {"switches", "count"}};
  ProfileFrame k;
  k.addr = 0xffffffff81000000;
  k.function = "schedule";
  k.offset = 0x23;
  k.module = "kernel";
  k.kernel = true;
  k.resolved = true;
  ProfileFrame u;
  u.addr = 0x401234;
  u.function = "main";
  u.offset = 0x10;
  u.module = "prog";
  u.module_path = "/usr/bin/prog";
  u.build_id = "abcd";
  u.resolved = true;
  ProfileFrame x;
  x.addr = 0x7f0000001000;
  x.module = "libc.so.6";
  x.offset = 0x1000;
  p.frames = {k, u, x};
  ProfileSample s1{{0, 1}, {1000, 2}, 10, 11, "worker"};
  ProfileSample s2{{2, 1}, {-5, 1}, 10, 12, "odd;name"};
  p.samples = {s1, s2};
  p.duration_ns = 123456;
  return p;
}

TEST(TopRecording, RoundTripAndDamage) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("kscope-top-rec-" + std::to_string(getpid()) + ".ksr"))
                         .string();
  RecordingMeta meta;
  meta.kscope_version = "test";
  meta.target_pids = {10};
  auto w = TopRecordingWriter::create(path, meta);
  ASSERT_TRUE(w) << w.error().describe();
  ASSERT_TRUE((*w)->add_thread(ThreadInfo{10, 11, "worker"}));
  for (uint64_t i = 0; i < 20000; ++i)  // more than one slice block
    ASSERT_TRUE((*w)->add_slice(
        TopSlice{10, 11, static_cast<uint32_t>(i % 2), i * 100, i * 100 + 50, i % 3 == 0, ""}));
  TopTable table;
  table.end_time_ns = 5000;
  table.interval_ns = 1000;
  table.switches_all = 77;
  table.cpu_busy = 0.5;
  TopRow r1;
  r1.pid = 10, r1.tid = 11, r1.comm = "worker", r1.values = {10, 1, 2, 3, 4};
  TopRow r2 = r1;
  r2.kstack = 5;  // the same thread under another stack: merged per thread
  table.rows = {r1, r2};
  ASSERT_TRUE((*w)->add_interval(table, 1000));
  TopCounters counters;
  counters.kstack_collisions = 3;
  ASSERT_TRUE((*w)->finish(make_profile(), counters));

  auto r = read_top_recording(path);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_TRUE(r->summary.complete);
  ASSERT_EQ(r->slices.size(), 20000u);
  EXPECT_EQ(r->slices[12345].start_ns, 1234500u);
  EXPECT_EQ(r->slices[12345].end_ns, 1234550u);
  EXPECT_EQ(r->slices[12345].voluntary, 12345 % 3 == 0);
  EXPECT_EQ(r->slices[12345].comm, "worker");
  ASSERT_EQ(r->intervals.size(), 1u);
  EXPECT_EQ(r->intervals[0].end_ns, 4000u);
  EXPECT_NEAR(r->intervals[0].cpu_busy, 0.5, 1e-6);
  ASSERT_EQ(r->intervals[0].rows.size(), 1u);
  EXPECT_EQ(r->intervals[0].rows[0].values, (TopValues{20, 2, 4, 6, 8}));
  ASSERT_TRUE(r->has_profile);
  StackProfile want = make_profile();
  ASSERT_EQ(r->profile.frames.size(), want.frames.size());
  EXPECT_EQ(r->profile.frames[1].build_id, "abcd");
  EXPECT_TRUE(r->profile.frames[0].kernel);
  EXPECT_FALSE(r->profile.frames[2].resolved);
  ASSERT_EQ(r->profile.samples.size(), 2u);
  EXPECT_EQ(r->profile.samples[1].values[0], -5);
  EXPECT_EQ(r->profile.samples[0].frames, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(r->counters.kstack_collisions, 3u);
  EXPECT_EQ(r->counters.lost(), 3u);

  // Folded output of the same profile: root first, kernel frames marked, ';' in names replaced.
  std::FILE* f = std::tmpfile();
  ASSERT_TRUE(write_folded(r->profile, f));
  std::rewind(f);
  char buf[512] = {};
  size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  EXPECT_EQ(std::string(buf, n),
            "odd_name;main;libc.so.6+0x1000 -5\nworker;main;schedule_[k] 1000\n");

  // A faults reader refuses it by name; damage is reported with an offset.
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_GT(bytes.size(), 400u);
  bytes[bytes.size() / 2] ^= 0x5a;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  auto bad = read_top_recording(path);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("corrupted at byte"), std::string::npos)
      << bad.error().message;
  // Cut mid-block: reads what is complete and says it is truncated.
  bytes[bytes.size() / 2] ^= 0x5a;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes.substr(0, bytes.size() - 10);
  }
  auto cut = read_top_recording(path);
  ASSERT_TRUE(cut) << cut.error().describe();
  EXPECT_TRUE(cut->summary.truncated);
  EXPECT_FALSE(cut->summary.complete);
  EXPECT_EQ(cut->slices.size(), 20000u);
  std::filesystem::remove(path);
}

TEST(TopRecording, FaultsRecordingIsRefusedByName) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("kscope-faults-rec-" + std::to_string(getpid()) + ".ksr"))
                         .string();
  auto w = RecordingWriter::create(path, RecordingMeta{});
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->finish(RecordingTrailer{}));
  auto r = read_top_recording(path);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("is a 'kscope faults' recording"), std::string::npos);
  auto k = recording_kind(path);
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, RecordingKind::kFaults);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace kscope
