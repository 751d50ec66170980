#include "model/top_profile.h"

#include <algorithm>

namespace kscope {

Result<const char*> top_folded_value(const std::string& option) {
  if (option == "oncpu") return top_profile::kOnCpu;
  if (option == "offcpu") return top_profile::kOffCpu;
  if (option == "switches") return top_profile::kSwitches;
  return usage_error("--value '" + option +
                     "': expected oncpu (sampled on-CPU ns, the default), offcpu (off-CPU ns by "
                     "switch-out stack) or switches (schedule-ins)");
}

StackProfile top_pprof_profile(StackProfile profile) {
  for (auto& t : profile.value_types) {
    if (t.type == top_profile::kOnCpu)
      t.type = "cpu";
    else if (t.type == top_profile::kOnCpuSamples)
      t.type = "samples";
    else if (t.type == top_profile::kOffCpu)
      t.type = "off_cpu";
  }
  return profile;
}

std::vector<ProfileValueType> top_profile_value_types() {
  return {{top_profile::kOnCpu, "nanoseconds"},    {top_profile::kSwitches, "count"},
          {top_profile::kRunqWait, "nanoseconds"}, {top_profile::kVoluntary, "count"},
          {top_profile::kInvoluntary, "count"},    {top_profile::kOnCpuSamples, "count"},
          {top_profile::kOffCpu, "nanoseconds"},   {top_profile::kSlice, "nanoseconds"}};
}

TopValues top_values_of(const StackProfile& profile, const ProfileSample& sample) {
  auto get = [&](const char* name) -> uint64_t {
    auto i = profile.value_index(name);
    if (!i || *i >= sample.values.size()) return 0;
    return static_cast<uint64_t>(std::max<int64_t>(0, sample.values[*i]));
  };
  TopValues v;
  v.oncpu_ns = get(top_profile::kOnCpu);
  v.runq_wait_ns = get(top_profile::kRunqWait);
  v.switches = get(top_profile::kSwitches);
  v.voluntary = get(top_profile::kVoluntary);
  v.involuntary = get(top_profile::kInvoluntary);
  v.oncpu_samples = get(top_profile::kOnCpuSamples);
  v.offcpu_ns = get(top_profile::kOffCpu);
  v.slice_ns = get(top_profile::kSlice);
  return v;
}

TopProfileBuilder::TopProfileBuilder(std::function<std::string(const std::string&)> build_id_of)
    : build_id_of_(std::move(build_id_of)) {
  profile_.value_types = top_profile_value_types();
}

uint32_t TopProfileBuilder::intern(const TopFrameView& f) {
  auto key = std::make_tuple(f.kernel, f.addr, f.symbol, f.inlined);
  auto it = frame_index_.find(key);
  if (it != frame_index_.end()) return it->second;
  ProfileFrame pf;
  pf.addr = f.addr;
  pf.function = f.resolved ? f.symbol : std::string();
  pf.offset = f.offset;
  pf.module = f.module.empty() && f.kernel ? "kernel" : f.module;
  pf.module_path = f.module_path;
  if (!f.module_path.empty()) {
    auto [bit, fresh] = build_ids_.emplace(f.module_path, std::string());
    if (fresh && build_id_of_) bit->second = build_id_of_(f.module_path);
    pf.build_id = bit->second;
  }
  pf.kernel = f.kernel;
  pf.resolved = f.resolved;
  pf.inlined = f.inlined;
  profile_.frames.push_back(std::move(pf));
  uint32_t idx = static_cast<uint32_t>(profile_.frames.size() - 1);
  frame_index_.emplace(key, idx);
  return idx;
}

void TopProfileBuilder::add(uint32_t pid, uint32_t tid, std::string comm, const TopStackView& stack,
                            const TopValues& v) {
  // In the order of top_profile_value_types().
  add(pid, tid, std::move(comm), stack,
      std::vector<int64_t>{static_cast<int64_t>(v.oncpu_ns), static_cast<int64_t>(v.switches),
                           static_cast<int64_t>(v.runq_wait_ns), static_cast<int64_t>(v.voluntary),
                           static_cast<int64_t>(v.involuntary),
                           static_cast<int64_t>(v.oncpu_samples), static_cast<int64_t>(v.offcpu_ns),
                           static_cast<int64_t>(v.slice_ns)});
}

void TopProfileBuilder::add(uint32_t pid, uint32_t tid, std::string comm, const TopStackView& stack,
                            std::vector<int64_t> values) {
  ProfileSample s;
  s.pid = pid;
  s.tid = tid;
  s.comm = std::move(comm);
  for (const auto& f : stack.kernel) s.frames.push_back(intern(f));
  for (const auto& f : stack.user) s.frames.push_back(intern(f));
  s.values = std::move(values);
  profile_.samples.push_back(std::move(s));
}

StackProfile TopProfileBuilder::take(uint64_t duration_ns) {
  profile_.duration_ns = duration_ns;
  StackProfile out = std::move(profile_);
  profile_ = StackProfile{};
  profile_.value_types = top_profile_value_types();
  frame_index_.clear();
  return out;
}

}  // namespace kscope
