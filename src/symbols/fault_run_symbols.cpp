#include "symbols/fault_run_symbols.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include "symbols/fault_locations.h"
#include "symbols/fault_stack_frames.h"

namespace kscope {

std::string fault_symbol_field(Symbolizer& symbolizer, uint32_t pid, uint64_t ip) {
  bool kernel = ip >= 0xffff800000000000ull;  // the kernel half of the x86-64 address space
  Symbol sym = kernel ? symbolizer.resolve_kernel(ip)
                      : symbolizer.resolve_user(pid, ip, SymbolDetail::kFunction);
  std::string text = sym.format();
  if (kernel && text.find('(') == std::string::npos) text += " (kernel)";
  return text;
}

void FaultRunSymbols::set_mappings(const MappingSnapshot& snapshot) {
  uint32_t pid = snapshot.pid;
  symbolizer_.set_mappings(pid, snapshot.mappings);
  functions_.erase(pid);
  stacks_.erase(pid);
  if (struct stat st{};
      !owner_known_.count(pid) && ::stat(fmt::format("/proc/{}", pid).c_str(), &st) == 0) {
    symbolizer_.set_process_owner(pid, st.st_uid);
    owner_known_.insert(pid);
  }
}

const std::string& FaultRunSymbols::function_at(uint32_t pid, uint64_t ip) {
  auto& cache = functions_[pid];
  if (auto it = cache.find(ip); it != cache.end()) return it->second;
  return cache.emplace(ip, fault_symbol_field(symbolizer_, pid, ip)).first->second;
}

const std::string& FaultRunSymbols::stack_field(const FaultStack& stack) {
  auto& cache = stacks_[stack.pid];
  if (auto it = cache.find(stack.id); it != cache.end()) return it->second;
  std::string text = fault_stack_field(name_fault_stack(&stack, kStackStatusNone, symbolizer_));
  return cache.emplace(stack.id, std::move(text)).first->second;
}

std::vector<StoredSymbol> FaultRunSymbols::name_all(const FaultSummary& summary,
                                                    const std::map<uint32_t, FaultStack>& stacks) {
  std::vector<const FaultStack*> list;
  list.reserve(stacks.size());
  for (const auto& [id, s] : stacks) list.push_back(&s);
  return name_fault_addresses(summary, symbolizer_, list);
}

std::vector<std::pair<std::string, uint64_t>> FaultRunSymbols::top_locations(
    const FaultSummary& summary, const std::map<uint32_t, FaultStack>& stacks, size_t n,
    bool by_stack) {
  return by_stack ? top_fault_call_paths(summary.by_stack, stacks, n, symbolizer_)
                  : top_fault_location_names(summary, n, symbolizer_);
}

}  // namespace kscope
