// `kscope report` of a `kscope top` recording: an interactive on-CPU flame graph, the per-task
// table, and switch / run-queue-wait figures (per task, and over time when the run refreshed).
#pragma once

#include "model/top_recording.h"
#include "render/report_html.h"

namespace kscope {

// Per-thread totals of a top recording's profile, ranked by on-CPU time.
struct TopTaskTotal {
  uint32_t pid = 0;
  uint32_t tid = 0;
  std::string comm;
  TopValues values;
};
std::vector<TopTaskTotal> top_task_totals(const StackProfile& profile);

Result<ReportOutput> build_top_report(const TopRecording& recording, const ReportOptions& options,
                                      bool want_svg);

}  // namespace kscope
