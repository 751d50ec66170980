// The clocks kscope reads, in one place.
#pragma once

#include <cstdint>

namespace kscope {

// CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns(), so user-space and kernel timestamps
// compare directly.
uint64_t monotonic_ns();
// CLOCK_REALTIME in ns since the Unix epoch (wall-clock start times of recordings and samples).
uint64_t realtime_ns();
// CLOCK_PROCESS_CPUTIME_ID in ns: this process's CPU time, all threads (the kernel's exact
// sum_exec_runtime, as in schedstat).
uint64_t process_cpu_ns();

}  // namespace kscope
