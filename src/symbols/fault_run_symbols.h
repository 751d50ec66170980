// The names of one `kscope faults` run, all from one Symbolizer: the --events symbol and stack
// fields while tracing, then the recording's stored names and the summary's top locations at the
// end. One instance means every binary, debug file and kallsyms is opened and parsed once per run
// (issue 13, "no file opened twice"), and every name uses the same options (debug directories,
// debuginfod, perf-PID.map owners).
//
// The Symbolizer is given every mapping snapshot as it arrives (it keeps the latest per process,
// and reuses the binaries of mappings it has seen), so while tracing an address resolves with the
// mappings known at that moment, and at the end with the last mappings of every process.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "model/fault_stacks.h"
#include "model/fault_summary.h"
#include "model/recording_symbols.h"
#include "symbols/symbolizer.h"

namespace kscope {

// The --events `symbol` field of a fault at `ip` in process `pid`: `function+0xoff (module)`;
// kernel addresses (a fault taken inside the kernel, e.g. in copy_to_user) resolve through
// kallsyms and say "(kernel)". `kscope export --symbols` writes the same field from a recording.
std::string fault_symbol_field(Symbolizer& symbolizer, uint32_t pid, uint64_t ip);

class FaultRunSymbols {
 public:
  explicit FaultRunSymbols(SymbolizerOptions options) : symbolizer_(std::move(options)) {}

  // A process's mappings as captured by the tracer; cached --events names of the process are
  // dropped (an address unresolved before may resolve now). The first time a pid is seen, the
  // uid it runs as is taken from /proc/PID while it lives: its perf-PID.map must be that user's.
  void set_mappings(const MappingSnapshot& snapshot);

  // --events --symbols: fault_symbol_field(), cached per process until its mappings change.
  const std::string& function_at(uint32_t pid, uint64_t ip);
  // --events --stacks: the stack field (symbols/fault_stack_frames.h), cached by stack id until
  // its process's mappings change.
  const std::string& stack_field(const FaultStack& stack);

  // The name of every distinct instruction address of the run and of its stacks' frames, for
  // the recording's symbols block.
  std::vector<StoredSymbol> name_all(const FaultSummary& summary,
                                     const std::map<uint32_t, FaultStack>& stacks);
  // The n code locations with the most faults, or with `by_stack` the n call paths.
  std::vector<std::pair<std::string, uint64_t>> top_locations(
      const FaultSummary& summary, const std::map<uint32_t, FaultStack>& stacks, size_t n,
      bool by_stack);

  std::vector<BinarySource> binary_sources() const { return symbolizer_.binary_sources(); }
  Symbolizer& symbolizer() { return symbolizer_; }

 private:
  Symbolizer symbolizer_;
  std::unordered_set<uint32_t> owner_known_;  // pids whose owner the symbolizer was given
  std::map<uint32_t, std::unordered_map<uint64_t, std::string>> functions_;  // pid -> ip -> name
  std::map<uint32_t, std::unordered_map<uint32_t, std::string>> stacks_;     // pid -> id -> field
};

}  // namespace kscope
