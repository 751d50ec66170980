// Executable mappings as processes create them, from the kernel's perf mmap records: a dummy
// software perf event on each CPU with attr.mmap/mmap2 set reports every mmap (and mprotect) that
// makes memory executable, with the file behind it. This is how perf itself knows the libraries
// of a process that has exited by the time anyone could read its /proc/PID/maps: the loader maps
// libc and friends after execve, and a short-lived command can be gone before user space looks.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/process_info.h"
#include "util/result.h"

namespace kscope {

struct MmapEvent {
  uint32_t pid = 0;
  uint64_t time_ns = 0;  // CLOCK_MONOTONIC
  bool exec = false;     // an execve began (the kernel's COMM_EXEC record): `mapping` is empty
  Mapping mapping;
};

// A process's mappings from a /proc/PID/maps read plus the mmap records that came after it (or
// after its last execve): current while it lives, and still right when it is gone before it
// could be read again.
class ProcessMappings {
 public:
  // A /proc/PID/maps read that began at `time_ns`; records older than it are in it.
  void set_snapshot(std::vector<Mapping> maps, uint64_t time_ns);
  void add(const MmapEvent& e);
  // The snapshot (unless an execve came after it) with the later records applied in time order.
  std::vector<Mapping> current() const;
  bool known() const { return have_snapshot_ || !records_.empty() || last_exec_ns_ != 0; }
  size_t records() const { return records_.size(); }  // kept after the snapshot (at most 4096)

 private:
  static constexpr size_t kMaxRecords = 4096;
  std::vector<Mapping> snapshot_;
  uint64_t snapshot_ns_ = 0;
  bool have_snapshot_ = false;
  uint64_t last_exec_ns_ = 0;
  std::vector<MmapEvent> records_;  // mapping records after the snapshot
};

class MmapWatcher {
 public:
  // Opens one ring on each online CPU (CAP_PERFMON). `pages` data pages per CPU, a power of two.
  static Result<std::unique_ptr<MmapWatcher>> open(size_t pages = 16);
  ~MmapWatcher();
  MmapWatcher(const MmapWatcher&) = delete;
  MmapWatcher& operator=(const MmapWatcher&) = delete;

  // Reads every record that has arrived, without blocking; calls `fn` for each mmap record.
  void drain(const std::function<void(const MmapEvent&)>& fn);
  // Records the kernel dropped because a ring was full (PERF_RECORD_LOST), so far.
  uint64_t lost() const { return lost_; }

 private:
  struct Ring;
  MmapWatcher() = default;
  std::vector<std::unique_ptr<Ring>> rings_;
  uint64_t lost_ = 0;
};

// Adds a new mapping to a process's mappings the way mmap does: whatever it overlaps is cut
// away (a file mapping cut at its start keeps its file offsets right). Keeps them sorted.
void apply_mmap(std::vector<Mapping>& maps, const Mapping& m);

// Parses one PERF_RECORD_MMAP2 record (header included, `size` bytes) of an event opened with
// sample_type TID|TIME and sample_id_all; false when it is malformed. Exposed for tests.
bool parse_mmap2_record(const uint8_t* data, size_t size, MmapEvent* out);

// What one record of the watcher's rings is.
enum class PerfRecord { kMapping, kExec, kLost, kOther, kMalformed };

// Parses one record as MmapWatcher::drain() reads it (header included, `size` bytes, at least a
// header): PERF_RECORD_MMAP2 into *out (kMapping), PERF_RECORD_COMM with COMM_EXEC into *out
// (kExec), PERF_RECORD_LOST's count into *lost (kLost). Records the watcher does not use are
// kOther; a record too short for its type, or whose header size is not `size`, is kMalformed.
PerfRecord parse_perf_record(const uint8_t* data, size_t size, MmapEvent* out, uint64_t* lost);

}  // namespace kscope
