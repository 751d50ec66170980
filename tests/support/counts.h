#pragma once
// A count as kscope prints it (thousands separated by commas: "24,503") read back as a number.
#include <algorithm>
#include <cstdint>
#include <string>

namespace kscope::testing {

inline uint64_t parse_count(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), ','), s.end());
  return std::stoull(s);
}

}  // namespace kscope::testing
