#include "model/fault_profile.h"

#include <fmt/format.h>

#include <tuple>
#include <unordered_map>

#include "symbols/elf_binary.h"
#include "symbols/symbolizer.h"

namespace kscope {

namespace {

struct IpKey {
  uint32_t pid;
  uint64_t ip;
  bool kernel;
  bool operator==(const IpKey&) const = default;
};
struct IpKeyHash {
  size_t operator()(const IpKey& k) const {
    return std::hash<uint64_t>()(k.ip * 0x9E3779B97F4A7C15ull ^ k.pid ^
                                 (k.kernel ? 1ull << 63 : 0));
  }
};

}  // namespace

FaultLocations resolve_fault_locations(const Recording& recording, Symbolizer& symbolizer) {
  // The last snapshot of each process is the most complete one (mappings added while it ran).
  std::map<uint32_t, const MappingSnapshot*> latest;
  for (const auto& snap : recording.mappings) {
    auto& slot = latest[snap.pid];
    if (!slot || snap.time_ns >= slot->time_ns) slot = &snap;
  }
  for (const auto& [pid, snap] : latest) symbolizer.set_mappings(*snap);

  FaultLocations out;
  out.frame_of_fault.reserve(recording.faults.size());
  std::unordered_map<IpKey, uint32_t, IpKeyHash> by_ip;
  // Same function+offset in the same binary (or kernel) = same frame, whichever process.
  std::map<std::tuple<bool, std::string, std::string, uint64_t, uint64_t>, uint32_t> by_symbol;
  std::map<std::string, std::string> build_ids;
  for (const FaultRecord& f : recording.faults) {
    const bool kernel = f.mode == FaultMode::kKernel;
    const IpKey key{f.pid, f.ip, kernel};
    auto it = by_ip.find(key);
    if (it != by_ip.end()) {
      out.frame_of_fault.push_back(it->second);
      continue;
    }
    Symbol sym = kernel ? symbolizer.resolve_kernel(f.ip)
                        : symbolizer.resolve_user(f.pid, f.ip, SymbolDetail::kFunction);
    // Unresolved and without a module, an address only means something inside its process.
    auto sk =
        std::make_tuple(kernel, sym.module_path.empty() ? sym.module : sym.module_path,
                        sym.function, sym.offset, sym.resolved || !sym.module.empty() ? 0 : f.ip);
    auto [sit, inserted] = by_symbol.emplace(sk, static_cast<uint32_t>(out.frames.size()));
    if (inserted) {
      ProfileFrame frame;
      frame.addr = f.ip;
      frame.function = sym.function;
      frame.offset = sym.offset;
      frame.module = kernel && sym.module.empty() ? "kernel" : sym.module;
      frame.module_path = sym.module_path;
      frame.kernel = kernel;
      frame.resolved = sym.resolved;
      if (!frame.module_path.empty()) {
        auto [bit, fresh] = build_ids.emplace(frame.module_path, std::string());
        if (fresh) {
          if (auto id = read_build_id(frame.module_path)) bit->second = *id;
        }
        frame.build_id = bit->second;
      }
      out.frames.push_back(std::move(frame));
    }
    by_ip.emplace(key, sit->second);
    out.frame_of_fault.push_back(sit->second);
  }
  return out;
}

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
  std::map<std::pair<uint32_t, uint32_t>, std::pair<int64_t, int64_t>> counts;
  for (size_t i = 0; i < recording.faults.size() && i < locations.frame_of_fault.size(); ++i) {
    const FaultRecord& f = recording.faults[i];
    last = std::max(last, f.time_ns);
    auto& c = counts[{f.pid, locations.frame_of_fault[i]}];
    ++c.first;
    if (f.kind == FaultKind::kMajor) ++c.second;
  }
  profile.duration_ns = last;
  const auto names = process_names(recording);
  for (const auto& [key, c] : counts) {
    ProfileSample s;
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
