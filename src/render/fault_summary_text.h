// The end-of-run summary of `kscope faults`, as text for a terminal.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/fault_summary.h"
#include "util/units.h"

namespace kscope {

struct LocationCount {
  std::string location;  // "function+0xoff (binary)"
  uint64_t count = 0;
};

std::string render_fault_summary(const FaultSummary& summary, const FaultRunTotals& totals,
                                 const std::vector<LocationCount>& top_locations);

}  // namespace kscope
