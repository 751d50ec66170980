#include "symbols/fault_stack_frames.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <tuple>

namespace kscope {

namespace {

// The kernel's walk from a tracepoint starts in the tracing and page-fault code; the frame after
// the exception entry is the code that faulted (the walk crosses the exception frame).
constexpr std::string_view kExceptionEntry = "asm_exc_page_fault";

NamedStackFrame marker_frame(std::string text) {
  NamedStackFrame f;
  f.marker = true;
  f.symbol.function = std::move(text);
  f.symbol.resolved = true;
  return f;
}

// Lookup addresses of a stack part: the first frame where the thread was, callers at ra - 1.
uint64_t lookup_of(const std::vector<uint64_t>& ips, size_t i) {
  return i == 0 || ips[i] == 0 ? ips[i] : ips[i] - 1;
}

}  // namespace

std::vector<NamedStackFrame> name_fault_stack(const FaultStack* stack, uint8_t lost_status,
                                              Symbolizer& symbolizer) {
  std::vector<NamedStackFrame> out;
  if (!stack) {
    out.push_back(marker_frame(user_stack_marker(lost_status)));
    return out;
  }
  if (!stack->kernel.empty()) {
    std::vector<NamedStackFrame> kernel;
    size_t first = 0;
    for (size_t i = 0; i < stack->kernel.size(); ++i) {
      NamedStackFrame f;
      f.addr = stack->kernel[i];
      f.lookup = lookup_of(stack->kernel, i);
      f.kernel = true;
      f.symbol = symbolizer.resolve_kernel(f.lookup);
      if (f.symbol.function == kExceptionEntry) first = i + 1;
      kernel.push_back(std::move(f));
    }
    if (first >= kernel.size()) first = 0;  // no exception frame: keep the walk as it is
    out.insert(out.end(), std::make_move_iterator(kernel.begin() + static_cast<long>(first)),
               std::make_move_iterator(kernel.end()));
  }
  if (std::string m = kernel_stack_marker(stack->kernel_status); !m.empty())
    out.push_back(marker_frame(std::move(m)));
  for (size_t i = 0; i < stack->user.size(); ++i) {
    NamedStackFrame f;
    f.addr = stack->user[i];
    f.lookup = lookup_of(stack->user, i);
    f.symbol = symbolizer.resolve_user(stack->pid, f.lookup, SymbolDetail::kFunction);
    out.push_back(std::move(f));
  }
  if (std::string m = user_stack_marker(stack->user_status); !m.empty())
    out.push_back(marker_frame(std::move(m)));
  return out;
}

std::string stack_frame_word(const NamedStackFrame& frame) {
  std::string name;
  if (frame.symbol.resolved || frame.marker) {
    name = frame.symbol.function;
  } else if (!frame.symbol.module.empty()) {
    name = fmt::format("{}+{:#x}", frame.symbol.module, frame.symbol.offset);
  } else {
    name = fmt::format("{:#x}", frame.addr);
  }
  for (char& c : name) {
    if (c == ';') c = ':';
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (frame.kernel) name += "_[k]";
  return name;
}

std::string fault_stack_field(const std::vector<NamedStackFrame>& frames) {
  std::string out;
  for (const auto& f : frames) {
    if (!out.empty()) out += ';';
    out += stack_frame_word(f);
  }
  return out;
}

std::vector<StoredSymbol> name_stack_addresses(const std::vector<const FaultStack*>& stacks,
                                               Symbolizer& symbolizer) {
  std::vector<StoredSymbol> out;
  auto add = [&](bool kernel, uint32_t pid, uint64_t ip) {
    StoredSymbol s;
    s.kernel = kernel;
    s.pid = kernel ? 0 : pid;
    s.ip = ip;
    Symbol symbol = kernel ? symbolizer.resolve_kernel(ip)
                           : symbolizer.resolve_user(pid, ip, SymbolDetail::kFunction);
    s.resolved = symbol.resolved;
    s.function = std::move(symbol.function);
    s.offset = symbol.offset;
    s.module = std::move(symbol.module);
    s.module_path = std::move(symbol.module_path);
    s.build_id = std::move(symbol.build_id);
    out.push_back(std::move(s));
  };
  std::map<std::tuple<bool, uint32_t, uint64_t>, bool> seen;
  for (const FaultStack* st : stacks) {
    for (size_t i = 0; i < st->kernel.size(); ++i) {
      uint64_t ip = lookup_of(st->kernel, i);
      if (seen.emplace(std::make_tuple(true, 0u, ip), true).second) add(true, 0, ip);
    }
    for (size_t i = 0; i < st->user.size(); ++i) {
      uint64_t ip = lookup_of(st->user, i);
      if (seen.emplace(std::make_tuple(false, st->pid, ip), true).second) add(false, st->pid, ip);
    }
  }
  return out;
}

std::vector<std::pair<std::string, uint64_t>> top_fault_call_paths(
    const std::unordered_map<uint32_t, uint64_t>& by_stack,
    const std::map<uint32_t, FaultStack>& stacks, size_t n, Symbolizer& symbolizer) {
  std::map<std::string, uint64_t> merged;
  for (const auto& [id, count] : by_stack) {
    auto it = stacks.find(id);
    auto frames = name_fault_stack(it == stacks.end() ? nullptr : &it->second,
                                   kStackStatusLostDamaged, symbolizer);
    std::string path;
    for (auto f = frames.rbegin(); f != frames.rend(); ++f) {
      if (!path.empty()) path += " -> ";
      path += stack_frame_word(*f);
    }
    merged[path] += count;
  }
  std::vector<std::pair<std::string, uint64_t>> v(merged.begin(), merged.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (v.size() > n) v.resize(n);
  return v;
}

}  // namespace kscope
