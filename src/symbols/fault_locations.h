// Names the faulting instruction of every fault of a recording: the model's FaultLocations.
#pragma once

#include "model/fault_profile.h"
#include "model/recording.h"
#include "symbols/symbolizer.h"

namespace kscope {

// Resolves the ip of every fault. User ips use the last mapping snapshot of their process in the
// recording (as `kscope faults` does at the end of a run); kernel ips use kallsyms; names stored
// in the recording (its symbols blocks) take precedence over both. Locations that
// resolve to the same function+offset in the same binary share a frame. Build-ids are read from
// the binaries when they still exist.
FaultLocations resolve_fault_locations(const Recording& recording, Symbolizer& symbolizer);

}  // namespace kscope
