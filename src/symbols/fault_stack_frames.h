// Names the frames of a fault's stacks (kscope faults --stacks, model/fault_stacks.h), the same
// way for the end-of-run summary, --events, the recording's stored names and every exporter.
//
// Order is LEAF FIRST, as perf script prints a call chain: the kernel frames of a fault taken in
// kernel mode (the page-fault entry frames above the exception, which the kernel's stack walk
// starts with, are left out: the first kernel frame is the code that touched user memory), then
// the user frames, then, for a user stack that is not whole, one marker frame that says why
// ("[incomplete: REASON]", "[stack lost: REASON]"; "[kernel stack lost: REASON]" for the kernel
// part). A frame after the first of its part is a return address and is looked up at address - 1
// (the call instruction).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/fault_stacks.h"
#include "model/recording_symbols.h"
#include "symbols/symbolizer.h"

namespace kscope {

struct NamedStackFrame {
  uint64_t addr = 0;    // as stored (a return address for callers)
  uint64_t lookup = 0;  // the address the name was looked up at (addr or addr - 1)
  bool kernel = false;
  bool marker = false;  // a marker frame: `symbol.function` holds its text
  Symbol symbol;
};

// The frames of `stack` (null: lost, `lost_status` says why), leaf first.
std::vector<NamedStackFrame> name_fault_stack(const FaultStack* stack, uint8_t lost_status,
                                              Symbolizer& symbolizer);

// A frame as one word: the function, else module+0xoff (or 0xaddr); kernel frames end in
// "_[k]"; ';' and line breaks/tabs are replaced (folded stacks, the --events stack field).
std::string stack_frame_word(const NamedStackFrame& frame);

// The --events / export `stack` field: the words leaf first, ';'-separated.
std::string fault_stack_field(const std::vector<NamedStackFrame>& frames);

// The name of every address the stacks' frames are looked up at, for a recording's symbols block
// (merge with name_fault_addresses(); duplicates are removed by the caller's sort).
std::vector<StoredSymbol> name_stack_addresses(const std::vector<const FaultStack*>& stacks,
                                               Symbolizer& symbolizer);

// The n call paths with the most faults, root first ("main -> f1 -> leaf"), from the faults per
// stack id; stacks that name the same chain of functions are merged.
std::vector<std::pair<std::string, uint64_t>> top_fault_call_paths(
    const std::unordered_map<uint32_t, uint64_t>& by_stack,
    const std::map<uint32_t, FaultStack>& stacks, size_t n, Symbolizer& symbolizer);

}  // namespace kscope
