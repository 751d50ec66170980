// The executable mappings of a process read straight from /proc/PID/maps with sscanf: ground
// truth for "every frame lies in an executable mapping", independent of kscope's own parser.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace kscope::testing {

struct ExecRange {
  uint64_t start, end;
  std::string path;  // the file, "[vdso]"-style name, or empty for anonymous memory
};

inline std::vector<ExecRange> exec_mappings(int pid) {
  std::vector<ExecRange> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long s = 0, e = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%llx-%llx %7s", &s, &e, perms) != 3 || perms[2] != 'x') continue;
    auto slash = line.find('/');
    auto bracket = line.find('[');
    std::string path = slash != std::string::npos     ? line.substr(slash)
                       : bracket != std::string::npos ? line.substr(bracket)
                                                      : "";
    out.push_back({s, e, path});
  }
  return out;
}

}  // namespace kscope::testing
