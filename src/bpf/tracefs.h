// The tracing file system, where libbpf finds a classic tracepoint's id
// (events/<category>/<name>/id). kscope's tp_btf, raw and perf-event programs do not need it;
// its syscalls tracepoints (the unwinder's early mappings) do.
#pragma once

#include <string>

namespace kscope::bpf {

struct TracefsStatus {
  bool ready = false;        // the events directory libbpf reads is there
  bool mounted_now = false;  // it was not, and kscope mounted tracefs
  std::string path;          // the tracing directory libbpf uses
  std::string error;         // why it is not ready
};

// libbpf reads /sys/kernel/debug/tracing when that path exists (debugfs mounted), otherwise
// /sys/kernel/tracing. When neither holds an events directory (a machine that never mounted
// tracefs: minimal VMs and containers' hosts without systemd), mounts tracefs at
// /sys/kernel/tracing, as perf does, and says so. Decided once per process.
const TracefsStatus& ensure_tracefs();

}  // namespace kscope::bpf
