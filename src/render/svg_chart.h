// A small SVG renderer for XY line charts: title, axis labels with units, "nice" ticks, a
// legend, one polyline per series (optionally with point markers). All text is XML-escaped.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kscope {

struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in the given order
  bool markers = false;
  bool dashed = false;
};

struct ChartOptions {
  std::string title;
  std::string x_label;  // with unit, e.g. "time (s)"
  std::string y_label;
  int width = 800;
  int height = 480;
  bool y_from_zero = true;
  bool x_from_zero = false;
};

// Round tick values (1, 2, 5 x 10^k steps) covering [lo, hi], about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

// Tick label: integers without decimals, large values with k/M suffix, else 2 significant
// decimals.
std::string format_tick(double v, double step);

std::string render_svg_chart(const std::vector<ChartSeries>& series, const ChartOptions& options);

}  // namespace kscope
