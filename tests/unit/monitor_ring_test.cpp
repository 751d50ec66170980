// The shared-memory ring on a plain buffer: layout, the seqlock protocol, lapped readers,
// torn reads, and readers of another layout version.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <vector>

#include "monitor/ring.h"

namespace kscope::monitor {
namespace {

struct Ring {
  std::vector<uint64_t> mem;
  explicit Ring(uint32_t slots) : mem(ring_bytes(slots) / 8 + 1) {
    EXPECT_TRUE(init_ring(mem.data(), ring_bytes(slots), slots, 50'000'000, 1, 99).ok());
  }
  void* data() { return mem.data(); }
  size_t size() const {
    return ring_bytes(static_cast<uint32_t>((mem.size() * 8 - sizeof(kscope_ring_header)) /
                                            sizeof(kscope_ring_slot)));
  }
};

kscope_ring_slot row(uint64_t i) {
  kscope_ring_slot s{};
  s.time_ns = i * 1000;
  s.pid = static_cast<int32_t>(100 + i);
  s.kind = KSCOPE_RING_KIND_PROCESS;
  std::snprintf(s.comm, sizeof(s.comm), "p%llu", static_cast<unsigned long long>(i));
  s.min_faults_total = i * 10;
  return s;
}

TEST(MonitorRing, LayoutIsFixed) {
  EXPECT_EQ(sizeof(kscope_ring_header), 128u);
  EXPECT_EQ(sizeof(kscope_ring_slot), 128u);
  EXPECT_EQ(offsetof(kscope_ring_header, write_seq), 48u);
  EXPECT_EQ(offsetof(kscope_ring_slot, comm), 32u);
  EXPECT_EQ(offsetof(kscope_ring_slot, min_faults), 48u);
  EXPECT_EQ(offsetof(kscope_ring_slot, cpu_util_ppm), 96u);
  EXPECT_EQ(ring_bytes(8), 128u + 8 * 128u);
}

TEST(MonitorRing, InitRejectsBadSlotCounts) {
  std::vector<uint64_t> mem(1024);
  EXPECT_FALSE(init_ring(mem.data(), mem.size() * 8, 3, 1, 1, 1).ok());
  EXPECT_FALSE(init_ring(mem.data(), mem.size() * 8, 1, 1, 1, 1).ok());
  EXPECT_FALSE(init_ring(mem.data(), 100, 8, 1, 1, 1).ok());
}

TEST(MonitorRing, ReaderSeesRowsInOrder) {
  Ring r(8);
  ASSERT_TRUE(validate_ring(r.data(), ring_bytes(8)).ok());
  RingWriter w(r.data());
  RingReader reader(r.data(), 0);
  EXPECT_TRUE(reader.poll().rows.empty());
  for (uint64_t i = 0; i < 5; ++i) w.append(row(i));
  auto b = reader.poll();
  EXPECT_EQ(b.lost, 0u);
  ASSERT_EQ(b.rows.size(), 5u);
  for (uint64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(b.rows[i].pid, static_cast<int32_t>(100 + i));
    EXPECT_EQ(b.rows[i].seq, 2 * i + 2);
    EXPECT_EQ(b.rows[i].min_faults_total, i * 10);
  }
  EXPECT_TRUE(reader.poll().rows.empty());
  EXPECT_FALSE(reader.writer_closed());
  w.mark_closed();
  EXPECT_TRUE(reader.writer_closed());
}

TEST(MonitorRing, LappedReaderCountsWhatItLost) {
  Ring r(8);
  RingWriter w(r.data());
  RingReader reader(r.data(), 0);
  for (uint64_t i = 0; i < 3; ++i) w.append(row(i));
  ASSERT_EQ(reader.poll(2).rows.size(), 2u);           // read rows 0,1; row 2 pending
  for (uint64_t i = 3; i < 20; ++i) w.append(row(i));  // 20 written, ring holds 12..19
  auto b = reader.poll();
  EXPECT_EQ(b.lost, 10u);  // rows 2..11
  ASSERT_EQ(b.rows.size(), 8u);
  EXPECT_EQ(b.rows.front().pid, 112);
  EXPECT_EQ(b.rows.back().pid, 119);
}

TEST(MonitorRing, StartAtOldestAndNewest) {
  Ring r(4);
  RingWriter w(r.data());
  for (uint64_t i = 0; i < 10; ++i) w.append(row(i));
  RingReader oldest(r.data(), 0);
  oldest.start_at_oldest();
  EXPECT_EQ(oldest.next(), 6u);
  auto b = oldest.poll();
  EXPECT_EQ(b.lost, 0u);
  EXPECT_EQ(b.rows.size(), 4u);
  RingReader newest(r.data(), 0);
  newest.start_at_newest();
  EXPECT_TRUE(newest.poll().rows.empty());
  w.append(row(10));
  EXPECT_EQ(newest.poll().rows.size(), 1u);
}

TEST(MonitorRing, SlotOverwrittenDuringReadIsLostNotReturned) {
  Ring r(4);
  RingWriter w(r.data());
  for (uint64_t i = 0; i < 2; ++i) w.append(row(i));
  // Simulate the writer being in the middle of rewriting slot 0 for row 4: seq odd.
  auto* h = static_cast<kscope_ring_header*>(r.data());
  auto* slot0 = reinterpret_cast<kscope_ring_slot*>(reinterpret_cast<char*>(h) + h->header_size);
  slot0->seq = 2 * 4 + 1;
  RingReader reader(r.data(), 0);
  auto b = reader.poll();
  EXPECT_EQ(b.lost, 1u);
  ASSERT_EQ(b.rows.size(), 1u);
  EXPECT_EQ(b.rows[0].pid, 101);
}

TEST(MonitorRing, ValidationGivesClearErrors) {
  Ring r(8);
  auto* h = static_cast<kscope_ring_header*>(r.data());
  h->version = 2;
  auto st = validate_ring(r.data(), ring_bytes(8));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("version 2"), std::string::npos) << st.error().message;
  h->version = KSCOPE_RING_VERSION;
  EXPECT_FALSE(validate_ring(r.data(), ring_bytes(8) - 1).ok());  // truncated
  EXPECT_FALSE(validate_ring(r.data(), 64).ok());
  h->magic = 0;
  st = validate_ring(r.data(), ring_bytes(8));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("magic"), std::string::npos);
  h->magic = KSCOPE_RING_MAGIC;
  h->slot_count = 6;
  EXPECT_FALSE(validate_ring(r.data(), ring_bytes(8)).ok());
  h->slot_count = 8;
  ASSERT_TRUE(validate_ring(r.data(), ring_bytes(8)).ok());
  // A header size that leaves the slots misaligned for the reader's 8-byte atomic loads, with
  // room to spare (found by tests/fuzz/fuzz_monitor_ring).
  h->header_size += 1;
  st = validate_ring(r.data(), ring_bytes(8) + 8);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("inconsistent sizes"), std::string::npos) << st.error().message;
}

TEST(MonitorRing, ShmNames) {
  EXPECT_TRUE(validate_shm_name("kscope-monitor-0").ok());
  for (const char* bad : {"", "a/b", "..", "a b", "x\n"})
    EXPECT_FALSE(validate_shm_name(bad).ok()) << bad;
}

}  // namespace
}  // namespace kscope::monitor
