// External tools some tests drive (go tool pprof, chromium, sqlite3): found on PATH. A test that
// needs a missing tool skips with the reason, except under KSCOPE_REQUIRE_BPF=1 (CI installs them
// with scripts/deps.sh check), where it fails.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "runtime_env.h"

namespace kscope::testing {

inline std::string find_tool(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string candidate = p.substr(start, end - start) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  for (const char* dir : {"/usr/bin/", "/usr/lib/go/bin/", "/usr/local/go/bin/"}) {
    std::string candidate = std::string(dir) + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

}  // namespace kscope::testing

#define KSCOPE_REQUIRE_TOOL_OR_SKIP(var, name, package)                                 \
  std::string var = ::kscope::testing::find_tool(name);                                 \
  if (var.empty()) {                                                                    \
    if (::kscope::testing::bpf_required())                                              \
      FAIL() << "KSCOPE_REQUIRE_BPF=1 but " name " is missing (Debian package " package \
                "; scripts/deps.sh check installs it)";                                 \
    GTEST_SKIP() << name " not found (Debian package " package "); skipping";           \
  }
