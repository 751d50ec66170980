#include <cstdio>

#include "cli/commands.h"

namespace kscope::cli {

int report_error(const Error& error) {
  std::fprintf(stderr, "kscope: %s\n", error.describe().c_str());
  if (!error.hint.empty()) std::fprintf(stderr, "kscope: %s\n", error.hint.c_str());
  return static_cast<int>(error.exit_code);
}

GlobalOptions& global_options() {
  static GlobalOptions options;
  return options;
}

}  // namespace kscope::cli
