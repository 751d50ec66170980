// The figures of a faults report, computed once from a recording and drawn two ways: as
// standalone SVG (kscope report --svg DIR, for papers) and as data for the interactive HTML page.
// Both use compress_page_axis() (the terminal plot's gap-compressed page axis) with
// kReportAxisRows units, so the SVG, the HTML page and `kscope plot` cut the same gaps.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/fault_profile.h"
#include "model/fault_summary.h"
#include "model/recording.h"
#include "render/scatter_plot.h"

namespace kscope {

inline constexpr uint32_t kReportAxisRows = 240;

struct FaultReportModel {
  const Recording* recording = nullptr;
  std::vector<uint32_t> order;  // fault indices sorted by time
  FaultLocations locations;
  std::vector<std::string> location_labels;  // per frame: "function+0xoff [module]"
  FaultSummary summary;
  uint64_t t_max = 0;               // last fault time (X axis spans 0..t_max)
  std::vector<PageAxisRange> axis;  // all faults
  std::array<std::vector<PageAxisRange>, kSegmentCount> segment_axis;  // empty: no faults
  std::map<uint32_t, std::string> process_names;
};

// Sorts, symbolizes (with `symbolizer`), summarizes and computes the axes.
FaultReportModel build_fault_report_model(const Recording& recording, class Symbolizer& symbolizer);

// Y coordinate (in axis units, 0 = bottom) of a page on an axis; the centre of its share.
double axis_position(const std::vector<PageAxisRange>& axis, uint64_t page);
uint32_t axis_units(const std::vector<PageAxisRange>& axis);

struct TopEntry {
  std::string label;
  uint64_t count = 0;
  uint64_t major = 0;
  std::string detail;  // e.g. the segment of a page, the module of a function
};
std::vector<TopEntry> top_functions(const FaultReportModel& m, size_t n);
std::vector<TopEntry> top_pages(const FaultReportModel& m, size_t n);

// Standalone SVG figures.
std::string scatter_svg(const FaultReportModel& m, std::optional<Segment> segment);
std::string cumulative_by_process_svg(const FaultReportModel& m);
std::string cumulative_by_kind_svg(const FaultReportModel& m);
std::string latency_histogram_svg(const FaultReportModel& m);
std::string top_functions_svg(const FaultReportModel& m, size_t n);

}  // namespace kscope
