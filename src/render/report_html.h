// `kscope report`: one self-contained HTML page (and optionally standalone SVG figures) for a
// recording. Built so a second recording kind (top) plugs in next to the faults one: the page
// shell (html_page.h), the flame graph section (flamegraph.h) and the SVG figure list are shared.
#pragma once

#include <string>
#include <vector>

#include "model/recording.h"
#include "util/result.h"

namespace kscope {

class Symbolizer;

struct ReportOptions {
  std::string title;        // page title; default "kscope report: <path>"
  std::string source_path;  // the recording's path, shown in the header
  size_t top = 25;          // rows in the top-functions and top-pages tables
  // Above this many points in view, the scatter draws a density heatmap instead of points.
  size_t density_threshold = 200'000;
};

// A standalone SVG figure: written to DIR/<name>.svg by `kscope report --svg DIR`.
struct ReportFigure {
  std::string name;  // file name without .svg, [a-z0-9_-] only
  std::string svg;
};

struct ReportOutput {
  std::string html;
  std::vector<ReportFigure> figures;  // filled when asked for (want_svg)
};

// Builds the report of a faults recording. `symbolizer` resolves fault ips (with the mappings
// stored in the recording); pass a default-constructed one.
Result<ReportOutput> build_fault_report(const Recording& recording, const ReportOptions& options,
                                        Symbolizer& symbolizer, bool want_svg);

// The HTML only (convenience for callers that do not write figures).
Result<std::string> build_fault_report_html(const Recording& recording,
                                            const ReportOptions& options);

}  // namespace kscope
