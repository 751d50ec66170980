// Writes the seeds of the recording and ring fuzz targets (tests/fuzz/corpus/recording,
// top_recording, monitor_ring) with kscope's own writers: the unit tests' synthetic faults
// recording (complete, and cut off after a flush as after a kill), a small top recording, and
// monitor rings written by RingWriter (one read in order, one lapped and closed).
// Usage: fuzz_make_seeds CORPUS_DIR
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "model/top_recording.h"
#include "monitor/ring.h"
#include "synthetic_recording.h"

using namespace kscope;

namespace {

bool faults_seeds(const std::string& dir) {
  auto s = testing::make_synthetic(0);
  for (uint32_t i = 0; i < 40; ++i) {
    FaultRecord f;
    f.time_ns = 1000 + i * 997;
    f.pid = 100;
    f.tid = i % 3 ? 100 : 101;
    f.addr = 0x7f0000000000 + (i % 7) * 4096 + i * 64;
    f.ip = 0x555500001000 + (i % 5) * 16;
    f.access = i % 2 ? Access::kWrite : Access::kRead;
    f.kind = i % 11 == 0 ? FaultKind::kMajor : FaultKind::kMinor;
    f.segment = i % 3 ? Segment::kAnon : Segment::kHeap;
    f.latency_ns = 500 + i;
    s.faults.push_back(f);
  }
  s.trailer.kernel_minflt = s.faults.size();
  std::string e1 = testing::write_synthetic(dir + "/recording/complete.kscope", s, true);
  std::string e2 = testing::write_synthetic(dir + "/recording/unfinished.kscope", s, false);
  if (!e1.empty() || !e2.empty()) {
    std::fprintf(stderr, "make_seeds: %s%s\n", e1.c_str(), e2.c_str());
    return false;
  }
  return true;
}

bool top_seed(const std::string& dir) {
  RecordingMeta meta;
  meta.kscope_version = "seed";
  meta.command_line = {"kscope", "top", "--once", "-o", "top.ksr"};
  meta.target_pids = {10};
  auto w = TopRecordingWriter::create(dir + "/top_recording/top.ksr", meta);
  if (!w) return false;
  (void)(*w)->add_thread(ThreadInfo{10, 11, "worker"});
  MappingSnapshot m;
  m.pid = 10;
  m.mappings = {{0x555500000000, 0x555500010000, 0, 1, 8, 1, "r-xp", "/usr/bin/worker"}};
  (void)(*w)->add_mappings(m);
  for (uint64_t i = 0; i < 30; ++i)
    (void)(*w)->add_slice(
        TopSlice{10, 11, static_cast<uint32_t>(i % 2), i * 100, i * 100 + 50, i % 3 == 0, ""});
  TopTable table;
  table.end_time_ns = 5000;
  table.interval_ns = 1000;
  table.switches_all = 77;
  table.cpu_busy = 0.5;
  TopRow r;
  r.pid = 10, r.tid = 11, r.comm = "worker", r.values = {10, 1, 2, 3, 4};
  table.rows = {r};
  (void)(*w)->add_interval(table, 1000);
  StackProfile p;
  p.value_types = {{"oncpu", "nanoseconds"}, {"switches", "count"}};
  ProfileFrame k;
  k.addr = 0xffffffff81000000;
  k.function = "schedule";
  k.module = "kernel";
  k.kernel = true;
  k.resolved = true;
  ProfileFrame u;
  u.addr = 0x555500001000;
  u.function = "spin";
  u.module = "worker";
  u.build_id = "abcd";
  u.resolved = true;
  p.frames = {k, u};
  p.samples = {ProfileSample{{0, 1}, {1000, 2}, 10, 11, "worker"}};
  p.duration_ns = 5000;
  TopCounters counters;
  auto st = (*w)->finish(p, counters);
  return static_cast<bool>(st);
}

bool ring_seed(const std::string& path, uint32_t slots, uint32_t rows, bool close) {
  std::vector<uint64_t> mem(monitor::ring_bytes(slots) / 8 + 1);
  if (!monitor::init_ring(mem.data(), monitor::ring_bytes(slots), slots, 50'000'000,
                          1700000000000000000ull, 4242))
    return false;
  monitor::RingWriter w(mem.data());
  for (uint32_t i = 0; i < rows; ++i) {
    kscope_ring_slot row{};
    row.time_ns = (i + 1) * 50'000'000ull;
    row.period_index = i;
    row.pid = i % 2 ? 0 : 4243;
    std::strcpy(row.comm, i % 2 ? "*" : "kscope-work");
    row.min_faults = 100 + i;
    row.min_faults_total = 1000 + 100 * i;
    row.rss_kb = 69808;
    row.cpu_util_ppm = 719300;
    w.append(row);
  }
  w.set_periods(rows / 2, 1);
  if (close) w.mark_closed();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(mem.data()),
            static_cast<std::streamsize>(monitor::ring_bytes(slots)));
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds CORPUS_DIR\n");
    return 2;
  }
  std::string dir = argv[1];
  std::filesystem::create_directories(dir + "/recording");
  std::filesystem::create_directories(dir + "/top_recording");
  std::filesystem::create_directories(dir + "/monitor_ring");
  return faults_seeds(dir) && top_seed(dir) &&
                 ring_seed(dir + "/monitor_ring/ring8.shm", 8, 6, false) &&
                 ring_seed(dir + "/monitor_ring/lapped-closed.shm", 4, 11, true)
             ? 0
             : 1;
}
