// Names the faulting instruction of every fault of a recording: the model's FaultLocations.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "model/fault_profile.h"
#include "model/fault_summary.h"
#include "model/recording.h"
#include "symbols/symbolizer.h"

namespace kscope {

// Resolves the ip of every fault. User ips use the last mapping snapshot of their process in the
// recording (as `kscope faults` does at the end of a run); kernel ips use kallsyms; names stored
// in the recording (its symbols blocks) take precedence over both. A recording with stacks also
// gets each fault's call chain (FaultLocations::chains). Locations that
// resolve to the same function+offset in the same binary share a frame. Build-ids are read from
// the binaries when they still exist.
FaultLocations resolve_fault_locations(const Recording& recording, Symbolizer& symbolizer);

// The name of every distinct instruction address of a run's summary (kernel addresses once, user
// ones per process), and of every address its stacks' frames are looked up at
// (symbols/fault_stack_frames.h), sorted, for a recording's symbols block.
std::vector<StoredSymbol> name_fault_addresses(const FaultSummary& summary, Symbolizer& symbolizer,
                                               const std::vector<const FaultStack*>& stacks = {});

// The n code locations with the most faults as "function+0xoff (module)" with their counts;
// addresses that name the same location (the same function+offset in several processes) are
// merged.
std::vector<std::pair<std::string, uint64_t>> top_fault_location_names(const FaultSummary& summary,
                                                                       size_t n,
                                                                       Symbolizer& symbolizer);

}  // namespace kscope
