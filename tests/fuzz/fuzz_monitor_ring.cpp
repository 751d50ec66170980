// The monitor's shared-memory ring as a reader maps it (monitor/ring.h): any bytes, validated
// as `kscope monitor read` does, then read from the oldest and the newest row.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "monitor/ring.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A mapping is page-aligned; copy into 8-byte-aligned memory as the reader's loads need.
  std::vector<uint64_t> mem((size + 7) / 8);
  if (size) std::memcpy(mem.data(), data, size);
  if (!kscope::monitor::validate_ring(mem.data(), size)) return 0;
  kscope::monitor::RingReader oldest(mem.data(), 0);
  oldest.start_at_oldest();
  auto batch = oldest.poll(64);
  for (const auto& row : batch.rows)
    if (row.comm[sizeof(row.comm) - 1] != '\0') __builtin_trap();
  (void)oldest.writer_closed();
  kscope::monitor::RingReader newest(mem.data(), 0);
  newest.start_at_newest();
  (void)newest.poll(64);
  return 0;
}
