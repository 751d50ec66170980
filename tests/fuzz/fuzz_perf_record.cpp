// Perf mmap2/comm/lost records as the mmap watcher reads them from its rings (trace/mmap_watch.h),
// and the mapping model they feed: the input is a sequence of records, each applied to one
// process's mappings the way faults and top apply them.
#include <linux/perf_event.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "trace/mmap_watch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kscope::ProcessMappings pm;
  size_t off = 0;
  int records = 0;
  while (off + sizeof(perf_event_header) <= size && records++ < 256) {
    perf_event_header h;
    std::memcpy(&h, data + off, sizeof(h));
    // The ring gives records of the size their header says; a record claiming more than is
    // left is given the rest (a torn record reaches the parser as a size mismatch).
    size_t n = h.size < sizeof(h) ? sizeof(h) : h.size;
    if (n > size - off) n = size - off;
    kscope::MmapEvent e;
    uint64_t lost = 0;
    switch (kscope::parse_perf_record(data + off, n, &e, &lost)) {
      case kscope::PerfRecord::kMapping:
        if (e.mapping.start >= e.mapping.end) __builtin_trap();
        pm.add(e);
        break;
      case kscope::PerfRecord::kExec:
        pm.add(e);
        break;
      default:
        break;
    }
    off += n;
  }
  auto maps = pm.current();
  for (size_t i = 0; i < maps.size(); ++i) {
    if (maps[i].start >= maps[i].end) __builtin_trap();          // apply_mmap keeps them non-empty,
    if (i && maps[i - 1].end > maps[i].start) __builtin_trap();  // sorted and disjoint
  }
  return 0;
}
