#include "symbols/symbol.h"

#include <cxxabi.h>
#include <fmt/format.h>

#include <cstdlib>
#include <memory>

namespace kscope {

std::string Symbol::format() const {
  if (resolved) return fmt::format("{}+{:#x} ({})", function, offset, module);
  if (!module.empty()) return fmt::format("{}+{:#x}", module, offset);
  return fmt::format("{:#x}", addr);
}

std::vector<SourceFrame> Symbol::source_frames() const {
  std::vector<SourceFrame> frames;
  if (!resolved) return frames;
  frames.reserve(inlined.size() + 1);
  // The line table gives the position inside the innermost function; each inlined frame knows
  // where it was called from, which is the position inside the next outer function.
  std::optional<std::string> pos_file = file;
  std::optional<int> pos_line = line;
  for (const InlineFrame& frame : inlined) {
    frames.push_back(SourceFrame{frame.function, pos_file, pos_line, true});
    pos_file = frame.call_file;
    pos_line = frame.call_line;
  }
  frames.push_back(SourceFrame{function, pos_file, pos_line, false});
  return frames;
}

Symbol unknown_symbol(uint64_t addr) {
  Symbol symbol;
  symbol.addr = addr;
  return symbol;
}

std::string demangle(const std::string& name) {
  // Itanium ABI names start with _Z; anything else (C names, Rust v0 "_R") is left alone.
  if (name.size() < 3 || name[0] != '_' || name[1] != 'Z') return name;
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(
      abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status), &std::free);
  if (status != 0 || !out) return name;
  return std::string(out.get());
}

}  // namespace kscope
