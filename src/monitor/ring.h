// Writer and reader of the shared-memory sample ring (layout: include/kscope/monitor_ring.h).
// RingWriter/RingReader work on any memory region so unit tests can use a plain buffer; the
// shm helpers create and map /dev/shm/NAME.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kscope/monitor_ring.h"
#include "util/result.h"

namespace kscope::monitor {

// Bytes needed for a ring of slot_count slots.
size_t ring_bytes(uint32_t slot_count);

// Formats the header of a fresh ring at `mem` (ring_bytes(slot_count) bytes, zeroed).
Status init_ring(void* mem, size_t size, uint32_t slot_count, uint64_t period_ns,
                 uint64_t start_realtime_ns, pid_t writer_pid);

// Checks magic, version, sizes against the mapped size; a clear error otherwise.
Status validate_ring(const void* mem, size_t size);

class RingWriter {
 public:
  explicit RingWriter(void* mem) : hdr_(static_cast<kscope_ring_header*>(mem)) {}
  // Copies `row` (its seq field is ignored) into the next slot following the protocol.
  void append(const kscope_ring_slot& row);
  void set_periods(uint64_t periods, uint64_t missed);
  void mark_closed();
  uint64_t written() const;

 private:
  kscope_ring_header* hdr_;
};

struct RingBatch {
  std::vector<kscope_ring_slot> rows;
  uint64_t lost = 0;  // rows overwritten before this reader got to them
};

class RingReader {
 public:
  // `next` is the first row to read (0 = from the oldest still possible, see start_at_oldest).
  RingReader(const void* mem, uint64_t next)
      : hdr_(static_cast<const kscope_ring_header*>(mem)), next_(next) {}
  // Position at the oldest row still in the ring.
  void start_at_oldest();
  // Position after the newest row (only rows written from now on).
  void start_at_newest();
  // Reads up to max_rows available rows; counts rows lost to lapping.
  RingBatch poll(size_t max_rows = 4096);
  uint64_t next() const { return next_; }
  bool writer_closed() const;
  const kscope_ring_header& header() const { return *hdr_; }

 private:
  const kscope_ring_header* hdr_;
  uint64_t next_;
};

// A mapped /dev/shm/NAME.
class ShmMapping {
 public:
  ShmMapping() = default;
  ShmMapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  ShmMapping(ShmMapping&& o) noexcept : addr_(o.addr_), size_(o.size_) {
    o.addr_ = nullptr;
    o.size_ = 0;
  }
  ShmMapping& operator=(ShmMapping&& o) noexcept;
  ~ShmMapping();
  void* data() const { return addr_; }
  size_t size() const { return size_; }

 private:
  void* addr_ = nullptr;
  size_t size_ = 0;
};

// Validates a shm name: letters, digits, '.', '_', '-', 1..200 chars, no '/'.
Status validate_shm_name(const std::string& name);

// Creates /dev/shm/NAME for writing (mode 0600, owned by `owner_uid`). An existing file of a
// monitor that is still running (writer pid alive, not closed) is refused; a left-over one
// (clean exit or SIGKILL) is unlinked first, so readers that still map it keep their copy.
Result<ShmMapping> create_shm_ring(const std::string& name, uint32_t slot_count, uint64_t period_ns,
                                   uint64_t start_realtime_ns, uid_t owner_uid, gid_t owner_gid);

// Maps /dev/shm/NAME read-only and validates its layout.
Result<ShmMapping> open_shm_ring(const std::string& name);

}  // namespace kscope::monitor
