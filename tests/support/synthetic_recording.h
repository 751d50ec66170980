// Synthetic faults recordings with known content, for report/export tests that need no root.
#pragma once

#include <unistd.h>

#include <string>
#include <vector>

#include "model/recording.h"

namespace kscope::testing {

struct SyntheticRecording {
  std::vector<ThreadInfo> threads;
  std::vector<MappingSnapshot> mappings;
  std::vector<ExitEvent> exits;
  std::vector<FaultRecord> faults;
  RecordingTrailer trailer;
};

// n faults of two processes over several segments: sequential heap pages, random anon pages, a
// few major file faults, some kernel-mode faults. Deterministic for a seed.
inline SyntheticRecording make_synthetic(size_t n, uint32_t seed = 1) {
  SyntheticRecording s;
  s.threads = {{100, 100, "alpha"}, {100, 101, "alpha-worker"}, {200, 200, "beta<script>"}};
  MappingSnapshot m;
  m.pid = 100;
  m.mappings = {{0x555500000000, 0x555500010000, 0, 1, 8, 1, "r-xp", "/nonexistent/alpha"},
                {0x7f0000000000, 0x7f0010000000, 0, 0, 0, 0, "rw-p", ""}};
  s.mappings.push_back(m);
  uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
  auto next = [&] {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
  };
  for (size_t i = 0; i < n; ++i) {
    FaultRecord f;
    f.time_ns = 1000 + i * 1000;
    const uint64_t r = next();
    switch (i % 4) {
      case 0:
        f.pid = 100;
        f.tid = 100;
        f.segment = Segment::kHeap;
        f.addr = 0x555600000000 + (i / 4) * 4096;
        f.ip = 0x555500001000;
        f.access = Access::kWrite;
        break;
      case 1:
        f.pid = 100;
        f.tid = 101;
        f.segment = Segment::kAnon;
        f.addr = 0x7f0000000000 + (r % 65536) * 4096;
        f.ip = 0x555500002000;
        f.access = Access::kWrite;
        break;
      case 2:
        f.pid = 200;
        f.tid = 200;
        f.segment = Segment::kFile;
        f.addr = 0x7f1000000000 + (i % 512) * 4096 + 8;
        f.ip = 0x400100;
        f.kind = (i % 8 == 2) ? FaultKind::kMajor : FaultKind::kMinor;
        break;
      default:
        f.pid = 100;
        f.tid = 100;
        f.segment = Segment::kStack;
        f.addr = 0x7ffd00000000 - (i % 64) * 4096;
        f.ip = 0xffffffff81000000 + (i % 3) * 16;
        f.mode = FaultMode::kKernel;
        break;
    }
    f.latency_ns = 200 + r % 5000;
    f.cpu = static_cast<uint32_t>(i % 2);
    s.faults.push_back(f);
  }
  s.exits = {{n * 1000 + 2000, 100, 101, 10, 0, false}, {n * 1000 + 3000, 100, 100, 20, 1, true}};
  s.trailer.lost_per_cpu = {0, 0};
  s.trailer.kernel_minflt = n;
  return s;
}

inline std::string write_synthetic(const std::string& path, const SyntheticRecording& s,
                                   bool finish = true) {
  RecordingMeta meta;
  meta.kscope_version = "test";
  meta.command_line = {"kscope", "faults", "--", "synthetic"};
  meta.hostname = "testhost";
  meta.kernel_release = "6.0-test";
  meta.start_wall_ns = 1700000000000000000ull;
  meta.target_pids = {100};
  auto w = RecordingWriter::create(path, meta);
  if (!w) return w.error().describe();
  for (const auto& t : s.threads) (void)w->add_thread(t);
  for (const auto& m : s.mappings) (void)w->add_mappings(m);
  for (const auto& f : s.faults) {
    auto st = w->add_fault(f);
    if (!st) return st.error().describe();
  }
  for (const auto& e : s.exits) (void)w->add_exit(e);
  if (finish) {
    auto st = w->finish(s.trailer);
    if (!st) return st.error().describe();
  } else {
    auto st = w->flush();
    if (!st) return st.error().describe();
  }
  return {};
}

inline std::string temp_dir() {
  char tmpl[] = "/tmp/kscope-test-XXXXXX";
  const char* d = ::mkdtemp(tmpl);
  return d ? d : "/tmp";
}

}  // namespace kscope::testing
