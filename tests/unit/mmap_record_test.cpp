// PERF_RECORD_MMAP2 parsing (src/trace/mmap_watch.cpp): the records kscope faults reads to learn
// the executable mappings of processes that exit before /proc/PID/maps can be read.
#include <gtest/gtest.h>
#include <linux/perf_event.h>
#include <sys/mman.h>

#include <cstring>
#include <string>
#include <vector>

#include "trace/mmap_watch.h"

namespace kscope {
namespace {

// A record as the kernel writes it for sample_type TID|TIME with sample_id_all.
std::vector<uint8_t> mmap2_record(uint32_t pid, uint64_t addr, uint64_t len, uint64_t pgoff,
                                  uint32_t prot, uint32_t flags, const std::string& name,
                                  uint64_t time) {
  std::vector<uint8_t> r(sizeof(perf_event_header) + 64);
  auto put = [&](size_t off, const void* v, size_t n) { std::memcpy(r.data() + off, v, n); };
  size_t o = sizeof(perf_event_header);
  uint32_t tid = pid + 1, maj = 8, min = 1;
  uint64_t ino = 1234, gen = 0;
  put(o, &pid, 4);
  put(o + 4, &tid, 4);
  put(o + 8, &addr, 8);
  put(o + 16, &len, 8);
  put(o + 24, &pgoff, 8);
  put(o + 32, &maj, 4);
  put(o + 36, &min, 4);
  put(o + 40, &ino, 8);
  put(o + 48, &gen, 8);
  put(o + 56, &prot, 4);
  put(o + 60, &flags, 4);
  size_t name_size = (name.size() + 1 + 7) / 8 * 8;  // NUL-terminated, padded to 8
  r.resize(r.size() + name_size, 0);
  std::memcpy(r.data() + sizeof(perf_event_header) + 64, name.data(), name.size());
  uint32_t ids[2] = {pid, tid};
  size_t id_off = r.size();
  r.resize(r.size() + 16);
  put(id_off, ids, 8);
  put(id_off + 8, &time, 8);
  perf_event_header h{PERF_RECORD_MMAP2, 0, static_cast<uint16_t>(r.size())};
  put(0, &h, sizeof(h));
  return r;
}

TEST(MmapRecord, ParsesAnExecutableLibraryMapping) {
  auto r = mmap2_record(4242, 0x7f0000001000, 0x2000, 0x1000, PROT_READ | PROT_EXEC, MAP_PRIVATE,
                        "/usr/lib/x86_64-linux-gnu/libc.so.6", 123456789);
  MmapEvent e;
  ASSERT_TRUE(parse_mmap2_record(r.data(), r.size(), &e));
  EXPECT_EQ(e.pid, 4242u);
  EXPECT_EQ(e.time_ns, 123456789u);
  EXPECT_EQ(e.mapping.start, 0x7f0000001000u);
  EXPECT_EQ(e.mapping.end, 0x7f0000003000u);
  EXPECT_EQ(e.mapping.offset, 0x1000u);
  EXPECT_EQ(e.mapping.inode, 1234u);
  EXPECT_EQ(e.mapping.dev_major, 8u);
  EXPECT_EQ(e.mapping.perms, "r-xp");
  EXPECT_EQ(e.mapping.path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
  EXPECT_TRUE(e.mapping.executable());
}

TEST(MmapRecord, SharedWritableAndAnonymousNames) {
  auto r = mmap2_record(1, 0x1000, 0x1000, 0, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED,
                        "//anon", 1);
  MmapEvent e;
  ASSERT_TRUE(parse_mmap2_record(r.data(), r.size(), &e));
  EXPECT_EQ(e.mapping.perms, "rwxs");
  EXPECT_EQ(e.mapping.path, "") << "anonymous, as in /proc/PID/maps";
}

TEST(MmapRecord, MalformedRecordsAreRefused) {
  auto good = mmap2_record(1, 0x1000, 0x1000, 0, PROT_EXEC, MAP_PRIVATE, "/bin/x", 1);
  MmapEvent e;
  // Shorter than the header says, or than the fixed part.
  EXPECT_FALSE(parse_mmap2_record(good.data(), good.size() - 8, &e));
  EXPECT_FALSE(parse_mmap2_record(good.data(), 40, &e));
  // Another record type.
  auto other = good;
  perf_event_header h;
  std::memcpy(&h, other.data(), sizeof(h));
  h.type = PERF_RECORD_MMAP;
  std::memcpy(other.data(), &h, sizeof(h));
  EXPECT_FALSE(parse_mmap2_record(other.data(), other.size(), &e));
  // A length that wraps the address space.
  auto wraps = mmap2_record(1, ~0ull - 0xfff, 0x2000, 0, PROT_EXEC, MAP_PRIVATE, "/bin/x", 1);
  EXPECT_FALSE(parse_mmap2_record(wraps.data(), wraps.size(), &e));
  // A name without its NUL is cut at the sample id, not read past it.
  auto unterminated = good;
  size_t name_off = sizeof(perf_event_header) + 64;
  std::memset(unterminated.data() + name_off, 'A', unterminated.size() - name_off - 16);
  ASSERT_TRUE(parse_mmap2_record(unterminated.data(), unterminated.size(), &e));
  EXPECT_EQ(e.mapping.path, std::string(unterminated.size() - name_off - 16, 'A'));
}

Mapping map(uint64_t start, uint64_t end, uint64_t offset, const std::string& path,
            const std::string& perms = "r-xp") {
  Mapping m;
  m.start = start;
  m.end = end;
  m.offset = offset;
  m.path = path;
  m.perms = perms;
  return m;
}

// A record of `type` with `body` after the header and a TID|TIME sample id at `time`.
std::vector<uint8_t> other_record(uint32_t type, uint16_t misc, std::vector<uint8_t> body,
                                  uint32_t pid, uint64_t time) {
  std::vector<uint8_t> r(sizeof(perf_event_header));
  r.insert(r.end(), body.begin(), body.end());
  size_t id_off = r.size();
  r.resize(r.size() + 16);
  std::memcpy(r.data() + id_off, &pid, 4);
  std::memcpy(r.data() + id_off + 4, &pid, 4);
  std::memcpy(r.data() + id_off + 8, &time, 8);
  perf_event_header h{type, misc, static_cast<uint16_t>(r.size())};
  std::memcpy(r.data(), &h, sizeof(h));
  return r;
}

TEST(PerfRecord, MmapCommExecAndLostAsTheWatcherReadsThem) {
  MmapEvent e;
  uint64_t lost = 0;
  auto m = mmap2_record(7, 0x400000, 0x1000, 0, PROT_READ | PROT_EXEC, MAP_PRIVATE, "/bin/a", 5);
  ASSERT_EQ(parse_perf_record(m.data(), m.size(), &e, &lost), PerfRecord::kMapping);
  EXPECT_EQ(e.mapping.path, "/bin/a");

  std::vector<uint8_t> comm_body(8 + 8, 0);  // pid, tid, "sh\0" padded to 8
  uint32_t pid = 4242;
  std::memcpy(comm_body.data(), &pid, 4);
  std::memcpy(comm_body.data() + 8, "sh", 2);
  auto c = other_record(PERF_RECORD_COMM, PERF_RECORD_MISC_COMM_EXEC, comm_body, pid, 99);
  ASSERT_EQ(parse_perf_record(c.data(), c.size(), &e, &lost), PerfRecord::kExec);
  EXPECT_TRUE(e.exec);
  EXPECT_EQ(e.pid, 4242u);
  EXPECT_EQ(e.time_ns, 99u);
  EXPECT_TRUE(e.mapping.path.empty());  // nothing left over from the mmap record before
  auto rename = other_record(PERF_RECORD_COMM, 0, comm_body, pid, 100);  // prctl, not an exec
  EXPECT_EQ(parse_perf_record(rename.data(), rename.size(), &e, &lost), PerfRecord::kOther);

  std::vector<uint8_t> lost_body(16, 0);
  uint64_t n = 17;
  std::memcpy(lost_body.data() + 8, &n, 8);
  auto l = other_record(PERF_RECORD_LOST, 0, lost_body, 0, 101);
  ASSERT_EQ(parse_perf_record(l.data(), l.size(), &e, &lost), PerfRecord::kLost);
  EXPECT_EQ(lost, 17u);

  // Too short for its type (the sample id would overlap the header), or a size that is not
  // the header's: malformed, never read past the record.
  auto short_comm = other_record(PERF_RECORD_COMM, PERF_RECORD_MISC_COMM_EXEC, {}, pid, 1);
  EXPECT_EQ(parse_perf_record(short_comm.data(), short_comm.size(), &e, &lost),
            PerfRecord::kMalformed);
  auto short_lost = other_record(PERF_RECORD_LOST, 0, {}, 0, 1);
  EXPECT_EQ(parse_perf_record(short_lost.data(), short_lost.size(), &e, &lost),
            PerfRecord::kMalformed);
  EXPECT_EQ(parse_perf_record(l.data(), l.size() - 1, &e, &lost), PerfRecord::kMalformed);
  EXPECT_EQ(parse_perf_record(l.data(), 4, &e, &lost), PerfRecord::kMalformed);
}

TEST(ApplyMmap, AddsInOrderAndCutsWhatItOverlaps) {
  std::vector<Mapping> maps = {map(0x1000, 0x5000, 0, "/lib/a.so", "r--p"),
                               map(0x9000, 0xa000, 0, "/bin/x")};
  // The loader maps a library's text over the middle of its first, read-only mapping.
  apply_mmap(maps, map(0x2000, 0x3000, 0x1000, "/lib/a.so"));
  ASSERT_EQ(maps.size(), 4u);
  EXPECT_EQ(maps[0], map(0x1000, 0x2000, 0, "/lib/a.so", "r--p"));
  EXPECT_EQ(maps[1], map(0x2000, 0x3000, 0x1000, "/lib/a.so"));
  EXPECT_EQ(maps[2], map(0x3000, 0x5000, 0x2000, "/lib/a.so", "r--p"));  // offset moved along
  EXPECT_EQ(maps[3], map(0x9000, 0xa000, 0, "/bin/x"));
  // A mapping that covers others entirely replaces them.
  apply_mmap(maps, map(0x0, 0x6000, 0, "/lib/b.so"));
  ASSERT_EQ(maps.size(), 2u);
  EXPECT_EQ(maps[0].path, "/lib/b.so");
  EXPECT_EQ(maps[1].path, "/bin/x");
}

MmapEvent rec(uint64_t t, const Mapping& m) {
  MmapEvent e;
  e.pid = 7;
  e.time_ns = t;
  e.mapping = m;
  return e;
}

MmapEvent exec_at(uint64_t t) {
  MmapEvent e;
  e.pid = 7;
  e.time_ns = t;
  e.exec = true;
  return e;
}

TEST(ProcessMappings, SnapshotPlusTheRecordsAfterIt) {
  ProcessMappings pm;
  EXPECT_FALSE(pm.known());
  pm.add(rec(50, map(0x1000, 0x2000, 0, "/old.so")));  // before the read: already in it
  pm.set_snapshot({map(0x1000, 0x2000, 0, "/old.so"), map(0x9000, 0xa000, 0, "/bin/x")}, 100);
  pm.add(rec(150, map(0x5000, 0x6000, 0, "/lib/new.so")));
  pm.add(rec(120, map(0x3000, 0x4000, 0, "/lib/mid.so")));  // out of order across CPUs
  auto cur = pm.current();
  ASSERT_EQ(cur.size(), 4u);
  EXPECT_EQ(cur[0].path, "/old.so");
  EXPECT_EQ(cur[1].path, "/lib/mid.so");
  EXPECT_EQ(cur[2].path, "/lib/new.so");
  EXPECT_EQ(cur[3].path, "/bin/x");
}

TEST(ProcessMappings, AnExecveAfterTheSnapshotStartsOver) {
  ProcessMappings pm;
  pm.set_snapshot({map(0x1000, 0x2000, 0, "/kscope")}, 100);
  pm.add(rec(110, map(0x7000, 0x8000, 0, "/lib/before-exec.so")));
  pm.add(exec_at(200));
  pm.add(rec(210, map(0x4000, 0x5000, 0, "/bin/command")));
  pm.add(rec(220, map(0x7f00, 0x7f10, 0, "/lib/libc.so.6")));
  auto cur = pm.current();
  ASSERT_EQ(cur.size(), 2u);
  EXPECT_EQ(cur[0].path, "/bin/command");
  EXPECT_EQ(cur[1].path, "/lib/libc.so.6");
  // A read after the execve is the new base again.
  pm.set_snapshot({map(0x4000, 0x5000, 0, "/bin/command")}, 300);
  EXPECT_EQ(pm.current().size(), 1u);
}

TEST(ProcessMappings, WithoutAnyReadTheRecordsAreAllThereIs) {
  ProcessMappings pm;
  pm.add(rec(10, map(0x4000, 0x5000, 0, "/bin/command")));
  EXPECT_TRUE(pm.known());
  ASSERT_EQ(pm.current().size(), 1u);
  EXPECT_EQ(pm.current()[0].path, "/bin/command");
}

}  // namespace
}  // namespace kscope
