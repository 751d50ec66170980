#include "symbols/kallsyms.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <unordered_map>

#include "util/file.h"

namespace kscope {
namespace {

constexpr std::string_view kVmlinuxModule = "kernel";

// Text (code) symbol types as printed by the kernel: T/t from vmlinux via scripts/kallsyms,
// W/w for weak functions (elf_type() in kernel/module/kallsyms.c).
bool is_text_type(char type) { return type == 'T' || type == 't' || type == 'W' || type == 'w'; }

// Splits off the next blank-separated token.
std::string_view next_token(std::string_view& line) {
  size_t begin = line.find_first_not_of(" \t");
  if (begin == std::string_view::npos) {
    line = {};
    return {};
  }
  line.remove_prefix(begin);
  size_t end = line.find_first_of(" \t");
  std::string_view token = line.substr(0, end);
  line.remove_prefix(end == std::string_view::npos ? line.size() : end);
  return token;
}

// When several symbols share an address (aliases such as _text/_stext), the one shown is the
// most useful: code before data, global before local before weak, fewer leading underscores
// (the public name rather than the __internal alias), then the first listed.
struct Candidate {
  uint64_t addr;
  std::string_view name;
  uint16_t module;
  char type;
  uint32_t order;  // line index, for a deterministic tie-break
};

int rank(const Candidate& c) {
  int r = 0;
  if (!is_text_type(c.type)) r += 1000;
  if (c.type == 'W' || c.type == 'w') {
    r += 200;
  } else if (c.type >= 'a' && c.type <= 'z') {
    r += 100;
  }
  size_t underscores = 0;
  while (underscores < c.name.size() && c.name[underscores] == '_') ++underscores;
  return r + static_cast<int>(std::min<size_t>(underscores, 99));
}

}  // namespace

Result<KernelSymbols> KernelSymbols::parse(std::string_view text, size_t* malformed_lines) {
  KernelSymbols out;
  out.modules_.emplace_back(kVmlinuxModule);
  std::unordered_map<std::string_view, uint16_t> module_index;
  std::vector<Candidate> candidates;
  size_t malformed = 0;
  size_t valid_lines = 0;
  bool any_text_address = false;
  uint32_t order = 0;

  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;

    std::string_view addr_text = next_token(line);
    std::string_view type_text = next_token(line);
    std::string_view name = next_token(line);
    std::string_view module = next_token(line);
    uint64_t addr = 0;
    auto [ptr, ec] =
        std::from_chars(addr_text.data(), addr_text.data() + addr_text.size(), addr, 16);
    bool ok =
        ec == std::errc() && ptr == addr_text.data() + addr_text.size() && type_text.size() == 1 &&
        !name.empty() && name.size() <= UINT16_MAX && next_token(line).empty() &&
        (module.empty() || (module.size() > 2 && module.front() == '[' && module.back() == ']'));
    if (!ok) {
      ++malformed;
      continue;
    }
    ++valid_lines;
    char type = type_text[0];
    if (is_text_type(type) && addr != 0) any_text_address = true;
    // Zero addresses are hidden ones (or absolute percpu offsets): they bound nothing.
    if (addr == 0) continue;

    uint16_t module_id = 0;
    if (!module.empty()) {
      module.remove_prefix(1);
      module.remove_suffix(1);
      auto [it, inserted] = module_index.try_emplace(module, 0);
      if (inserted) {
        if (out.modules_.size() > UINT16_MAX) {
          ++malformed;
          continue;
        }
        it->second = static_cast<uint16_t>(out.modules_.size());
        out.modules_.emplace_back(module);
      }
      module_id = it->second;
    }
    candidates.push_back(Candidate{addr, name, module_id, type, order++});
  }
  if (malformed_lines) *malformed_lines = malformed;

  if (!any_text_address) {
    if (valid_lines == 0) {
      return make_error(fmt::format(
          "kernel symbols are unavailable: no kallsyms line parses ({} malformed)", malformed));
    }
    return make_error(
        "kernel symbols are unavailable: /proc/kallsyms shows no addresses", 0,
        "kernel.kptr_restrict hides them; run as root, or set sysctl kernel.kptr_restrict=0 "
        "(1 shows them to CAP_SYSLOG only)");
  }

  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.addr != b.addr) return a.addr < b.addr;
    int ra = rank(a), rb = rank(b);
    if (ra != rb) return ra < rb;
    return a.order < b.order;
  });

  size_t total_names = 0;
  for (const Candidate& c : candidates) total_names += c.name.size();
  out.names_.reserve(total_names);
  out.entries_.reserve(candidates.size());
  for (const Candidate& c : candidates) {
    // The best-ranked alias comes first; skip the rest of its address.
    if (!out.entries_.empty() && out.entries_.back().addr == c.addr) continue;
    if (out.names_.size() + c.name.size() > UINT32_MAX) break;
    out.entries_.push_back(Entry{c.addr, static_cast<uint32_t>(out.names_.size()),
                                 static_cast<uint16_t>(c.name.size()), c.module,
                                 is_text_type(c.type)});
    out.names_.append(c.name);
  }
  return out;
}

Result<KernelSymbols> KernelSymbols::load(const std::string& path) {
  // About 10 MB on a distribution kernel; the bound only stops a runaway file.
  KSCOPE_ASSIGN_OR_RETURN(auto text, read_file(path, size_t{1} << 30));
  return parse(text);
}

std::optional<KernelSymbols::Hit> KernelSymbols::lookup(uint64_t addr) const {
  auto it = std::upper_bound(entries_.begin(), entries_.end(), addr,
                             [](uint64_t a, const Entry& e) { return a < e.addr; });
  if (it == entries_.begin()) return std::nullopt;
  const Entry& e = *(it - 1);
  // The nearest symbol below is data (or a boundary we cannot attribute): not code we know.
  if (!e.text) return std::nullopt;
  return Hit{e.addr, std::string_view(names_).substr(e.name_offset, e.name_length),
             modules_[e.module]};
}

Symbol KernelSymbols::resolve(uint64_t addr) const {
  Symbol symbol = unknown_symbol(addr);
  if (auto hit = lookup(addr)) {
    symbol.function = std::string(hit->name);
    symbol.offset = addr - hit->start;
    symbol.module = std::string(hit->module);
    symbol.resolved = true;
  }
  return symbol;
}

size_t KernelSymbols::text_symbol_count() const {
  return static_cast<size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) { return e.text; }));
}

}  // namespace kscope
