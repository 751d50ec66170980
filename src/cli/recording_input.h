// Loading a recording for `kscope report` / `kscope export`: one place that reads it, warns about
// a truncated or incomplete file, and names the kind for dispatch.
#pragma once

#include <cstdio>
#include <string>

#include "model/recording.h"
#include "util/result.h"

namespace kscope::cli {

inline Result<Recording> load_recording_for(const std::string& path, const char* command) {
  auto rec = read_recording(path);
  if (!rec) {
    Error e = std::move(rec).error();
    e.message = fmt::format("{}: {}", command, e.message);
    return e;
  }
  if (!rec->summary.warning.empty())
    std::fprintf(stderr, "kscope: %s\n", rec->summary.warning.c_str());
  else if (!rec->summary.complete)
    std::fprintf(stderr,
                 "kscope: %s has no trailer (kscope did not shut down cleanly): totals and lost "
                 "counts are unknown\n",
                 path.c_str());
  return rec;
}

inline Error top_not_supported(const char* what) {
  return make_error(fmt::format("{} of 'top' recordings is not supported yet", what), 0,
                    "this kscope can only do it for 'kscope faults' recordings");
}

}  // namespace kscope::cli
