// /proc/PID/stat, /proc/PID/status and pid lists: trace/proc.h (parse_stat, parse_status_tgid,
// parse_pid_list) and the monitor's readings (monitor/sampler.h: parse_reading, parse_vm_rss_kb).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "monitor/sampler.h"
#include "trace/proc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)kscope::proc::parse_stat(text);
  if (auto tgid = kscope::proc::parse_status_tgid(text))
    if (*tgid <= 0) __builtin_trap();
  if (auto pids = kscope::proc::parse_pid_list(text))
    for (auto p : *pids)
      if (p <= 0) __builtin_trap();  // documented: zero and negative are rejected
  (void)kscope::monitor::parse_reading(text);
  (void)kscope::monitor::parse_vm_rss_kb(text);
  return 0;
}
