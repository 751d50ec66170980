// Kernel symbols from /proc/kallsyms.
//
// kallsyms lists every symbol of vmlinux and of loaded modules ("[ext4]" column), plus BPF
// programs ("[bpf]") and trampolines, without sizes. A text symbol is taken to extend up to the
// next symbol of any type, so an address in data never resolves to the last function before it.
// When kernel.kptr_restrict hides addresses (all zeros for unprivileged readers, see
// kallsyms_show_value()), parsing fails with a hint and callers report kernel symbols as
// unavailable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "symbols/symbol.h"
#include "util/result.h"

namespace kscope {

class KernelSymbols {
 public:
  struct Hit {
    uint64_t start = 0;
    std::string_view name;
    std::string_view module;  // "kernel" for vmlinux
  };

  // Parses kallsyms text (a fixture in tests). Malformed lines are skipped and counted in
  // *malformed_lines. Fails when no text symbol has a non-zero address.
  static Result<KernelSymbols> parse(std::string_view text, size_t* malformed_lines = nullptr);
  // Reads and parses the file (default /proc/kallsyms).
  static Result<KernelSymbols> load(const std::string& path = "/proc/kallsyms");

  // The text symbol covering addr, if any. Binary search; thread-compatible (const, no caches).
  std::optional<Hit> lookup(uint64_t addr) const;
  // lookup() as a Symbol: "name+0xoff (module)", or unresolved "0xaddr".
  Symbol resolve(uint64_t addr) const;

  // Number of symbols kept (text and the others that bound them), after merging aliases.
  size_t size() const { return entries_.size(); }
  size_t text_symbol_count() const;

 private:
  struct Entry {
    uint64_t addr;
    uint32_t name_offset;  // into names_
    uint16_t name_length;
    uint16_t module;  // index into modules_; 0 is "kernel"
    bool text;
  };
  std::vector<Entry> entries_;  // sorted by addr, one per address
  std::string names_;
  std::vector<std::string> modules_;
};

}  // namespace kscope
