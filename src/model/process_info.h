// What kscope knows about the processes it traced: thread names and memory mappings, kept so that
// addresses resolve after the process is gone, and stored in recordings.
#pragma once

#include <cstdint>
#include <string>
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

// A snapshot of one process's mappings, taken at `time_ns` (since tracing started).
struct MappingSnapshot {
  uint32_t pid = 0;
  uint64_t time_ns = 0;
  std::vector<Mapping> mappings;
  bool operator==(const MappingSnapshot&) const = default;
};

}  // namespace kscope
