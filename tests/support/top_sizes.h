// The lines kscope top writes to KSCOPE_TOP_SIZES=FILE (one per refresh or housekeeping pass:
// "t_ms=N accounts=N thread_names=N ..."), for tests that check what it holds stays bounded.
#pragma once

#include <cstdint>
#include <map>
#include <sstream>
#include <string>

#include "subprocess.h"

namespace kscope::testing {

using TopSizes = std::map<std::string, uint64_t>;

// The last complete line of the file (empty when there is none).
inline TopSizes last_top_sizes(const std::string& path) {
  std::string text = read_file(path);
  size_t end = text.rfind('\n');
  if (end == std::string::npos) return {};
  size_t begin = text.rfind('\n', end - 1);
  begin = begin == std::string::npos ? 0 : begin + 1;
  TopSizes out;
  std::istringstream in(text.substr(begin, end - begin));
  std::string item;
  while (in >> item) {
    size_t eq = item.find('=');
    if (eq == std::string::npos) continue;
    out[item.substr(0, eq)] = std::stoull(item.substr(eq + 1));
  }
  return out;
}

}  // namespace kscope::testing
