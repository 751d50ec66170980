// A span of time one thread ran on one CPU: the unit of the chrome-trace "scheduling slices" and
// what `kscope top` produces from sched_switch. Defined here (not in top) so the exporters do not
// depend on the tracer.
#pragma once

#include <cstdint>
#include <string>

namespace kscope {

struct SchedSlice {
  uint32_t pid = 0;  // thread group id
  uint32_t tid = 0;
  uint32_t cpu = 0;
  uint64_t start_ns = 0;  // since tracing started
  uint64_t end_ns = 0;    // exclusive; >= start_ns
  std::string comm;       // thread name while it ran
  bool operator==(const SchedSlice&) const = default;
};

}  // namespace kscope
