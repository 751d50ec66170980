// Names of JIT-compiled code from /tmp/perf-PID.map, the file runtimes write for perf (node
// --perf-basic-prof, the JVM's perf-map-agent, LuaJIT, .NET, Python 3.12 -X perf): one line per
// code region, "START SIZE name", START and SIZE in hex (an optional 0x is accepted).
//
// The file is written by the traced process, i.e. by a user who may be hostile to the root-run
// profiler: it is opened without following symlinks, must be a regular file with one link owned
// by the process's owner (or root), and is parsed with bounds on line length, file size and
// entry count. Malformed lines are skipped and counted. The runtime appends while it runs, so
// the file is re-read (from where the last read stopped) when it has grown.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace kscope {

class PerfMap {
 public:
  struct Hit {
    std::string_view name;
    uint64_t start = 0;
  };

  // Limits on what a map may hold; past them the rest is ignored (and counted as skipped).
  static constexpr size_t kMaxLineBytes = 8192;
  static constexpr uint64_t kMaxFileBytes = uint64_t{512} << 20;
  static constexpr size_t kMaxEntries = 8u << 20;

  // Adds the complete lines of `text` (a trailing partial line is left: its length is what
  // append() returns as not consumed, to be read again later).
  size_t append(std::string_view text);
  // The region covering addr; when regions overlap (code freed and reused) the last written
  // wins, as the runtime wrote it after the earlier one.
  std::optional<Hit> lookup(uint64_t addr);

  size_t size() const { return entries_.size(); }
  size_t skipped_lines() const { return skipped_; }

 private:
  struct Entry {
    uint64_t start, end;
    uint32_t seq;  // order in the file
    uint32_t name_offset, name_length;
  };
  void sort_if_needed();

  std::vector<Entry> entries_;
  std::string names_;
  size_t skipped_ = 0;
  bool sorted_ = true;
  uint64_t max_length_ = 0;  // the longest region, bounding the backwards search
};

// A perf map being followed: path, the owner it must have, and how much was read.
class PerfMapFile {
 public:
  // `owner_uid`: the uid the file must belong to (root is accepted too); -1 = any owner.
  PerfMapFile(std::string path, int64_t owner_uid) : path_(std::move(path)), owner_(owner_uid) {}

  // Reads what was appended since the last call. An error (once the file exists) says why it
  // is refused (owner, symlink, links, size).
  Status refresh();
  std::optional<PerfMap::Hit> lookup(uint64_t addr) { return map_.lookup(addr); }
  const std::string& path() const { return path_; }
  const PerfMap& map() const { return map_; }

 private:
  std::string path_;
  int64_t owner_;
  uint64_t consumed_ = 0;  // bytes of the file parsed so far
  ino_t inode_ = 0;
  PerfMap map_;
};

}  // namespace kscope
