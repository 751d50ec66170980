// The answer to "what code is at this address?", shared by the kernel and the user symbolizer,
// and its one-line text form used by renderers and exporters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kscope {

// One function that the compiler inlined into the code at an address (a DWARF
// DW_TAG_inlined_subroutine). It records where it was called from: the call site lies in the
// next (outer) frame of Symbol::inlined, or in Symbol::function for the outermost one.
struct InlineFrame {
  std::string function;                  // demangled when C++
  std::optional<std::string> call_file;  // DW_AT_call_file
  std::optional<int> call_line;          // DW_AT_call_line
  bool operator==(const InlineFrame&) const = default;
};

// One source-level frame, as a debugger would list it; see Symbol::source_frames().
struct SourceFrame {
  std::string function;
  std::optional<std::string> file;
  std::optional<int> line;
  bool inlined = false;  // true for all but the last (the real, out-of-line function)
  bool operator==(const SourceFrame&) const = default;
};

struct Symbol {
  uint64_t addr = 0;     // the address that was resolved
  std::string function;  // demangled; empty when not resolved
  // resolved: addr - start of `function`. Not resolved but module known: the file offset of addr
  // in module_path (stable across runs, ASLR and processes). Otherwise 0.
  uint64_t offset = 0;
  std::string module;       // basename of the binary, kernel module name, "kernel", or "[vdso]"
  std::string module_path;  // full path of the binary; empty for kernel code
  std::string build_id;     // of module_path's ELF file (hex), when known
  bool resolved = false;    // true when `function` is set
  // Source position of addr from the DWARF line table (the innermost one when code was
  // inlined). Present only when asked for and the binary or its debug file has DWARF.
  std::optional<std::string> file;
  std::optional<int> line;
  // Functions inlined at addr, innermost first; only filled when asked for (stack display).
  std::vector<InlineFrame> inlined;

  bool operator==(const Symbol&) const = default;

  // "function+0xoff (module)" when resolved, "module+0xoff" (file offset) when only the module
  // is known, "0xaddr" when nothing is.
  std::string format() const;

  // The source-level frames at addr, innermost first: each inlined function with the position
  // inside it, then `function` itself with the position of the outermost inlined call (or
  // file:line when nothing was inlined). Empty when not resolved.
  std::vector<SourceFrame> source_frames() const;
};

// An unresolved symbol for an address nobody knows anything about.
Symbol unknown_symbol(uint64_t addr);

// abi::__cxa_demangle; returns the input unchanged when it is not a mangled C++ name.
std::string demangle(const std::string& name);

}  // namespace kscope
