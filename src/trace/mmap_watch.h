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
  Mapping mapping;
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

}  // namespace kscope
