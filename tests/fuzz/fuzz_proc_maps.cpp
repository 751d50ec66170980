// /proc/PID/maps text (symbols/proc_maps.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "symbols/proc_maps.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  size_t malformed = 0;
  auto maps = kscope::parse_proc_maps(text, &malformed);
  if (maps) {
    for (const auto& m : *maps) {
      if (m.start >= m.end) __builtin_trap();  // a parsed mapping is never empty or inverted
      (void)kscope::is_file_mapping(m);
      (void)kscope::path_without_deleted(m.path);
    }
  }
  return 0;
}
