#include "model/fault_profile.h"

#include <fmt/format.h>

namespace kscope {

std::map<uint32_t, std::string> thread_names(const Recording& recording) {
  std::map<uint32_t, std::string> names;
  for (const auto& t : recording.threads) names[t.tid] = t.comm;
  return names;
}

std::map<uint32_t, std::string> process_names(const Recording& recording) {
  std::map<uint32_t, std::string> names;
  for (const auto& t : recording.threads) {
    if (t.tid == t.pid || names.find(t.pid) == names.end()) names[t.pid] = t.comm;
  }
  return names;
}

std::map<uint32_t, ProcessKernelCounts> kernel_counts_by_process(const Recording& recording) {
  std::map<uint32_t, ProcessKernelCounts> out;
  for (const auto& e : recording.exits) {
    auto& c = out[e.pid];
    c.minflt += e.min_flt;
    c.majflt += e.maj_flt;
    ++c.threads;
  }
  return out;
}

StackProfile fault_stack_profile(const Recording& recording, const FaultLocations& locations) {
  StackProfile profile;
  profile.value_types = {{"faults", "count"}, {"major_faults", "count"}};
  profile.frames = locations.frames;
  profile.start_wall_ns = recording.meta.start_wall_ns;
  uint64_t last = 0;
  const bool chains = !locations.chain_of_fault.empty();
  std::map<std::pair<uint32_t, uint32_t>, std::pair<int64_t, int64_t>> counts;
  for (size_t i = 0; i < recording.faults.size() && i < locations.frame_of_fault.size(); ++i) {
    const FaultRecord& f = recording.faults[i];
    last = std::max(last, f.time_ns);
    uint32_t what = locations.frame_of_fault[i];
    if (chains && i < locations.chain_of_fault.size()) what = locations.chain_of_fault[i];
    auto& c = counts[{f.pid, what}];
    ++c.first;
    if (f.kind == FaultKind::kMajor) ++c.second;
  }
  profile.duration_ns = last;
  const auto names = process_names(recording);
  for (const auto& [key, c] : counts) {
    ProfileSample s;
    if (chains)
      s.frames = locations.chains[key.second];
    else
      s.frames = {key.second};
    s.values = {c.first, c.second};
    s.pid = key.first;
    s.tid = key.first;
    if (auto it = names.find(key.first); it != names.end()) s.comm = it->second;
    profile.samples.push_back(std::move(s));
  }
  return profile;
}

}  // namespace kscope
