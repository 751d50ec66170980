// Tests of the recording file format (src/model/recording.h, docs/recording-format.md).
#include "model/recording.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "file_bytes.h"
#include "temp_dir.h"

namespace kscope {
namespace {

namespace fs = std::filesystem;

// Layout constants repeated from docs/recording-format.md on purpose: the tests check that the
// code matches the document.
constexpr size_t kFileHeaderSize = 20;
constexpr size_t kBlockHeaderSize = 20;

using testing::crc;
using testing::get_u32;
using testing::put_u32;
using testing::read_bytes;
using testing::write_bytes;

class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("kscope-recording-test") {}
};

// A block as the document describes it: type, flags, length, count, payload crc, header crc.
std::string make_block(uint16_t type, uint16_t flags, uint32_t count, std::string_view payload) {
  std::string h(kBlockHeaderSize, '\0');
  h[0] = static_cast<char>(type);
  h[1] = static_cast<char>(type >> 8);
  h[2] = static_cast<char>(flags);
  h[3] = static_cast<char>(flags >> 8);
  put_u32(h, 4, static_cast<uint32_t>(payload.size()));
  put_u32(h, 8, count);
  put_u32(h, 12, crc(payload));
  put_u32(h, 16, crc(std::string_view(h).substr(0, 16)));
  return h + std::string(payload);
}

// Offsets of all block headers in a well-formed file, by walking the documented layout.
std::vector<uint64_t> block_offsets(const std::string& bytes) {
  std::vector<uint64_t> offsets;
  uint64_t pos = kFileHeaderSize;
  while (pos + kBlockHeaderSize <= bytes.size()) {
    offsets.push_back(pos);
    pos += kBlockHeaderSize + get_u32(bytes, pos + 4);
  }
  EXPECT_EQ(pos, bytes.size()) << "blocks do not tile the file";
  return offsets;
}

RecordingMeta test_meta() {
  RecordingMeta m;
  m.kscope_version = "0.1.0-test";
  m.command_line = {"kscope", "faults", "-o", "out.kscope", "--", "./prog", "arg with spaces", ""};
  m.hostname = "testhost";
  m.kernel_release = "6.1.0-test";
  m.start_wall_ns = 1'700'000'000'123'456'789ULL;
  m.target_pids = {1234, 4294967295u, 0};
  return m;
}

MappingSnapshot test_mappings(uint32_t pid, uint64_t time_ns) {
  MappingSnapshot s;
  s.pid = pid;
  s.time_ns = time_ns;
  s.mappings = {
      {0x555555554000, 0x555555556000, 0, 1234567, 8, 1, "r--p", "/usr/bin/prog"},
      {0x555555556000, 0x55555555a000, 0x2000, 1234567, 8, 1, "r-xp", "/usr/bin/prog"},
      {0x7ffff7fc1000, 0x7ffff7fc5000, 0, 0, 0, 0, "r--p", "[vvar]"},
      {0x7ffffffde000, 0x7ffffffff000, 0, 0, 0, 0, "rw-p", "[stack]"},
      {0xffffffffff600000, 0xffffffffff601000, 0, 0, 0, 0, "--xp", "[vsyscall]"},
      {0x2000, 0x1000, ~0ULL, ~0ULL, ~0u, ~0u, "", ""},  // nonsense values still round-trip
  };
  return s;
}

RecordingTrailer test_trailer() {
  RecordingTrailer t;
  t.lost_per_cpu = {0, 3, 0, std::numeric_limits<uint64_t>::max()};
  t.drop_counters = {{"ringbuf_full", 7}, {"stack_collisions", 0}};
  t.kernel_minflt = 123456;
  t.kernel_majflt = 12;
  t.faults_seen = 99999;
  return t;
}

// Random faults covering every field value class: all enum combinations, latency present and
// absent, extreme values, time jumping backwards across threads.
std::vector<FaultRecord> random_faults(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t bound) { return rng() % bound; };
  const uint32_t pids[] = {1, 1000, 1000, 4294967295u};
  const uint64_t ips[] = {0, 0x401000, 0x401234, 0x7ffff7a00000, 0xffffffff81000000ULL, ~0ULL};
  std::vector<FaultRecord> faults;
  uint64_t time = 1'000'000;
  for (size_t i = 0; i < n; ++i) {
    FaultRecord f;
    switch (pick(20)) {
      case 0:
        time -= std::min<uint64_t>(time, pick(5000));
        break;  // slightly backwards
      case 1:
        time = pick(2) ? 0 : std::numeric_limits<uint64_t>::max() - pick(10);
        break;
      default:
        time += pick(100'000);
    }
    f.time_ns = time;
    size_t p = pick(4);
    f.pid = pids[p];
    f.tid = pick(3) == 0 ? static_cast<uint32_t>(rng()) : f.pid + static_cast<uint32_t>(pick(3));
    switch (pick(4)) {
      case 0:
        f.addr = rng();
        break;
      case 1:
        f.addr = 0x7f0000000000 + pick(1 << 20) * 4096;
        break;
      case 2:
        f.addr = pick(2) ? 0 : ~0ULL;
        break;
      default:
        f.addr = 0x555555560000 + pick(1 << 30);
    }
    f.ip = pick(5) == 0 ? rng() : ips[pick(std::size(ips))];
    f.access = static_cast<Access>(pick(3));
    f.mode = static_cast<FaultMode>(pick(2));
    f.kind = static_cast<FaultKind>(pick(2));
    f.segment = static_cast<Segment>(pick(kSegmentCount));
    switch (pick(4)) {
      case 0:
        break;  // no latency
      case 1:
        f.latency_ns = pick(2) ? 0 : std::numeric_limits<uint64_t>::max();
        break;
      default:
        f.latency_ns = pick(1'000'000);
    }
    f.cpu = pick(10) == 0 ? static_cast<uint32_t>(rng()) : static_cast<uint32_t>(pick(8));
    faults.push_back(f);
  }
  return faults;
}

class CollectingVisitor : public RecordingVisitor {
 public:
  Recording r;
  Status on_meta(const RecordingMeta& m) override {
    r.meta = m;
    return {};
  }
  Status on_thread(const ThreadInfo& t) override {
    r.threads.push_back(t);
    return {};
  }
  Status on_mappings(const MappingSnapshot& s) override {
    r.mappings.push_back(s);
    return {};
  }
  Status on_fork(const ForkEvent& f) override {
    r.forks.push_back(f);
    return {};
  }
  Status on_exit(const ExitEvent& e) override {
    r.exits.push_back(e);
    return {};
  }
  Status on_fault(const FaultRecord& f) override {
    r.faults.push_back(f);
    return {};
  }
  Status on_trailer(const RecordingTrailer& t) override {
    r.trailer = t;
    return {};
  }
};

// The full content of a small test recording, written interleaved like the CLI would.
struct Content {
  RecordingMeta meta = test_meta();
  std::vector<ThreadInfo> threads;
  std::vector<MappingSnapshot> mappings;
  std::vector<ForkEvent> forks;
  std::vector<ExitEvent> exits;
  std::vector<FaultRecord> faults;
  RecordingTrailer trailer = test_trailer();
};

Content make_content(size_t nfaults, uint32_t seed) {
  Content c;
  c.faults = random_faults(nfaults, seed);
  c.threads = {{1000, 1000, "prog"},
               {1000, 1001, "worker-1"},
               {1, 1, ""},
               {4294967295u, 7, std::string(300, 'x')}};
  c.mappings = {test_mappings(1000, 5), test_mappings(1001, 70000)};
  c.forks = {{10, 1000, 1001}, {std::numeric_limits<uint64_t>::max(), 1, 4294967295u}};
  c.exits = {{500, 1000, 1001, 17, 2, false}, {900, 1000, 1000, ~0ULL, 0, true}};
  return c;
}

// Writes `c`, spreading threads, mappings and process events between the faults.
void write_content(RecordingWriter& w, const Content& c, bool finish = true) {
  size_t n = c.faults.size();
  for (size_t i = 0; i < n; ++i) {
    if (i < c.threads.size()) {
      ASSERT_TRUE(w.add_thread(c.threads[i]).ok());
    }
    if (i == n / 3 && !c.mappings.empty()) {
      ASSERT_TRUE(w.add_mappings(c.mappings[0]).ok());
    }
    if (i == n / 2) {
      for (const auto& f : c.forks) ASSERT_TRUE(w.add_fork(f).ok());
      ASSERT_TRUE(w.flush().ok());
    }
    if (i == 2 * n / 3 && c.mappings.size() > 1) {
      ASSERT_TRUE(w.add_mappings(c.mappings[1]).ok());
    }
    ASSERT_TRUE(w.add_fault(c.faults[i]).ok());
  }
  for (const auto& e : c.exits) ASSERT_TRUE(w.add_exit(e).ok());
  if (finish) {
    ASSERT_TRUE(w.finish(c.trailer).ok());
  }
}

void expect_equal_content(const Recording& r, const Content& c) {
  EXPECT_EQ(r.meta, c.meta);
  EXPECT_EQ(r.threads, c.threads);
  EXPECT_EQ(r.mappings, c.mappings);
  EXPECT_EQ(r.forks, c.forks);
  EXPECT_EQ(r.exits, c.exits);
  ASSERT_EQ(r.faults.size(), c.faults.size());
  for (size_t i = 0; i < c.faults.size(); ++i) ASSERT_EQ(r.faults[i], c.faults[i]) << "fault " << i;
}

// Writes the content to `path` and returns the file's bytes.
std::string write_file(const std::string& path, const Content& c,
                       RecordingWriterOptions options = {}) {
  auto w = RecordingWriter::create(path, c.meta, options);
  EXPECT_TRUE(w.ok()) << (w.ok() ? "" : w.error().describe());
  if (!w.ok()) return {};
  write_content(*w, c);
  return read_bytes(path);
}

TEST(RecordingTest, RoundTripRandomFaults) {
  TempDir dir;
  for (size_t block_records : {size_t{4096}, size_t{7}, size_t{1}}) {
    SCOPED_TRACE(fmt::format("block_records {}", block_records));
    Content c = make_content(20000, 42);
    std::string path = dir.file("rt.kscope");
    RecordingWriterOptions options;
    options.block_records = block_records;
    std::string bytes = write_file(path, c, options);

    auto r = read_recording(path);
    ASSERT_TRUE(r.ok()) << r.error().describe();
    expect_equal_content(*r, c);
    ASSERT_TRUE(r->trailer.has_value());
    RecordingTrailer expected = c.trailer;
    expected.faults_recorded = c.faults.size();
    EXPECT_EQ(*r->trailer, expected);
    EXPECT_TRUE(r->summary.complete);
    EXPECT_FALSE(r->summary.truncated);
    EXPECT_TRUE(r->summary.warning.empty());
    EXPECT_EQ(r->summary.version_major, kRecordingVersionMajor);
    EXPECT_EQ(r->summary.version_minor, kRecordingVersionMinor);
    EXPECT_EQ(r->summary.kind, RecordingKind::kFaults);
    EXPECT_EQ(r->summary.file_size, bytes.size());

    // The streaming reader delivers exactly the same items.
    CollectingVisitor v;
    auto s = visit_recording(path, v);
    ASSERT_TRUE(s.ok()) << s.error().describe();
    expect_equal_content(v.r, c);
    EXPECT_EQ(v.r.trailer, r->trailer);
  }
}

TEST(RecordingTest, EmptyRecordingRoundTrips) {
  TempDir dir;
  std::string path = dir.file("empty.kscope");
  RecordingMeta meta;  // all empty
  auto w = RecordingWriter::create(path, meta);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->finish(RecordingTrailer{}).ok());
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->meta, meta);
  EXPECT_TRUE(r->faults.empty());
  EXPECT_TRUE(r->summary.complete);
  EXPECT_EQ(r->trailer, RecordingTrailer{});
}

TEST(RecordingTest, InvalidFaultIsRejectedByWriter) {
  TempDir dir;
  auto w = RecordingWriter::create(dir.file("x.kscope"), test_meta());
  ASSERT_TRUE(w.ok());
  FaultRecord f;
  f.segment = static_cast<Segment>(kSegmentCount);
  EXPECT_FALSE(w->add_fault(f).ok());
  f.segment = Segment::kHeap;
  f.access = static_cast<Access>(3);
  EXPECT_FALSE(w->add_fault(f).ok());
}

// Bytes per fault for a synthetic trace, measured on the whole file.
double bytes_per_fault(const std::vector<FaultRecord>& faults, const std::string& path) {
  auto w = RecordingWriter::create(path, test_meta());
  EXPECT_TRUE(w.ok());
  for (const auto& f : faults) EXPECT_TRUE(w->add_fault(f).ok());
  EXPECT_TRUE(w->finish(RecordingTrailer{}).ok());
  auto r = read_recording(path);
  EXPECT_TRUE(r.ok());
  if (r.ok()) {
    EXPECT_EQ(r->faults, faults);
  }
  return static_cast<double>(w->bytes_written()) / static_cast<double>(faults.size());
}

TEST(RecordingTest, BytesPerFaultSequentialTouch) {
  // One thread memset()ing a fresh 400 MiB buffer: one ip, one page after the other, a fault
  // every 0.3-2 us, ~1-3 us latency, rare migrations.
  std::mt19937_64 rng(1);
  std::vector<FaultRecord> faults;
  uint64_t time = 5'000'000;
  uint32_t cpu = 3;
  for (size_t i = 0; i < 100'000; ++i) {
    FaultRecord f;
    time += 300 + rng() % 1700;
    if (rng() % 5000 == 0) cpu = static_cast<uint32_t>(rng() % 16);
    f.time_ns = time;
    f.pid = f.tid = 4242;
    f.addr = 0x7f3a5c000000 + i * 4096;
    f.ip = 0x7f3a6e1a2b3c;
    f.access = Access::kWrite;
    f.segment = Segment::kAnon;
    f.latency_ns = 800 + rng() % 2500;
    f.cpu = cpu;
    faults.push_back(f);
  }
  TempDir dir;
  double bpf = bytes_per_fault(faults, dir.file("seq.kscope"));
  std::printf("[ recording ] sequential touch: %.2f bytes per fault\n", bpf);
  EXPECT_LE(bpf, 32.0);
  EXPECT_LE(bpf, 10.0);  // what the encoding is designed for; a regression guard
}

TEST(RecordingTest, BytesPerFaultRandomAccess) {
  // Four threads of one process touching random (unaligned) addresses in a 4 GiB heap from a
  // handful of ips, each thread mostly staying on its cpu, some faults major.
  std::mt19937_64 rng(2);
  const uint64_t ips[] = {0x401a10,       0x401a88,       0x402f00,
                          0x7f00aa001234, 0x7f00aa0056ff, 0xffffffff81a0b0c0ULL};
  std::vector<FaultRecord> faults;
  uint64_t time = 5'000'000;
  uint32_t cpus[4] = {0, 1, 2, 3};
  for (size_t i = 0; i < 100'000; ++i) {
    FaultRecord f;
    size_t t = rng() % 4;
    time += 100 + rng() % 5000;
    f.time_ns = time - rng() % 200;  // threads' clocks interleave: slightly backwards at times
    f.pid = 9000;
    f.tid = 9000 + static_cast<uint32_t>(t);
    f.addr = 0x7e0000000000 + rng() % (4ULL << 30);
    f.ip = ips[rng() % std::size(ips)];
    f.mode = f.ip > 0xffff000000000000ULL ? FaultMode::kKernel : FaultMode::kUser;
    f.access = static_cast<Access>(rng() % 2);
    f.kind = rng() % 50 == 0 ? FaultKind::kMajor : FaultKind::kMinor;
    f.segment = Segment::kHeap;
    if (rng() % 200 == 0) cpus[t] = static_cast<uint32_t>(rng() % 64);
    f.cpu = cpus[t];
    f.latency_ns = f.kind == FaultKind::kMajor ? 50'000 + rng() % 5'000'000 : 500 + rng() % 4000;
    faults.push_back(f);
  }
  TempDir dir;
  double bpf = bytes_per_fault(faults, dir.file("random.kscope"));
  std::printf("[ recording ] random access, 4 threads: %.2f bytes per fault\n", bpf);
  EXPECT_LE(bpf, 32.0);
}

TEST(RecordingTest, BlocksAreWrittenWhileTracing) {
  // Memory stays bounded: a full block goes to the file without any flush() call.
  TempDir dir;
  std::string path = dir.file("bounded.kscope");
  auto w = RecordingWriter::create(path, test_meta());
  ASSERT_TRUE(w.ok());
  uint64_t after_create = w->bytes_written();
  EXPECT_EQ(read_bytes(path).size(), after_create);
  auto faults = random_faults(10000, 3);
  for (const auto& f : faults) ASSERT_TRUE(w->add_fault(f).ok());
  EXPECT_GT(w->bytes_written(), after_create);
  EXPECT_EQ(read_bytes(path).size(), w->bytes_written());
  // What is on disk now is readable: a live recording reads as incomplete, not truncated.
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_FALSE(r->summary.complete);
  EXPECT_FALSE(r->summary.truncated);
  EXPECT_GE(r->faults.size(), 4096u);
  EXPECT_LT(r->faults.size(), faults.size());
  ASSERT_TRUE(w->flush().ok());
  r = read_recording(path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->faults, faults);
}

TEST(RecordingTest, RecordingWithoutTrailerIsIncomplete) {
  TempDir dir;
  std::string path = dir.file("crash.kscope");
  Content c = make_content(1000, 4);
  {
    auto w = RecordingWriter::create(path, c.meta);
    ASSERT_TRUE(w.ok());
    write_content(*w, c, /*finish=*/false);
    // Destroyed without finish(): like a CLI error path; the pending data is still written.
  }
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_FALSE(r->summary.complete);
  EXPECT_FALSE(r->trailer.has_value());
  EXPECT_FALSE(r->summary.truncated);
  expect_equal_content(*r, c);
}

TEST(RecordingTest, TruncationAtEveryOffset) {
  TempDir dir;
  Content c = make_content(60, 5);
  RecordingWriterOptions options;
  options.block_records = 8;
  std::string full = write_file(dir.file("full.kscope"), c, options);
  ASSERT_FALSE(full.empty());
  std::vector<uint64_t> blocks = block_offsets(full);
  ASSERT_GE(blocks.size(), 10u);
  const uint64_t meta_end = blocks[1];  // blocks[0] is the metadata block

  std::string path = dir.file("cut.kscope");
  for (size_t cut = 0; cut <= full.size(); ++cut) {
    SCOPED_TRACE(fmt::format("cut at {} of {}", cut, full.size()));
    write_bytes(path, std::string_view(full).substr(0, cut));
    auto r = read_recording(path);
    if (cut < meta_end) {
      ASSERT_FALSE(r.ok());  // no metadata: nothing to read, a clear error
      EXPECT_FALSE(r.error().message.empty());
      continue;
    }
    ASSERT_TRUE(r.ok()) << r.error().describe();
    bool at_boundary = cut == full.size() || std::count(blocks.begin(), blocks.end(), cut) == 1;
    EXPECT_EQ(r->summary.truncated, !at_boundary);
    EXPECT_EQ(r->summary.warning.empty(), at_boundary);
    EXPECT_EQ(r->summary.complete, cut == full.size());
    if (!at_boundary) {
      uint64_t last_boundary = *(std::upper_bound(blocks.begin(), blocks.end(), cut) - 1);
      EXPECT_EQ(r->summary.truncated_at, last_boundary);
      EXPECT_NE(r->summary.warning.find(fmt::format("byte {}", last_boundary)), std::string::npos)
          << r->summary.warning;
    }
    // What was read is a prefix of what was written.
    EXPECT_EQ(r->meta, c.meta);
    ASSERT_LE(r->faults.size(), c.faults.size());
    EXPECT_TRUE(std::equal(r->faults.begin(), r->faults.end(), c.faults.begin()));
    ASSERT_LE(r->threads.size(), c.threads.size());
    EXPECT_TRUE(std::equal(r->threads.begin(), r->threads.end(), c.threads.begin()));
    ASSERT_LE(r->mappings.size(), c.mappings.size());
    EXPECT_TRUE(std::equal(r->mappings.begin(), r->mappings.end(), c.mappings.begin()));
  }
}

TEST(RecordingTest, ZeroFilledTailIsTruncation) {
  // After a power loss the file size may cover blocks whose data never reached the disk.
  TempDir dir;
  Content c = make_content(100, 6);
  std::string path = dir.file("zeros.kscope");
  std::string full = write_file(path, c);
  std::string cut = full.substr(0, block_offsets(full).back());  // drop the trailer
  write_bytes(path, cut + std::string(5000, '\0'));
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_TRUE(r->summary.truncated);
  EXPECT_EQ(r->summary.truncated_at, cut.size());
  EXPECT_EQ(r->faults, c.faults);
}

struct BlockInfo {
  uint64_t offset = 0;
  uint16_t type = 0;
  uint32_t count = 0;
  uint64_t end = 0;  // offset of the next block
};

// The blocks of a well-formed file, by walking the documented layout.
std::vector<BlockInfo> blocks_of(const std::string& bytes) {
  std::vector<BlockInfo> out;
  for (uint64_t at : block_offsets(bytes)) {
    BlockInfo b;
    b.offset = at;
    b.type = static_cast<uint16_t>(static_cast<uint8_t>(bytes[at]) |
                                   (static_cast<uint8_t>(bytes[at + 1]) << 8));
    b.count = get_u32(bytes, at + 8);
    b.end = at + kBlockHeaderSize + get_u32(bytes, at + 4);
    out.push_back(b);
  }
  return out;
}

// The first faults block from the middle of the file on.
size_t middle_fault_block(const std::vector<BlockInfo>& blocks) {
  size_t k = blocks.size() / 2;
  while (blocks[k].type != 4) ++k;
  return k;
}

// The file without the blocks `drop` says to leave out: what a reader that skips exactly those
// blocks must deliver.
std::string without_blocks(const std::string& bytes, const std::vector<BlockInfo>& blocks,
                           const std::vector<bool>& drop) {
  std::string out = bytes.substr(0, kFileHeaderSize);
  for (size_t i = 0; i < blocks.size(); ++i)
    if (!drop[i]) out += bytes.substr(blocks[i].offset, blocks[i].end - blocks[i].offset);
  return out;
}

// Overwrites `n` bytes at `at` with their complement, so every one of them changes.
std::string overwritten(std::string bytes, size_t at, size_t n) {
  for (size_t i = at; i < at + n && i < bytes.size(); ++i) bytes[i] = static_cast<char>(~bytes[i]);
  return bytes;
}

TEST(RecordingTest, DamagedMiddleBlockIsSkippedAndReadingResumes) {
  TempDir dir;
  Content c = make_content(200, 7);
  RecordingWriterOptions options;
  options.block_records = 16;
  std::string path = dir.file("damaged.kscope");
  std::string full = write_file(path, c, options);
  std::vector<BlockInfo> blocks = blocks_of(full);
  // A faults block in the middle and the number of fault records before it.
  size_t k = middle_fault_block(blocks);
  size_t before = 0;
  for (size_t i = 0; i < k; ++i)
    if (blocks[i].type == 4) before += blocks[i].count;
  const BlockInfo& bad_block = blocks[k];
  std::vector<FaultRecord> expected = c.faults;
  expected.erase(expected.begin() + static_cast<ptrdiff_t>(before),
                 expected.begin() + static_cast<ptrdiff_t>(before + bad_block.count));

  // Eight bytes of the payload: the header still verifies, so what was lost is known.
  write_bytes(path, overwritten(full, bad_block.offset + kBlockHeaderSize + 5, 8));
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->faults, expected);
  EXPECT_EQ(r->meta, c.meta);
  EXPECT_EQ(r->threads, c.threads);
  EXPECT_EQ(r->exits, c.exits);
  EXPECT_TRUE(r->summary.complete) << "the trailer after the damage was read";
  ASSERT_EQ(r->summary.damage.size(), 1u);
  EXPECT_EQ(r->summary.damage[0].offset, bad_block.offset);
  EXPECT_EQ(r->summary.damage[0].resumed_at, bad_block.end);
  EXPECT_EQ(r->summary.damage[0].block_type, std::optional<uint16_t>(4));
  EXPECT_EQ(r->summary.damage[0].block_count, bad_block.count);
  EXPECT_EQ(r->summary.faults_lost, bad_block.count);
  EXPECT_TRUE(r->summary.faults_lost_exact);
  const std::string& w = r->summary.warning;
  EXPECT_NE(w.find(fmt::format("bytes {} to {} skipped", bad_block.offset, bad_block.end)),
            std::string::npos)
      << w;
  EXPECT_NE(w.find(fmt::format("a faults block ({} fault records)", bad_block.count)),
            std::string::npos)
      << w;
  EXPECT_NE(w.find("checksum mismatch"), std::string::npos) << w;
  EXPECT_NE(w.find(fmt::format("{} fault records lost", bad_block.count)), std::string::npos) << w;

  // Eight bytes of the header, over the length field: the length cannot be trusted, the reader
  // scans for the next block whose checksums verify.
  write_bytes(path, overwritten(full, bad_block.offset + 2, 8));
  r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->faults, expected);
  ASSERT_EQ(r->summary.damage.size(), 1u);
  EXPECT_EQ(r->summary.damage[0].offset, bad_block.offset);
  EXPECT_EQ(r->summary.damage[0].resumed_at, bad_block.end);
  EXPECT_FALSE(r->summary.damage[0].block_type.has_value()) << "its header is not trusted";
  EXPECT_EQ(r->summary.faults_lost, bad_block.count) << "still exact, from the trailer";
  EXPECT_NE(r->summary.warning.find("block header checksum mismatch"), std::string::npos);

  // The streaming reader delivers the same, and nothing of the damaged block.
  CollectingVisitor v;
  auto s = visit_recording(path, v);
  ASSERT_TRUE(s.ok()) << s.error().describe();
  EXPECT_EQ(v.r.faults, expected);
}

TEST(RecordingTest, EightDamagedBytesAnywhereLoseExactlyTheBlocksTheyTouch) {
  // The oracle: reading the damaged file gives exactly what reading the file without the
  // touched blocks gives, and the damage is reported at the first touched block.
  TempDir dir;
  Content c = make_content(120, 21);
  RecordingWriterOptions options;
  options.block_records = 8;
  std::string path = dir.file("sweep.kscope");
  std::string ref_path = dir.file("reference.kscope");
  std::string full = write_file(path, c, options);
  std::vector<BlockInfo> blocks = blocks_of(full);
  ASSERT_GE(blocks.size(), 15u);
  auto whole = read_recording(path);
  ASSERT_TRUE(whole.ok() && whole->trailer) << "the undamaged file is complete";
  size_t checked = 0;
  for (size_t at = 0; at + 8 <= full.size(); ++at) {
    SCOPED_TRACE(fmt::format("8 bytes at {} of {}", at, full.size()));
    write_bytes(path, overwritten(full, at, 8));
    auto r = read_recording(path);
    if (at < kFileHeaderSize) {
      // Without its file header the kind of the file is unknown: nothing is read.
      ASSERT_FALSE(r.ok());
      EXPECT_FALSE(r.error().message.empty());
      continue;
    }
    ASSERT_TRUE(r.ok()) << r.error().describe();
    std::vector<bool> drop(blocks.size());
    size_t first = blocks.size();
    for (size_t i = 0; i < blocks.size(); ++i) {
      drop[i] = blocks[i].offset < at + 8 && at < blocks[i].end;
      if (drop[i] && first == blocks.size()) first = i;
    }
    ASSERT_LT(first, blocks.size());
    ASSERT_EQ(r->summary.damage.size(), 1u);
    EXPECT_EQ(r->summary.damage[0].offset, blocks[first].offset);
    size_t last = first;
    while (last + 1 < blocks.size() && drop[last + 1]) ++last;
    EXPECT_EQ(r->summary.damage[0].resumed_at, blocks[last].end);
    EXPECT_NE(r->summary.warning.find(fmt::format("byte {}", blocks[first].offset)),
              std::string::npos)
        << r->summary.warning;

    // The reference: the same file with the touched blocks left out (the metadata block kept,
    // so that the reference reads; without it the damaged read has an empty one).
    bool meta_touched = drop[0];
    drop[0] = false;
    write_bytes(ref_path, without_blocks(full, blocks, drop));
    auto ref = read_recording(ref_path);
    ASSERT_TRUE(ref.ok()) << ref.error().describe();
    EXPECT_EQ(r->summary.meta_lost, meta_touched);
    EXPECT_EQ(r->meta, meta_touched ? RecordingMeta{} : c.meta);
    EXPECT_EQ(r->threads, ref->threads);
    EXPECT_EQ(r->mappings, ref->mappings);
    EXPECT_EQ(r->forks, ref->forks);
    EXPECT_EQ(r->exits, ref->exits);
    EXPECT_EQ(r->faults, ref->faults);
    // The trailer survives when it was not touched (the reference, which lost fault blocks
    // without any damage, rightly distrusts it), and then makes the loss exact.
    if (drop.back())
      EXPECT_FALSE(r->trailer.has_value());
    else
      EXPECT_EQ(r->trailer, whole->trailer);
    if (r->trailer) {
      EXPECT_EQ(r->summary.faults_lost, c.faults.size() - r->faults.size());
      EXPECT_TRUE(r->summary.faults_lost_exact);
    }
    ++checked;
  }
  EXPECT_EQ(checked, full.size() - 8 + 1 - kFileHeaderSize);
}

TEST(RecordingTest, DamageWithNothingUsableLeftIsAnError) {
  TempDir dir;
  Content c = make_content(10, 9);
  c.threads.clear();
  c.mappings.clear();
  c.forks.clear();
  c.exits.clear();
  std::string path = dir.file("two-blocks.kscope");
  std::string full = write_file(path, c);
  std::vector<BlockInfo> blocks = blocks_of(full);
  ASSERT_EQ(blocks.size(), 4u);  // metadata, two faults blocks (a flush between), trailer
  ASSERT_EQ(blocks[1].type, 4);
  ASSERT_EQ(blocks[2].type, 4);
  // Eight bytes across the boundary of the two faults blocks: both are lost, one range.
  write_bytes(path, overwritten(full, blocks[2].offset - 4, 8));
  auto r = read_recording(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("nothing usable"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(
                fmt::format("bytes {} to {} skipped", blocks[1].offset, blocks[2].end)),
            std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("10 fault records lost"), std::string::npos)
      << r.error().message;
}

TEST(RecordingTest, DamagedTailIsReportedAsDamageToTheEnd) {
  // Garbage instead of the last blocks: no block verifies after the damage.
  TempDir dir;
  Content c = make_content(100, 10);
  RecordingWriterOptions options;
  options.block_records = 16;
  std::string path = dir.file("tail.kscope");
  std::string full = write_file(path, c, options);
  std::vector<BlockInfo> blocks = blocks_of(full);
  const BlockInfo& b = blocks[blocks.size() - 3];
  std::string bad = full.substr(0, b.offset);
  std::mt19937_64 rng(5);
  while (bad.size() < full.size()) bad += static_cast<char>(rng() | 1);
  write_bytes(path, bad);
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  ASSERT_EQ(r->summary.damage.size(), 1u);
  EXPECT_EQ(r->summary.damage[0].offset, b.offset);
  EXPECT_EQ(r->summary.damage[0].resumed_at, full.size());
  EXPECT_NE(r->summary.warning.find(fmt::format("damaged from byte {} to the end", b.offset)),
            std::string::npos)
      << r->summary.warning;
  EXPECT_FALSE(r->summary.complete);
  EXPECT_TRUE(std::equal(r->faults.begin(), r->faults.end(), c.faults.begin()));
}

TEST(RecordingTest, EveryByteFlipIsDetected) {
  TempDir dir;
  Content c = make_content(40, 8);
  RecordingWriterOptions options;
  options.block_records = 8;
  std::string path = dir.file("flip.kscope");
  std::string full = write_file(path, c, options);
  for (size_t i = 0; i < full.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80}) {
      std::string bad = full;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      write_bytes(path, bad);
      auto r = read_recording(path);
      // Detected: an error, or a read that reports the damage.
      EXPECT_TRUE(!r.ok() || !r->summary.damage.empty())
          << "flipping byte " << i << " went unnoticed";
    }
  }
}

TEST(RecordingTest, ImpossibleLengthIsDamage) {
  TempDir dir;
  std::string path = dir.file("len.kscope");
  Content c = make_content(10, 9);
  std::string full = write_file(path, c);
  uint64_t second = block_offsets(full)[1];
  // A header with a valid checksum claiming a 4 GiB payload: must not allocate it, and the
  // blocks after it are still read.
  std::string block = make_block(4, 0, 1, "");
  put_u32(block, 4, 0xffffffffu);
  put_u32(block, 16, crc(std::string_view(block).substr(0, 16)));
  write_bytes(path, full.substr(0, second) + block + full.substr(second));
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  ASSERT_EQ(r->summary.damage.size(), 1u);
  EXPECT_EQ(r->summary.damage[0].offset, second);
  EXPECT_EQ(r->summary.damage[0].resumed_at, second + block.size());
  EXPECT_NE(r->summary.warning.find("impossible block length"), std::string::npos);
  EXPECT_EQ(r->faults, c.faults);
}

// A faults block cut out whole (every checksum still verifies) leaves a trailer that counts
// records the file does not hold, with no damage to explain them: the reader must not claim they
// were "lost to damage". The trailer is what cannot be trusted, so it is reported as damaged and
// the recording reads as unfinished, with every record that is there. (make fuzz-smoke found a
// checksum-fixed input of this kind, tests/fuzz/corpus/recording/trailer-count-*.)
TEST(RecordingTest, TrailerCountingRecordsTheFileDoesNotHoldIsDamage) {
  TempDir dir;
  Content c = make_content(200, 11);
  RecordingWriterOptions options;
  options.block_records = 16;
  std::string path = dir.file("cut.kscope");
  std::string full = write_file(path, c, options);
  std::vector<BlockInfo> blocks = blocks_of(full);
  size_t k = middle_fault_block(blocks);
  std::vector<bool> drop(blocks.size(), false);
  drop[k] = true;
  write_bytes(path, without_blocks(full, blocks, drop));
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->faults.size(), c.faults.size() - blocks[k].count);
  EXPECT_FALSE(r->summary.complete);
  EXPECT_FALSE(r->trailer.has_value());
  EXPECT_EQ(r->summary.faults_lost, 0u) << "nothing was seen lost";
  ASSERT_EQ(r->summary.damage.size(), 1u);
  EXPECT_EQ(r->summary.damage[0].block_type, std::optional<uint16_t>(blocks.back().type));
  const std::string& w = r->summary.warning;
  EXPECT_NE(w.find(fmt::format("the trailer counts {} fault records but the file holds {} and no "
                               "block before it is damaged",
                               c.faults.size(), c.faults.size() - blocks[k].count)),
            std::string::npos)
      << w;
  EXPECT_EQ(w.find("lost to damage"), std::string::npos) << w;

  // With damage before it, the same trailer is trusted and makes the loss exact.
  drop[k] = false;
  write_bytes(path, overwritten(full, blocks[k].offset + kBlockHeaderSize + 3, 4));
  r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_TRUE(r->summary.complete);
  EXPECT_EQ(r->summary.faults_lost, blocks[k].count);
  EXPECT_TRUE(r->summary.faults_lost_exact);
}

TEST(RecordingTest, GarbagePayloadsWithValidChecksumsAreSafe) {
  // Checksums only catch accidents; the decoders must also survive crafted payloads. Random
  // bytes in each block type, with correct checksums: an error or a result, never a crash
  // (run under -DKSCOPE_SANITIZE=ON to check for UB and overreads).
  TempDir dir;
  std::string path = dir.file("garbage.kscope");
  std::string full = write_file(path, make_content(10, 10));
  uint64_t second = block_offsets(full)[1];
  std::string prefix = full.substr(0, second);  // file header + metadata
  std::mt19937_64 rng(11);
  int errors = 0;
  for (int i = 0; i < 5000; ++i) {
    uint16_t type = static_cast<uint16_t>(1 + rng() % 6);
    std::string payload(rng() % 64, '\0');
    for (auto& ch : payload) {
      // Bias towards small values and continuation bytes, which reach deeper into the decoders.
      uint64_t x = rng();
      ch = static_cast<char>(x % 3 == 0 ? x >> 8 : (x % 3 == 1 ? (x >> 8) % 4 : 0x80 | (x >> 8)));
    }
    uint32_t count = static_cast<uint32_t>(rng() % 4 == 0 ? rng() : rng() % 10);
    write_bytes(path, prefix + make_block(type, 0, count, payload));
    auto r = read_recording(path);
    if (!r.ok()) {
      ++errors;
      EXPECT_NE(r.error().message.find("byte"), std::string::npos) << r.error().message;
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(RecordingTest, MutatedBlocksWithValidChecksumsAreSafe) {
  // Real blocks with a few bytes changed and the checksums recomputed: these get past the
  // framing and deep into the decoders' selectors, tables and deltas.
  TempDir dir;
  std::string path = dir.file("mutated.kscope");
  RecordingWriterOptions options;
  options.block_records = 16;
  std::string full = write_file(path, make_content(100, 16), options);
  std::vector<uint64_t> blocks = block_offsets(full);
  std::mt19937_64 rng(17);
  int errors = 0;
  for (int i = 0; i < 4000; ++i) {
    uint64_t at = blocks[1 + rng() % (blocks.size() - 1)];
    uint32_t length = get_u32(full, at + 4);
    if (length == 0) continue;
    std::string payload = full.substr(at + kBlockHeaderSize, length);
    for (int n = 1 + static_cast<int>(rng() % 3); n > 0; --n) {
      char& byte = payload[rng() % length];
      byte = static_cast<char>(rng() % 4 == 0 ? rng() : byte ^ (1 << (rng() % 8)));
    }
    uint16_t type = static_cast<uint8_t>(full[at]);
    std::string block = make_block(type, 0, get_u32(full, at + 8), payload);
    write_bytes(path, full.substr(0, at) + block + full.substr(at + kBlockHeaderSize + length));
    auto r = read_recording(path);
    if (!r.ok()) {
      ++errors;
      EXPECT_NE(r.error().message.find("byte"), std::string::npos) << r.error().message;
    } else if (!r->summary.damage.empty()) {
      // A block that does not decode is skipped whole, named by its offset.
      ++errors;
      ASSERT_EQ(r->summary.damage.size(), 1u);
      EXPECT_EQ(r->summary.damage[0].offset, at);
      EXPECT_EQ(r->summary.damage[0].resumed_at, at + kBlockHeaderSize + length);
      EXPECT_NE(r->summary.damage[0].reason.find("byte"), std::string::npos);
    }
  }
  EXPECT_GT(errors, 0);
}

TEST(RecordingTest, WrongMagic) {
  TempDir dir;
  std::string path = dir.file("magic.kscope");
  std::string full = write_file(path, make_content(10, 12));
  full[0] = 'X';
  write_bytes(path, full);
  auto r = read_recording(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not a kscope recording"), std::string::npos)
      << r.error().message;

  write_bytes(path, "hello");
  r = read_recording(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not a kscope recording"), std::string::npos);

  write_bytes(path, "");
  EXPECT_FALSE(read_recording(path).ok());
}

TEST(RecordingTest, UnsupportedMajorVersion) {
  TempDir dir;
  std::string path = dir.file("version.kscope");
  std::string full = write_file(path, make_content(10, 13));
  full[8] = 2;  // major version 2; checked before the header checksum, so no need to fix it
  write_bytes(path, full);
  auto r = read_recording(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(fmt::format("format version 2.{}", kRecordingVersionMinor)),
            std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("reads version 1.x"), std::string::npos);
}

TEST(RecordingTest, NewerMinorVersionSkipsUnknownBlocks) {
  TempDir dir;
  std::string path = dir.file("minor.kscope");
  Content c = make_content(100, 14);
  std::string full = write_file(path, c);
  std::vector<uint64_t> blocks = block_offsets(full);
  full[10] = 9;  // minor version 9
  put_u32(full, 16, crc(std::string_view(full).substr(0, 16)));
  uint64_t at = blocks[2];
  std::string with_unknown =
      full.substr(0, at) + make_block(0x4242, 0, 3, "future data") + full.substr(at);
  write_bytes(path, with_unknown);
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->summary.version_minor, 9);
  EXPECT_EQ(r->summary.skipped_blocks, 1u);
  EXPECT_TRUE(r->summary.complete);
  expect_equal_content(*r, c);

  // The same block marked as required cannot be skipped.
  with_unknown = full.substr(0, at) + make_block(0x4242, 1, 3, "future data") + full.substr(at);
  write_bytes(path, with_unknown);
  r = read_recording(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(fmt::format("byte {}", at)), std::string::npos)
      << r.error().message;
}

TEST(RecordingTest, CreateFailsOnUnwritablePath) {
  auto w = RecordingWriter::create("/nonexistent-kscope-dir/sub/rec.kscope", test_meta());
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().sys_errno, ENOENT);
  EXPECT_NE(w.error().describe().find("/nonexistent-kscope-dir/sub/rec.kscope"), std::string::npos);
}

TEST(RecordingTest, FileModeIsOwnerOnly) {
  TempDir dir;
  std::string path = dir.file("mode.kscope");
  {
    auto w = RecordingWriter::create(path, test_meta());
    ASSERT_TRUE(w.ok());
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // An existing world-readable file is truncated and restricted too.
  std::string existing = dir.file("existing.kscope");
  write_bytes(existing, std::string(10000, 'z'));
  ASSERT_EQ(::chmod(existing.c_str(), 0644), 0);
  {
    auto w = RecordingWriter::create(existing, test_meta());
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->finish(RecordingTrailer{}).ok());
  }
  ASSERT_EQ(::stat(existing.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(read_recording(existing).ok());
}

TEST(RecordingTest, WriterRefusesUseAfterFinish) {
  TempDir dir;
  auto w = RecordingWriter::create(dir.file("done.kscope"), test_meta());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->finish(RecordingTrailer{}).ok());
  EXPECT_FALSE(w->add_fault(FaultRecord{}).ok());
  EXPECT_FALSE(w->flush().ok());
  EXPECT_FALSE(w->finish(RecordingTrailer{}).ok());
}

TEST(RecordingTest, VisitorErrorStopsReading) {
  TempDir dir;
  std::string path = dir.file("stop.kscope");
  write_file(path, make_content(100, 15));
  struct StopAfterTen : RecordingVisitor {
    int seen = 0;
    Status on_fault(const FaultRecord&) override {
      if (++seen == 10) return make_error("enough");
      return {};
    }
  } visitor;
  auto r = visit_recording(path, visitor);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "enough");
  EXPECT_EQ(visitor.seen, 10);
}

// ---- Symbols block (minor version 1) ----

std::vector<StoredSymbol> make_symbols(size_t n) {
  std::vector<StoredSymbol> out;
  for (size_t i = 0; i < n; ++i) {
    StoredSymbol s;
    s.kernel = i % 7 == 0;
    s.pid = s.kernel ? 0 : static_cast<uint32_t>(100 + i % 3);
    s.ip = (s.kernel ? 0xffffffff81000000ull : 0x55550000ull) + i * 16;
    s.resolved = i % 5 != 0;
    s.function = s.resolved ? fmt::format("function_{}", i % 1000) : "";
    s.offset = i % 64;
    s.module = s.kernel ? "kernel" : fmt::format("lib{}.so", i % 4);
    s.module_path = s.kernel ? "" : "/usr/lib/" + s.module;
    s.build_id = s.kernel ? "" : fmt::format("{:040x}", i % 4);
    out.push_back(std::move(s));
  }
  return out;
}

TEST(RecordingSymbols, RoundTripAcrossSeveralBlocks) {
  TempDir dir;
  std::string path = dir.file("symbols.kscope");
  Content c = make_content(500, 3);
  // More entries than one block holds: the writer splits, each block has its module table.
  std::vector<StoredSymbol> symbols = make_symbols(70000);
  {
    auto w = RecordingWriter::create(path, c.meta);
    ASSERT_TRUE(w.ok());
    write_content(*w, c, /*finish=*/false);
    ASSERT_TRUE(w->add_symbols(symbols).ok());
    ASSERT_TRUE(w->finish(c.trailer).ok());
  }
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->summary.version_minor, kRecordingVersionMinor);
  EXPECT_TRUE(r->summary.complete);
  EXPECT_EQ(r->summary.skipped_blocks, 0u);
  expect_equal_content(*r, c);
  ASSERT_EQ(r->symbols.size(), symbols.size());
  for (size_t i = 0; i < symbols.size(); ++i) ASSERT_EQ(r->symbols[i], symbols[i]) << i;
  // Blocks of type 6 just before the trailer.
  std::string bytes = read_bytes(path);
  std::vector<uint64_t> blocks = block_offsets(bytes);
  ASSERT_GE(blocks.size(), 4u);
  EXPECT_EQ(get_u32(bytes, blocks[blocks.size() - 2]) & 0xffff, 6u);
  EXPECT_EQ(get_u32(bytes, blocks[blocks.size() - 3]) & 0xffff, 6u);
}

TEST(RecordingSymbols, SymbolSourcesRoundTripAndTheLastBlockWins) {
  TempDir dir;
  std::string path = dir.file("sources.kscope");
  Content c = make_content(300, 4);
  std::vector<BinarySymbolSource> first = {
      {"/usr/bin/prog", "ab12", "symtab", "", ".symtab; lines from it", 7}};
  std::vector<BinarySymbolSource> last = {
      {"/usr/bin/prog", "ab12", "symtab", "", ".symtab; lines from it", 9},
      {"/lib/libc.so.6", "cd34", "build-id debug file", "/usr/lib/debug/.build-id/cd/34.debug",
       "debug file by build-id", 1234567},
      {"/tmp/perf-1.map", "", "perf map", "/tmp/perf-1.map", "JIT perf map, 3 regions", 3},
      {"/gone", "", "none", "cannot open: No such file or directory", "", 0}};
  {
    auto w = RecordingWriter::create(path, c.meta);
    ASSERT_TRUE(w.ok());
    write_content(*w, c, /*finish=*/false);
    ASSERT_TRUE(w->add_symbols(make_symbols(10)).ok());
    ASSERT_TRUE(w->add_symbol_sources(first).ok());
    ASSERT_TRUE(w->add_symbol_sources(last).ok());
    ASSERT_TRUE(w->finish(c.trailer).ok());
  }
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->summary.version_minor, kRecordingVersionMinor);
  EXPECT_EQ(r->summary.skipped_blocks, 0u);
  EXPECT_EQ(r->symbol_sources, last);
  expect_equal_content(*r, c);
  // The block is type 9, just before the trailer.
  std::string bytes = read_bytes(path);
  std::vector<uint64_t> blocks = block_offsets(bytes);
  EXPECT_EQ(get_u32(bytes, blocks[blocks.size() - 2]) & 0xffff, 9u);

  // A count the payload cannot hold is corruption, reported with the block's offset.
  std::string full = write_file(path, make_content(10, 10));
  uint64_t second = block_offsets(full)[1];
  write_bytes(path, full.substr(0, second) + make_block(9, 0, 50, std::string("\x01a\x00", 3)));
  auto bad = read_recording(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("impossible symbol source count"), std::string::npos)
      << bad.error().message;
}

TEST(RecordingSymbols, VersionOneFilesWithoutSourcesStillRead) {
  // A 1.1 file: symbols but no symbol sources block, minor 1 in the header.
  TempDir dir;
  std::string path = dir.file("v11.kscope");
  Content c = make_content(100, 2);
  {
    auto w = RecordingWriter::create(path, c.meta);
    ASSERT_TRUE(w.ok());
    write_content(*w, c, /*finish=*/false);
    ASSERT_TRUE(w->add_symbols(make_symbols(5)).ok());
    ASSERT_TRUE(w->finish(c.trailer).ok());
  }
  std::string full = read_bytes(path);
  full[10] = 1;
  put_u32(full, 16, crc(std::string_view(full).substr(0, 16)));
  write_bytes(path, full);
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->summary.version_minor, 1);
  EXPECT_EQ(r->symbols.size(), 5u);
  EXPECT_TRUE(r->symbol_sources.empty());
  expect_equal_content(*r, c);
}

TEST(RecordingSymbols, VersionZeroFilesStillRead) {
  // A 1.0 file: what this writer makes without add_symbols(), with minor 0 in the header.
  TempDir dir;
  std::string path = dir.file("v10.kscope");
  Content c = make_content(200, 5);
  std::string full = write_file(path, c);
  full[10] = 0;
  put_u32(full, 16, crc(std::string_view(full).substr(0, 16)));
  write_bytes(path, full);
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->summary.version_minor, 0);
  EXPECT_TRUE(r->symbols.empty());
  expect_equal_content(*r, c);
}

TEST(RecordingSymbols, BadEntriesAreCorruptionWithTheirOffset) {
  TempDir dir;
  std::string path = dir.file("bad.kscope");
  std::string full = write_file(path, make_content(10, 10));
  uint64_t second = block_offsets(full)[1];
  std::string prefix = full.substr(0, second);
  auto entry = [](uint8_t flags, uint8_t module_ref, std::string_view function) {
    std::string e;
    e += static_cast<char>(flags);
    e += '\x05';  // pid
    e += '\x10';  // ip
    e += static_cast<char>(module_ref);
    if (module_ref == 0) e += std::string("\x01m\x00\x00", 4);
    e += static_cast<char>(function.size());
    e += function;
    e += '\x00';  // offset
    return e;
  };
  struct Case {
    std::string payload;
    uint32_t count;
    const char* message;
  } cases[] = {
      {entry(0x2, 0, "f"), 1, nullptr},                          // valid
      {entry(0x6, 0, "f"), 1, "unknown symbol flags"},           // reserved bit
      {entry(0x2, 1, "f"), 1, "module reference 1 past the 0"},  // no such module
      {entry(0x2, 0, ""), 1, "resolved symbol without a name"},  // flag and name disagree
      {entry(0x0, 0, "f"), 1, "name on an unresolved one"},
      {entry(0x2, 0, "f"), 1000, "impossible symbol count"},
  };
  for (const Case& k : cases) {
    write_bytes(path, prefix + make_block(6, 0, k.count, k.payload));
    auto r = read_recording(path);
    if (!k.message) {
      ASSERT_TRUE(r.ok()) << r.error().describe();
      ASSERT_EQ(r->symbols.size(), 1u);
      EXPECT_EQ(r->symbols[0].function, "f");
      EXPECT_EQ(r->symbols[0].pid, 5u);
      continue;
    }
    ASSERT_FALSE(r.ok()) << k.message;
    EXPECT_NE(r.error().message.find(k.message), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(fmt::format("block at byte {}", second)), std::string::npos)
        << r.error().message;
  }
}

}  // namespace
}  // namespace kscope
