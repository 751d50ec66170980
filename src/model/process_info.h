// What kscope knows about the processes it traced: thread names, memory mappings (kept so that
// addresses resolve after the process is gone), forks and exits; all stored in recordings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kscope {

struct ThreadInfo {
  uint32_t pid = 0;
  uint32_t tid = 0;
  std::string comm;
  bool operator==(const ThreadInfo&) const = default;
};

// One line of /proc/PID/maps.
struct Mapping {
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t offset = 0;  // file offset of `start`
  uint64_t inode = 0;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  std::string perms;  // "r-xp"
  std::string path;   // file path, "[stack]", "[vdso]", or empty for anonymous
  bool operator==(const Mapping&) const = default;
  bool contains(uint64_t addr) const { return addr >= start && addr < end; }
  bool executable() const { return perms.size() >= 3 && perms[2] == 'x'; }
};

// The executable address ranges of a process, for the frame-pointer cut: the kernel's
// frame-pointer walk reads whatever the saved-rbp chain points at, and in code built without
// frame pointers its "return addresses" are data (0x1e8480, string bytes), so a stack ends at
// the first word outside every executable mapping. Mappings may come in any order and may
// overlap (a /proc snapshot merged with later mmap records): overlapping and touching ranges are
// merged, so a lookup is one binary search.
class ExecRanges {
 public:
  ExecRanges() = default;
  explicit ExecRanges(const std::vector<Mapping>& mappings);

  bool empty() const { return ranges_.empty(); }
  // Whether `addr` is inside an executable mapping ([start, end)).
  bool contains(uint64_t addr) const;
  // How many of `frames` (a stack, leaf first) to keep: all of them, or up to the first one
  // after the leaf that lies outside every executable mapping. The leaf (frame 0, where the
  // thread was) is always kept. With no ranges known nothing can be judged: all are kept.
  size_t frames_to_keep(const std::vector<uint64_t>& frames) const;

 private:
  std::vector<std::pair<uint64_t, uint64_t>> ranges_;  // [start, end): sorted, disjoint
};

// A snapshot of one process's mappings, taken at `time_ns` (since tracing started).
struct MappingSnapshot {
  uint32_t pid = 0;
  uint64_t time_ns = 0;
  std::vector<Mapping> mappings;
  bool operator==(const MappingSnapshot&) const = default;
};

struct ForkEvent {
  uint64_t time_ns = 0;  // since tracing started
  uint32_t parent_pid = 0;
  uint32_t child_pid = 0;
  bool operator==(const ForkEvent&) const = default;
};

// A thread exited; min_flt/maj_flt are the kernel's final counters for that thread
// (task_struct min_flt/maj_flt), for reconciling with the faults recorded.
struct ExitEvent {
  uint64_t time_ns = 0;
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint64_t min_flt = 0;
  uint64_t maj_flt = 0;
  bool group_dead = false;  // the last live thread of the process exited
  bool operator==(const ExitEvent&) const = default;
};

}  // namespace kscope
