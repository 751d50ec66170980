// Turns the faults of a recording into the shared stack model: every distinct faulting location
// (resolved by symbols/fault_locations.h) becomes one ProfileFrame, and a StackProfile has one
// single-frame "stack" per (process, location) with the values faults and major_faults. Used by the
// pprof, folded, sqlite and HTML report outputs, so they all name locations the same way.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/recording.h"
#include "model/stack_profile.h"

namespace kscope {

// The faulting locations of a recording, resolved (symbols/fault_locations.h does it).
struct FaultLocations {
  std::vector<ProfileFrame> frames;      // distinct locations (and, with stacks, stack frames)
  std::vector<uint32_t> frame_of_fault;  // per Recording::faults index, into frames
  // A recording with stacks (kscope faults --stacks): its distinct call chains (indexes into
  // frames, leaf first: kernel frames, user frames, a marker frame when incomplete or lost) and
  // the chain of each fault. Empty without stacks.
  std::vector<std::vector<uint32_t>> chains;
  std::vector<uint32_t> chain_of_fault;
};

// value_types: {"faults","count"}, {"major_faults","count"}. One sample per (pid, frame), or per
// (pid, call chain) when the locations have chains; comm = the process's name (its main thread's
// last known comm).
StackProfile fault_stack_profile(const Recording& recording, const FaultLocations& locations);

// pid -> name of the process (main thread's last comm, else any thread's), tid -> thread comm.
std::map<uint32_t, std::string> process_names(const Recording& recording);
std::map<uint32_t, std::string> thread_names(const Recording& recording);

// Sum of the final kernel counters of each process's exited threads, from the exit events.
struct ProcessKernelCounts {
  uint64_t minflt = 0;
  uint64_t majflt = 0;
  uint64_t threads = 0;  // threads whose exit was recorded
};
std::map<uint32_t, ProcessKernelCounts> kernel_counts_by_process(const Recording& recording);

}  // namespace kscope
