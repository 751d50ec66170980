// Loading a recording for `kscope report` / `kscope export`: one place that reads it, warns about
// a truncated or incomplete file, and names the kind for dispatch.
#pragma once

#include <cstdio>
#include <string>

#include "model/recording.h"
#include "model/top_recording.h"
#include "util/result.h"

namespace kscope::cli {

// The reader's warnings (truncation, damaged byte ranges, records lost), one "kscope: " line
// each, on stderr.
inline void print_read_warnings(const ReadSummary& summary) {
  size_t start = 0;
  while (start < summary.warning.size()) {
    size_t end = summary.warning.find('\n', start);
    if (end == std::string::npos) end = summary.warning.size();
    std::fprintf(stderr, "kscope: %.*s\n", static_cast<int>(end - start),
                 summary.warning.c_str() + start);
    start = end + 1;
  }
}

inline Result<Recording> load_recording_for(const std::string& path, const char* command) {
  auto rec = read_recording(path);
  if (!rec) {
    Error e = std::move(rec).error();
    e.message = fmt::format("{}: {}", command, e.message);
    return e;
  }
  if (rec->summary.kind != RecordingKind::kFaults)
    return make_error(fmt::format("{}: {} is a 'kscope top' recording, not a 'kscope faults' one",
                                  command, path));
  print_read_warnings(rec->summary);
  // A truncated or damaged file has said so above; a file that just ends has no trailer.
  if (rec->summary.warning.empty() && !rec->summary.complete)
    std::fprintf(stderr,
                 "kscope: %s has no trailer (kscope did not shut down cleanly): totals and lost "
                 "counts are unknown\n",
                 path.c_str());
  return rec;
}

// Loading a `kscope top` recording, with the same warnings, and a note when its profile had to
// be rebuilt from the increments (kscope top was stopped before writing its profile block).
inline Result<TopRecording> load_top_recording_for(const std::string& path, const char* command) {
  auto rec = read_top_recording(path);
  if (!rec) {
    Error e = std::move(rec).error();
    e.message = fmt::format("{}: {}", command, e.message);
    return e;
  }
  print_read_warnings(rec->summary);
  if (rec->profile_from_increments)
    std::fprintf(stderr,
                 "kscope: %s has no final profile block (kscope top did not shut down cleanly): "
                 "the profile is the sum of its %llu increments, covering the first %.3f s\n",
                 path.c_str(), static_cast<unsigned long long>(rec->increments),
                 static_cast<double>(rec->profile.duration_ns) / 1e9);
  else if (!rec->has_profile)
    std::fprintf(stderr,
                 "kscope: %s has no profile (kscope top was stopped before writing any): only "
                 "its per-thread tables and slices are available\n",
                 path.c_str());
  return rec;
}

inline Error top_not_supported(const char* what) {
  return make_error(fmt::format("{} of 'top' recordings is not supported yet", what), 0,
                    "this kscope can only do it for 'kscope faults' recordings");
}

}  // namespace kscope::cli
