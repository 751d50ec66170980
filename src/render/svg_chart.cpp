#include "render/svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "render/svg.h"

namespace kscope {

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> ticks;
  if (!std::isfinite(lo) || !std::isfinite(hi)) return ticks;
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) hi = lo + 1;
  double raw = (hi - lo) / std::max(1, target);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  double start = std::floor(lo / step) * step;
  for (double v = start; v <= hi + step * 1e-9 && ticks.size() < 100; v += step)
    ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  if (!ticks.empty() && ticks.back() < hi - step * 1e-9) ticks.push_back(ticks.back() + step);
  return ticks;
}

std::string format_tick(double v, double step) {
  double a = std::abs(v);
  if (a >= 1e6 && step >= 1e5) return fmt::format("{:g}M", v / 1e6);
  if (a >= 1e4 && step >= 1e3) return fmt::format("{:g}k", v / 1e3);
  if (step >= 1) return fmt::format("{:.0f}", v);
  int decimals = static_cast<int>(std::ceil(-std::log10(step)));
  return fmt::format("{:.{}f}", v, std::clamp(decimals, 0, 6));
}

namespace {

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

}  // namespace

std::string render_svg_chart(const std::vector<ChartSeries>& series, const ChartOptions& o) {
  const double W = std::max(200, o.width), H = std::max(150, o.height);
  const double left = 80, right = 20, top = 50;
  // The legend sits below the plot, one row per series.
  size_t legend_rows = series.size();
  const double bottom = 60 + 18.0 * static_cast<double>(legend_rows);
  const double total_h = H + 18.0 * static_cast<double>(legend_rows);
  const double pw = W - left - right, ph = total_h - top - bottom;

  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin;
  double ymin = xmin, ymax = -xmin;
  for (const auto& s : series)
    for (auto [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      xmin = std::min(xmin, x);
      xmax = std::max(xmax, x);
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
    }
  bool empty = !std::isfinite(xmin);
  if (empty) {
    xmin = 0;
    xmax = 1;
    ymin = 0;
    ymax = 1;
  }
  if (o.y_from_zero) ymin = std::min(ymin, 0.0);
  if (o.x_from_zero) xmin = std::min(xmin, 0.0);
  auto xt = nice_ticks(xmin, xmax);
  auto yt = nice_ticks(ymin, ymax);
  double x0 = xt.front(), x1 = xt.back(), y0 = yt.front(), y1 = yt.back();
  double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1, ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return top + ph - (y - y0) / (y1 - y0) * ph; };

  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" "
      "viewBox=\"0 0 {0:.0f} {1:.0f}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      W, total_h);
  out += fmt::format(
      "<text x=\"{:.1f}\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" "
      "font-weight=\"bold\">{}</text>\n",
      W / 2, xml_escape(o.title));
  // Grid and ticks.
  for (double v : xt) {
    double x = px(v);
    out += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" "
        "stroke=\"#e0e0e0\"/>\n",
        x, top, top + ph);
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x,
                       top + ph + 16, xml_escape(format_tick(v, xstep)));
  }
  for (double v : yt) {
    double y = py(v);
    out += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" "
        "stroke=\"#e0e0e0\"/>\n",
        left, y, left + pw);
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 6,
                       y + 4, xml_escape(format_tick(v, ystep)));
  }
  out += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
      "fill=\"none\" stroke=\"black\"/>\n",
      left, top, pw, ph);
  out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                     left + pw / 2, top + ph + 36, xml_escape(o.x_label));
  out += fmt::format(
      "<text x=\"18\" y=\"{0:.1f}\" text-anchor=\"middle\" "
      "transform=\"rotate(-90 18 {0:.1f})\">{1}</text>\n",
      top + ph / 2, xml_escape(o.y_label));
  if (empty)
    out += fmt::format(
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"#888\">"
        "no data</text>\n",
        left + pw / 2, top + ph / 2);
  // Series.
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    const char* color = kColors[i % (sizeof(kColors) / sizeof(kColors[0]))];
    std::string pts;
    for (auto [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      pts += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    }
    out +=
        fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\n",
                    color, s.dashed ? " stroke-dasharray=\"6 4\"" : "", pts);
    if (s.markers)
      for (auto [x, y] : s.points)
        if (std::isfinite(x) && std::isfinite(y))
          out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\"/>\n", px(x),
                             py(y), color);
    double ly = top + ph + 56 + 18.0 * static_cast<double>(i);
    out += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" "
        "stroke=\"{3}\" stroke-width=\"2\"{4}/>\n",
        left, ly - 4, left + 28, color, s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", left + 36, ly,
                       xml_escape(s.name));
  }
  out += "</svg>\n";
  return out;
}

}  // namespace kscope
