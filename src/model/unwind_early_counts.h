// What the native unwinder's early mappings (bpf/unwind.bpf.h: executable mappings noted in BPF
// at execve and mmap(), dropped at munmap() and process exit) did in a run, for -v and JSON of
// kscope top and kscope faults --stacks.
#pragma once

#include <cstdint>
#include <string>

namespace kscope {

struct UnwindEarlyCounts {
  uint64_t noted = 0;    // executable mappings noted at execve/mmap
  uint64_t dropped = 0;  // not noted: no slot or map entry left, or mmap_lock was busy
  uint64_t removed = 0;  // noted ones dropped: munmap() or a later mmap() covered them
  uint64_t found = 0;    // frames whose mapping came from them (lookups that hit)
  uint64_t missed = 0;   // PCs in no mapping from user space and in none of them (misses)
};

// "N noted, N not noted (no room or mmap_lock busy), N removed (munmap/mmap over them); lookups:
// N found, N missed"
std::string describe(const UnwindEarlyCounts& c);

}  // namespace kscope
