// `function+0xoff (module)` of instruction addresses as they stream by (kscope faults
// --events --symbols): resolved with the mappings known at that moment, cached per process until
// its mappings change (an address unresolved before may resolve then).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/fault_stacks.h"
#include "symbols/symbolizer.h"

namespace kscope {

class SymbolCache {
 public:
  void set_mappings(uint32_t pid, const std::vector<Mapping>& mappings);
  // Kernel addresses (a fault taken inside the kernel, e.g. in copy_to_user) resolve through
  // kallsyms and say "(kernel)".
  const std::string& function_at(uint32_t pid, uint64_t ip);
  // The --events stack field of a stack (symbols/fault_stack_frames.h), cached by stack id until
  // its process's mappings change.
  const std::string& stack_field(const FaultStack& stack);

 private:
  Symbolizer symbolizer_;
  std::map<uint32_t, std::unordered_map<uint64_t, std::string>> cache_;
  std::map<uint32_t, std::unordered_map<uint32_t, std::string>> stacks_;  // pid -> id -> field
};

}  // namespace kscope
