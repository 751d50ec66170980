#include "model/fault_summary.h"

#include <algorithm>

namespace kscope {

void FaultSummary::add(const FaultRecord& r) {
  total++;
  by_kind[static_cast<size_t>(r.kind)]++;
  by_access[static_cast<size_t>(r.access)]++;
  by_segment[static_cast<size_t>(r.segment)]++;
  by_mode[static_cast<size_t>(r.mode)]++;
  first_ns = std::min(first_ns, r.time_ns);
  last_ns = std::max(last_ns, r.time_ns);
  if (r.latency_ns) latency.add(*r.latency_ns);
  by_location[FaultLocationKey{r.pid, r.ip, r.mode == FaultMode::kKernel}]++;
  by_pid[r.pid]++;
  if (r.stack != 0) by_stack[r.stack]++;
}

std::vector<std::pair<FaultLocationKey, uint64_t>> FaultSummary::top_locations(size_t n) const {
  std::vector<std::pair<FaultLocationKey, uint64_t>> v(by_location.begin(), by_location.end());
  auto better = [](const auto& a, const auto& b) {
    if (a.second != b.second) return a.second > b.second;
    if (a.first.ip != b.first.ip) return a.first.ip < b.first.ip;
    return a.first.pid < b.first.pid;
  };
  if (v.size() > n) {
    std::partial_sort(v.begin(), v.begin() + static_cast<long>(n), v.end(), better);
    v.resize(n);
  } else {
    std::sort(v.begin(), v.end(), better);
  }
  return v;
}

}  // namespace kscope
