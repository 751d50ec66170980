#include "model/unwind_early_counts.h"

#include <fmt/format.h>

namespace kscope {

std::string describe(const UnwindEarlyCounts& c) {
  return fmt::format(
      "{} noted, {} not noted (no room or mmap_lock busy), {} removed (munmap/mmap over them); "
      "lookups: {} found, {} missed",
      c.noted, c.dropped, c.removed, c.found, c.missed);
}

}  // namespace kscope
