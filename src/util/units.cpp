#include "util/units.h"

#include <fmt/format.h>

namespace kscope {

std::string format_count(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  int i = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it, ++i) {
    if (i && i % 3 == 0) out.push_back(',');
    out.push_back(*it);
  }
  return std::string(out.rbegin(), out.rend());
}

std::string format_duration_ns(uint64_t ns) {
  if (ns < 1000) return fmt::format("{}ns", ns);
  if (ns < 1000000) return fmt::format("{:.1f}us", static_cast<double>(ns) / 1e3);
  if (ns < 1000000000) return fmt::format("{:.1f}ms", static_cast<double>(ns) / 1e6);
  return fmt::format("{:.2f}s", static_cast<double>(ns) / 1e9);
}

}  // namespace kscope
