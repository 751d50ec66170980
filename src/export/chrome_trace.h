// Trace Event Format JSON ("JSON Object Format": {"traceEvents": [...]}) read by Perfetto's UI
// (ui.perfetto.dev) and chrome://tracing. Scheduling slices become complete events ("ph":"X")
// on their thread's track, faults instant events ("ph":"i", thread scope) on the faulting
// thread's track, plus process/thread name metadata. Times are microseconds (the format's unit)
// with nanosecond decimals. Mapping documented in docs/export-formats.md.
#pragma once

#include <cstdio>
#include <map>
#include <span>
#include <string>

#include "model/fault_record.h"
#include "model/sched_slice.h"
#include "util/result.h"

namespace kscope {

struct ChromeTraceInput {
  std::span<const SchedSlice> slices;
  std::span<const FaultRecord> faults;
  // Optional: the faulting location per fault (same index as faults), shown in the event's args.
  std::span<const std::string> fault_functions;
  std::map<uint32_t, std::string> process_names;  // pid -> name
  std::map<uint32_t, std::string> thread_names;   // tid -> name
  std::map<std::string, std::string> metadata;    // written under "metadata" (e.g. host)
};

// Streams the JSON to `out`; returns an error when writing fails.
Status write_chrome_trace(const ChromeTraceInput& input, std::FILE* out);

}  // namespace kscope
