#include "symbols/fault_locations.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <unordered_map>

#include "symbols/elf_binary.h"
#include "symbols/fault_stack_frames.h"

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

// The frame of a named stack frame, shared with every other frame of the same function+offset
// in the same module (markers by their text).
uint32_t stack_frame_index(
    const NamedStackFrame& nf, FaultLocations& out,
    std::map<std::tuple<bool, std::string, std::string, uint64_t, uint64_t, uint32_t>, uint32_t>&
        by_symbol,
    std::map<std::string, std::string>& build_ids, uint32_t pid) {
  const Symbol& sym = nf.symbol;
  auto sk =
      std::make_tuple(nf.kernel, sym.module_path.empty() ? sym.module : sym.module_path,
                      sym.function, sym.offset, sym.resolved || !sym.module.empty() ? 0 : nf.addr,
                      sym.resolved || !sym.module.empty() || nf.kernel ? 0u : pid);
  auto [it, inserted] = by_symbol.emplace(sk, static_cast<uint32_t>(out.frames.size()));
  if (inserted) {
    ProfileFrame frame;
    frame.addr = nf.addr;
    frame.function = sym.function;
    frame.offset = sym.offset;
    frame.module = nf.kernel && sym.module.empty() ? "kernel" : sym.module;
    frame.module_path = sym.module_path;
    frame.kernel = nf.kernel;
    frame.resolved = sym.resolved;
    if (!sym.build_id.empty()) {
      frame.build_id = sym.build_id;
    } else if (!frame.module_path.empty()) {
      auto [bit, fresh] = build_ids.emplace(frame.module_path, std::string());
      if (fresh) {
        if (auto id = read_build_id(frame.module_path)) bit->second = *id;
      }
      frame.build_id = bit->second;
    }
    out.frames.push_back(std::move(frame));
  }
  return it->second;
}

// Each fault's call chain (recordings with stacks): a stack id missing from the recording lost
// its stacks block to damage and gets the marker "[stack lost: damaged recording]".
void add_fault_chains(const Recording& recording, Symbolizer& symbolizer, FaultLocations& out,
                      std::map<std::string, std::string>& build_ids) {
  std::map<std::tuple<bool, std::string, std::string, uint64_t, uint64_t, uint32_t>, uint32_t>
      by_symbol;
  std::map<std::vector<uint32_t>, uint32_t> chain_ids;
  std::map<uint32_t, uint32_t> chain_of_stack;  // stack id -> chain
  out.chain_of_fault.reserve(recording.faults.size());
  for (const FaultRecord& f : recording.faults) {
    auto known = chain_of_stack.find(f.stack);
    if (known != chain_of_stack.end()) {
      out.chain_of_fault.push_back(known->second);
      continue;
    }
    auto st = recording.stacks.find(f.stack);
    const FaultStack* stack = st == recording.stacks.end() ? nullptr : &st->second;
    std::vector<uint32_t> chain;
    if (f.stack == 0) {
      // No stack taken for this fault: its location alone.
      chain.push_back(out.frame_of_fault[out.chain_of_fault.size()]);
    } else {
      for (const NamedStackFrame& nf : name_fault_stack(stack, kStackStatusLostDamaged, symbolizer))
        chain.push_back(stack_frame_index(nf, out, by_symbol, build_ids, f.pid));
    }
    auto [cit, inserted] = chain_ids.emplace(chain, static_cast<uint32_t>(out.chains.size()));
    if (inserted) out.chains.push_back(std::move(chain));
    if (f.stack != 0) chain_of_stack.emplace(f.stack, cit->second);
    out.chain_of_fault.push_back(cit->second);
  }
}

}  // namespace

FaultLocations resolve_fault_locations(const Recording& recording, Symbolizer& symbolizer) {
  // The last snapshot of each process is the most complete one (mappings added while it ran).
  std::map<uint32_t, const MappingSnapshot*> latest;
  for (const auto& snap : recording.mappings) {
    auto& slot = latest[snap.pid];
    if (!slot || snap.time_ns >= slot->time_ns) slot = &snap;
  }
  for (const auto& [pid, snap] : latest) symbolizer.set_mappings(*snap);
  // Names stored by the machine that made the recording come first.
  symbolizer.add_stored_symbols(recording.symbols);

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
      if (!sym.build_id.empty()) {
        frame.build_id = sym.build_id;
      } else if (!frame.module_path.empty()) {
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
  if (recording.has_stacks) add_fault_chains(recording, symbolizer, out, build_ids);
  return out;
}

std::vector<StoredSymbol> name_fault_addresses(const FaultSummary& summary, Symbolizer& symbolizer,
                                               const std::vector<const FaultStack*>& stacks) {
  std::vector<StoredSymbol> out = name_stack_addresses(stacks, symbolizer);
  out.reserve(summary.by_location.size());
  for (const auto& [key, count] : summary.by_location) {
    StoredSymbol s;
    s.kernel = key.kernel;
    s.pid = key.kernel ? 0 : key.pid;
    s.ip = key.ip;
    Symbol symbol = key.kernel ? symbolizer.resolve_kernel(key.ip)
                               : symbolizer.resolve_user(key.pid, key.ip, SymbolDetail::kFunction);
    s.resolved = symbol.resolved;
    s.function = std::move(symbol.function);
    s.offset = symbol.offset;
    s.module = std::move(symbol.module);
    s.module_path = std::move(symbol.module_path);
    s.build_id = std::move(symbol.build_id);
    out.push_back(std::move(s));
  }
  // Kernel addresses are the same in every process: one entry each.
  std::sort(out.begin(), out.end(), [](const StoredSymbol& a, const StoredSymbol& b) {
    return std::tie(a.kernel, a.pid, a.ip) < std::tie(b.kernel, b.pid, b.ip);
  });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const StoredSymbol& a, const StoredSymbol& b) {
                          return a.kernel == b.kernel && a.pid == b.pid && a.ip == b.ip;
                        }),
            out.end());
  return out;
}

std::vector<std::pair<std::string, uint64_t>> top_fault_location_names(const FaultSummary& summary,
                                                                       size_t n,
                                                                       Symbolizer& symbolizer) {
  std::map<std::string, uint64_t> merged;
  for (const auto& [key, count] : summary.top_locations(n * 4)) {
    Symbol sym = key.kernel ? symbolizer.resolve_kernel(key.ip)
                            : symbolizer.resolve_user(key.pid, key.ip, SymbolDetail::kFunction);
    std::string text = sym.format();
    if (key.kernel && text.find("(") == std::string::npos) text += " (kernel)";
    merged[text] += count;
  }
  std::vector<std::pair<std::string, uint64_t>> v(merged.begin(), merged.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (v.size() > n) v.resize(n);
  return v;
}

}  // namespace kscope
