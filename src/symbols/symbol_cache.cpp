#include "symbols/symbol_cache.h"

#include "symbols/fault_stack_frames.h"

namespace kscope {

void SymbolCache::set_mappings(uint32_t pid, const std::vector<Mapping>& mappings) {
  symbolizer_.set_mappings(pid, mappings);
  cache_.erase(pid);
  stacks_.erase(pid);
}

const std::string& SymbolCache::stack_field(const FaultStack& stack) {
  auto& cache = stacks_[stack.pid];
  if (auto it = cache.find(stack.id); it != cache.end()) return it->second;
  std::string text = fault_stack_field(name_fault_stack(&stack, kStackStatusNone, symbolizer_));
  return cache.emplace(stack.id, std::move(text)).first->second;
}

const std::string& SymbolCache::function_at(uint32_t pid, uint64_t ip) {
  auto& cache = cache_[pid];
  if (auto it = cache.find(ip); it != cache.end()) return it->second;
  bool kernel = ip >= 0xffff800000000000ull;  // the kernel half of the x86-64 address space
  Symbol sym = kernel ? symbolizer_.resolve_kernel(ip)
                      : symbolizer_.resolve_user(pid, ip, SymbolDetail::kFunction);
  std::string text = sym.format();
  if (kernel && text.find('(') == std::string::npos) text += " (kernel)";
  return cache.emplace(ip, std::move(text)).first->second;
}

}  // namespace kscope
