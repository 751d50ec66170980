// Terminal scatter plot of page faults for `kscope faults`: time since start on X, virtual page
// number (addr >> 12) on Y, one character per cell whose mark shows how many faults fell in it.
//
// Virtual address spaces are sparse (executable near 0x55..., libraries near 0x7f...,
// stack near 0x7ffc...), so by default the Y axis is gap-compressed: only page ranges that had
// faults get rows, and a break row of '~' labelled with the skipped size separates them.
// ScatterOptions::linear plots min..max page proportionally instead. docs/plots.md explains
// how to read the output.
//
// Pure functions of their input: no I/O, no globals, the same input gives the same text.
// Cost is O(n log n) in the number of points (one sort of the distinct pages) plus O(rows * cols).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/fault_record.h"
#include "util/result.h"

namespace kscope {

// One fault as the plot sees it.
struct PlotPoint {
  uint64_t time_ns = 0;  // since tracing started
  uint64_t addr = 0;     // faulting virtual address; the plot uses the page number addr >> 12
  bool major = false;
  Segment segment = Segment::kOther;

  bool operator==(const PlotPoint&) const = default;
};

inline PlotPoint to_plot_point(const FaultRecord& record) {
  return PlotPoint{record.time_ns, record.addr, record.kind == FaultKind::kMajor, record.segment};
}

// Inclusive time window: points with begin_ns <= time_ns <= end_ns are plotted, and the X axis
// spans exactly this window.
struct TimeWindow {
  uint64_t begin_ns = 0;
  uint64_t end_ns = 0;
};

inline constexpr int kScatterMinRows = 4;
inline constexpr int kScatterMinCols = 10;
// Upper bounds keep a mistyped size from allocating a huge grid.
inline constexpr int kScatterMaxRows = 1000;
inline constexpr int kScatterMaxCols = 1000;

struct ScatterOptions {
  int rows = 30;        // height of the plot area in lines, break rows included
  int cols = 70;        // width of the plot area in characters
  bool linear = false;  // true: Y is min..max page proportionally, no gap compression
  std::string title;    // first line of the output when not empty
  std::optional<TimeWindow> time_range;  // empty: 0 (start of tracing) .. the last fault
  // Fewer rows than `rows` when the data needs fewer: when every faulting page fits on a row of
  // its own, the plot has exactly one row per page of the (gap-compressed) axis plus the break
  // rows. render_scatter_by_segment() sets it for each segment's plot.
  bool fit_rows = false;
};

// Renders the plot as lines ending in '\n'. The plot area is exactly options.rows lines (fewer
// with fit_rows, see above) of options.cols cells between borders; every line is at most cols + 24
// characters long. Errors (usage errors): rows or cols out of [kScatterMin*, kScatterMax*], or a
// time window that ends before it begins. No points (or none in the window) gives a one-line
// message
// "(no faults to plot)" / "(no faults in the selected time range)" after the title.
Result<std::string> render_scatter_plot(std::span<const PlotPoint> points,
                                        const ScatterOptions& options);

struct SegmentPlot {
  Segment segment = Segment::kOther;
  std::string text;  // a render_scatter_plot() output titled with the segment name
};

// One plot per segment that has faults in the time window, in Segment enum order; segments
// without faults are left out. Each plot's title is the segment name (to_string(Segment)),
// prefixed with "<options.title>: " when a title is given. All plots share one X axis (0 to the
// last fault of any segment, or options.time_range) so they line up; each has its own Y axis,
// sized to its data (fit_rows): at most options.rows rows, fewer when its pages need fewer.
Result<std::vector<SegmentPlot>> render_scatter_by_segment(std::span<const PlotPoint> points,
                                                           const ScatterOptions& options);

// The gap-compressed page axis the plots above use, for other renderers (the HTML report) that
// must draw the same axis. `pages` must be sorted, distinct and non-empty; `rows` >= 1 is the
// number of axis units to distribute. Ranges are bottom-up; one unit (a break) separates
// neighbours: range i covers units [first_row, first_row + rows).
struct PageAxisRange {
  uint64_t lo = 0;  // lowest faulting page of the range
  uint64_t hi = 0;  // highest faulting page
  uint32_t rows = 0;
  uint32_t first_row = 0;
};
std::vector<PageAxisRange> compress_page_axis(const std::vector<uint64_t>& pages, uint32_t rows);

// The end-of-run plot(s) of `kscope faults` and `kscope plot`: one plot, or with by_segment one
// per non-empty segment ("(no faults to plot)" when there is none).
// --rows/--cols within the plot's limits (a usage error otherwise).
Status validate_plot_size(int rows, int cols);

Result<std::string> render_fault_plots(const std::vector<PlotPoint>& points, int rows, int cols,
                                       bool by_segment, bool linear);

}  // namespace kscope
