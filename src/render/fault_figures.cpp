#include "render/fault_figures.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <unordered_map>

#include "render/svg.h"
#include "symbols/fault_locations.h"
#include "symbols/symbolizer.h"

namespace kscope {

namespace {

constexpr int kPageShift = 12;

// A "nice" step (1, 2 or 5 times a power of ten) giving about `target` intervals over `range`.
double nice_step(double range, int target) {
  if (range <= 0) return 1;
  double raw = range / target;
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

// Plot frame shared by the line/bar charts: margins and a linear mapping.
struct Frame {
  int width = 760, height = 320;
  int left = 70, right = 160, top = 34, bottom = 44;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * (width - left - right); }
  double py(double y) const {
    return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom);
  }
};

void time_axis(std::string& out, const Frame& f, const char* label = "time since start") {
  double step = nice_step(f.x1 - f.x0, 6);
  for (double t = std::ceil(f.x0 / step) * step; t <= f.x1 + step * 1e-9; t += step) {
    double x = f.px(t);
    out += fmt::format(
        "<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#ddd\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        x, f.top, f.height - f.bottom, f.height - f.bottom + 16, xml_escape(format_time_label(t)));
  }
  out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">{}</text>\n",
                     (f.left + f.width - f.right) / 2, f.height - 6, label);
}

void count_axis(std::string& out, const Frame& f, const char* label) {
  double step = nice_step(f.y1 - f.y0, 5);
  for (double v = 0; v <= f.y1 + step * 1e-9; v += step) {
    double y = f.py(v);
    out += fmt::format(
        "<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>"
        "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
        f.left, f.width - f.right, y, f.left - 6, y + 4, xml_escape(format_short_count(v)));
  }
  out += fmt::format(
      "<text transform=\"translate(14,{}) rotate(-90)\" text-anchor=\"middle\" "
      "fill=\"#444\">{}</text>\n",
      (f.top + f.height - f.bottom) / 2, label);
}

void title(std::string& out, const Frame& f, std::string_view text) {
  out += fmt::format("<text x=\"{}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
                     f.left, xml_escape(text));
}

struct Series {
  std::string name;
  std::string color;
  std::vector<std::pair<double, double>> points;  // (time, cumulative count)
};

std::string lines_svg(std::string_view heading, const std::vector<Series>& series, double t_max,
                      const char* y_label) {
  Frame f;
  f.x1 = std::max(1.0, t_max);
  double ymax = 1;
  for (const auto& s : series)
    for (const auto& p : s.points) ymax = std::max(ymax, p.second);
  f.y1 = ymax * 1.05;
  std::string out = svg_open(f.width, f.height, heading);
  title(out, f, heading);
  time_axis(out, f);
  count_axis(out, f, y_label);
  int legend_y = f.top + 10;
  for (const auto& s : series) {
    std::string d;
    for (size_t i = 0; i < s.points.size(); ++i)
      d += fmt::format("{}{:.1f},{:.1f}", i ? " L" : "M", f.px(s.points[i].first),
                       f.py(s.points[i].second));
    out += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n", d,
                       s.color);
    out += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/>"
        "<text x=\"{}\" y=\"{}\">{}</text>\n",
        f.width - f.right + 10, legend_y - 10, s.color, f.width - f.right + 27, legend_y,
        xml_escape(s.name.size() > 20 ? s.name.substr(0, 19) + "…" : s.name));
    legend_y += 18;
  }
  out += kSvgClose;
  return out;
}

// Cumulative count over time, downsampled to at most kSteps points per series.
constexpr int kSteps = 400;

constexpr std::array<const char*, 8> kPalette = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                 "#9467bd", "#8c564b", "#e377c2", "#17becf"};

}  // namespace

double axis_position(const std::vector<PageAxisRange>& axis, uint64_t page) {
  auto it = std::upper_bound(axis.begin(), axis.end(), page,
                             [](uint64_t v, const PageAxisRange& r) { return v < r.lo; });
  if (it == axis.begin()) return 0;
  const PageAxisRange& r = *(it - 1);
  const double span = static_cast<double>(r.hi - r.lo + 1);
  return r.first_row + (static_cast<double>(page - r.lo) + 0.5) / span * r.rows;
}

uint32_t axis_units(const std::vector<PageAxisRange>& axis) {
  return axis.empty() ? 0 : axis.back().first_row + axis.back().rows;
}

FaultReportModel build_fault_report_model(const Recording& rec, Symbolizer& symbolizer) {
  FaultReportModel m;
  m.recording = &rec;
  m.order.resize(rec.faults.size());
  for (uint32_t i = 0; i < m.order.size(); ++i) m.order[i] = i;
  std::stable_sort(m.order.begin(), m.order.end(), [&](uint32_t a, uint32_t b) {
    return rec.faults[a].time_ns < rec.faults[b].time_ns;
  });
  m.locations = resolve_fault_locations(rec, symbolizer);
  for (const auto& f : m.locations.frames) m.location_labels.push_back(f.display());
  std::vector<uint64_t> pages;
  std::array<std::vector<uint64_t>, kSegmentCount> seg_pages;
  pages.reserve(rec.faults.size());
  for (const auto& f : rec.faults) {
    m.summary.add(f);
    m.t_max = std::max(m.t_max, f.time_ns);
    pages.push_back(f.addr >> kPageShift);
    seg_pages[std::min<size_t>(static_cast<size_t>(f.segment), kSegmentCount - 1)].push_back(
        f.addr >> kPageShift);
  }
  auto axis_of = [](std::vector<uint64_t>& p) {
    std::sort(p.begin(), p.end());
    p.erase(std::unique(p.begin(), p.end()), p.end());
    return compress_page_axis(p, kReportAxisRows);
  };
  m.axis = axis_of(pages);
  for (int s = 0; s < kSegmentCount; ++s) m.segment_axis[s] = axis_of(seg_pages[s]);
  m.process_names = process_names(rec);
  return m;
}

std::vector<TopEntry> top_functions(const FaultReportModel& m, size_t n) {
  // By function name (all offsets of a function together), module as detail.
  std::map<std::string, TopEntry> by_fn;
  const auto& rec = *m.recording;
  std::vector<uint64_t> count(m.locations.frames.size()), major(m.locations.frames.size());
  for (size_t i = 0; i < rec.faults.size(); ++i) {
    ++count[m.locations.frame_of_fault[i]];
    if (rec.faults[i].kind == FaultKind::kMajor) ++major[m.locations.frame_of_fault[i]];
  }
  for (size_t i = 0; i < m.locations.frames.size(); ++i) {
    const ProfileFrame& f = m.locations.frames[i];
    std::string name = f.resolved ? f.function : f.label();
    if (f.kernel) name += " (kernel)";
    std::string key = name + "\n" + f.module;
    auto& e = by_fn[key];
    e.label = name;
    e.detail = f.module;
    e.count += count[i];
    e.major += major[i];
  }
  std::vector<TopEntry> v;
  for (auto& [k, e] : by_fn) v.push_back(std::move(e));
  std::sort(v.begin(), v.end(), [](const TopEntry& a, const TopEntry& b) {
    return a.count != b.count ? a.count > b.count : a.label < b.label;
  });
  if (v.size() > n) v.resize(n);
  return v;
}

std::vector<TopEntry> top_pages(const FaultReportModel& m, size_t n) {
  struct PageCount {
    uint64_t count = 0, major = 0;
    Segment segment = Segment::kOther;
    uint32_t pid = 0;
    uint32_t frame = 0;
  };
  std::unordered_map<uint64_t, PageCount> pages;  // (pid, page) key folded into one u64 below
  std::unordered_map<uint64_t, std::pair<uint32_t, uint64_t>> keys;
  const auto& rec = *m.recording;
  for (size_t i = 0; i < rec.faults.size(); ++i) {
    const auto& f = rec.faults[i];
    uint64_t page = f.addr >> kPageShift;
    uint64_t key = page * 0x9E3779B97F4A7C15ull ^ f.pid;
    auto& c = pages[key];
    keys.emplace(key, std::make_pair(f.pid, page));
    ++c.count;
    c.major += f.kind == FaultKind::kMajor;
    c.segment = f.segment;
    c.pid = f.pid;
    c.frame = m.locations.frame_of_fault[i];
  }
  std::vector<std::pair<uint64_t, PageCount>> v(pages.begin(), pages.end());
  std::sort(v.begin(), v.end(), [&](const auto& a, const auto& b) {
    if (a.second.count != b.second.count) return a.second.count > b.second.count;
    return keys[a.first].second < keys[b.first].second;
  });
  std::vector<TopEntry> out;
  for (size_t i = 0; i < v.size() && i < n; ++i) {
    const auto& [pid, page] = keys[v[i].first];
    out.push_back({fmt::format("{:#x}", page << kPageShift), v[i].second.count, v[i].second.major,
                   fmt::format("pid {} · {} · last by {}", pid, to_string(v[i].second.segment),
                               m.location_labels[v[i].second.frame])});
  }
  return out;
}

std::string scatter_svg(const FaultReportModel& m, std::optional<Segment> segment) {
  const auto& axis = segment ? m.segment_axis[static_cast<size_t>(*segment)] : m.axis;
  Frame f;
  f.width = 900;
  f.height = 460;
  f.left = 130;
  f.right = 110;
  const std::string heading = segment ? fmt::format("page faults: {} segment", to_string(*segment))
                                      : std::string("page faults: virtual page over time");
  std::string out = svg_open(f.width, f.height, heading);
  title(out, f, heading);
  const uint32_t units = axis_units(axis);
  if (units == 0) {
    out += "<text x=\"130\" y=\"80\">no faults recorded</text>\n";
    out += kSvgClose;
    return out;
  }
  f.x1 = std::max<double>(1, static_cast<double>(m.t_max));
  f.y0 = 0;
  f.y1 = units;
  time_axis(out, f);
  // Density grid of 3x3-pixel cells: colour of the segment with most faults in the cell, opacity
  // by log count; major faults drawn on top as red rings. Size stays bounded for any input.
  const int cell = 3;
  const int gw = (f.width - f.left - f.right) / cell, gh = (f.height - f.top - f.bottom) / cell;
  std::vector<uint32_t> counts(static_cast<size_t>(gw) * gh, 0);
  std::vector<std::array<uint32_t, kSegmentCount>> segs(counts.size());
  std::vector<std::pair<double, double>> majors;
  uint32_t max_count = 0;
  const auto& rec = *m.recording;
  for (const auto& fr : rec.faults) {
    if (segment && fr.segment != *segment) continue;
    double y = axis_position(axis, fr.addr >> kPageShift);
    int gx =
        std::min(gw - 1, static_cast<int>((f.px(static_cast<double>(fr.time_ns)) - f.left) / cell));
    int gy = std::min(gh - 1, static_cast<int>((f.py(y) - f.top) / cell));
    gx = std::max(gx, 0);
    gy = std::max(gy, 0);
    size_t c = static_cast<size_t>(gy) * gw + gx;
    max_count = std::max(max_count, ++counts[c]);
    ++segs[c][std::min<size_t>(static_cast<size_t>(fr.segment), kSegmentCount - 1)];
    if (fr.kind == FaultKind::kMajor && majors.size() < 5000)
      majors.emplace_back(f.px(static_cast<double>(fr.time_ns)), f.py(y));
  }
  const double log_max = std::log1p(static_cast<double>(max_count));
  for (int gy = 0; gy < gh; ++gy) {
    for (int gx = 0; gx < gw; ++gx) {
      size_t c = static_cast<size_t>(gy) * gw + gx;
      if (!counts[c]) continue;
      size_t best = std::max_element(segs[c].begin(), segs[c].end()) - segs[c].begin();
      double alpha = 0.35 + 0.65 * std::log1p(counts[c]) / log_max;
      out += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" "
          "fill-opacity=\"{:.2f}\"/>\n",
          f.left + gx * cell, f.top + gy * cell, cell, cell,
          segment_color(static_cast<Segment>(best)), alpha);
    }
  }
  for (const auto& [x, y] : majors)
    out += fmt::format(
        "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"none\" stroke=\"#000\" "
        "stroke-width=\"1.2\"/>\n",
        x, y);
  // Y axis: each range labelled with its first and last page; breaks as dashed lines with the
  // size of the gap, like the terminal plot's '~' rows.
  for (size_t i = 0; i < axis.size(); ++i) {
    const auto& r = axis[i];
    double yb = f.py(r.first_row), yt = f.py(r.first_row + r.rows);
    out += fmt::format(
        "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" font-size=\"10\">{:#x}</text>\n",
        f.left - 4, yb - 1, r.lo);
    if (r.hi != r.lo && yb - yt > 14)
      out += fmt::format(
          "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" font-size=\"10\">{:#x}</text>\n",
          f.left - 4, yt + 9, r.hi);
    if (i + 1 < axis.size()) {
      double yg = f.py(r.first_row + r.rows + 0.5);
      uint64_t gap = (axis[i + 1].lo - r.hi - 1) << kPageShift;
      out += fmt::format(
          "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#999\" "
          "stroke-dasharray=\"4 3\"/><text x=\"{}\" y=\"{:.1f}\" font-size=\"10\" "
          "fill=\"#666\">{:.3g} MiB gap</text>\n",
          f.left, f.width - f.right, yg, yg, f.width - f.right + 4, yg + 3,
          static_cast<double>(gap) / 1048576.0);
    }
  }
  out += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n",
      f.left, f.top, f.width - f.left - f.right, f.height - f.top - f.bottom);
  out += fmt::format(
      "<text transform=\"translate(12,{}) rotate(-90)\" text-anchor=\"middle\" "
      "fill=\"#444\">virtual page (gaps cut)</text>\n",
      f.height / 2);
  // Legend: segments present, and the major-fault mark.
  int ly = f.top + 40;
  std::array<uint64_t, kSegmentCount> per{};
  for (const auto& fr : rec.faults)
    ++per[std::min<size_t>(static_cast<size_t>(fr.segment), kSegmentCount - 1)];
  for (int s = 0; s < kSegmentCount; ++s) {
    if (!per[s] || (segment && static_cast<int>(*segment) != s)) continue;
    out += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" "
        "y=\"{}\" font-size=\"11\">{}</text>\n",
        f.width - f.right + 50, ly - 9, segment_color(static_cast<Segment>(s)),
        f.width - f.right + 64, ly, to_string(static_cast<Segment>(s)));
    ly += 16;
  }
  out += fmt::format(
      "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"none\" stroke=\"#000\"/><text x=\"{}\" "
      "y=\"{}\" font-size=\"11\">major</text>\n",
      f.width - f.right + 55, ly - 4, f.width - f.right + 64, ly);
  out += kSvgClose;
  return out;
}

namespace {

std::vector<Series> cumulative(const FaultReportModel& m,
                               const std::function<int(const FaultRecord&)>& series_of,
                               const std::vector<std::pair<std::string, std::string>>& names) {
  std::vector<Series> out(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    out[i].name = names[i].first;
    out[i].color = names[i].second;
  }
  const double t_max = std::max<double>(1, static_cast<double>(m.t_max));
  std::vector<std::vector<uint64_t>> bins(names.size(), std::vector<uint64_t>(kSteps + 1, 0));
  for (const auto& f : m.recording->faults) {
    int s = series_of(f);
    if (s < 0) continue;
    auto b = static_cast<size_t>(static_cast<double>(f.time_ns) / t_max * kSteps);
    ++bins[s][std::min<size_t>(b, kSteps)];
  }
  for (size_t s = 0; s < names.size(); ++s) {
    uint64_t total = 0;
    out[s].points.emplace_back(0, 0);
    for (int b = 0; b <= kSteps; ++b) {
      total += bins[s][b];
      out[s].points.emplace_back(std::min(t_max, (b + 1) * t_max / kSteps),
                                 static_cast<double>(total));
    }
  }
  return out;
}

}  // namespace

std::string cumulative_by_process_svg(const FaultReportModel& m) {
  std::map<uint32_t, int> index;
  std::vector<std::pair<std::string, std::string>> names;
  std::map<uint32_t, uint64_t> per_pid = m.summary.by_pid;
  // The 7 processes with most faults get their own line, the rest one "other processes" line.
  std::vector<std::pair<uint64_t, uint32_t>> ranked;
  for (auto [pid, n] : per_pid) ranked.emplace_back(n, pid);
  std::sort(ranked.rbegin(), ranked.rend());
  for (size_t i = 0; i < ranked.size() && i < 7; ++i) {
    uint32_t pid = ranked[i].second;
    auto it = m.process_names.find(pid);
    index[pid] = static_cast<int>(names.size());
    names.emplace_back(fmt::format("{} {}", pid, it == m.process_names.end() ? "" : it->second),
                       kPalette[i]);
  }
  int other = -1;
  if (ranked.size() > 7) {
    other = static_cast<int>(names.size());
    names.emplace_back("other processes", kPalette[7]);
  }
  auto series = cumulative(
      m,
      [&](const FaultRecord& f) {
        auto it = index.find(f.pid);
        return it == index.end() ? other : it->second;
      },
      names);
  return lines_svg("cumulative faults per process", series, static_cast<double>(m.t_max), "faults");
}

std::string cumulative_by_kind_svg(const FaultReportModel& m) {
  auto series =
      cumulative(m, [](const FaultRecord& f) { return f.kind == FaultKind::kMajor ? 1 : 0; },
                 {{"minor", "#2c7bb6"}, {"major", "#d7191c"}});
  return lines_svg("cumulative faults per kind", series, static_cast<double>(m.t_max), "faults");
}

std::string latency_histogram_svg(const FaultReportModel& m) {
  // Power-of-two buckets from 64 ns; minor and major stacked.
  constexpr int kBuckets = 26;  // 64ns .. 2^31 ns (2 s) and above
  std::array<std::array<uint64_t, 2>, kBuckets> h{};
  uint64_t known = 0;
  for (const auto& f : m.recording->faults) {
    if (!f.latency_ns) continue;
    ++known;
    int b = 0;
    uint64_t v = *f.latency_ns >> 6;
    while (v > 0 && b + 1 < kBuckets) {
      v >>= 1;
      ++b;
    }
    ++h[b][f.kind == FaultKind::kMajor ? 1 : 0];
  }
  int lo = kBuckets, hi = -1;
  for (int b = 0; b < kBuckets; ++b)
    if (h[b][0] + h[b][1]) lo = std::min(lo, b), hi = std::max(hi, b);
  Frame f;
  const std::string heading = "fault latency (entry to resolution)";
  std::string out = svg_open(f.width, f.height, heading);
  title(out, f, heading);
  if (hi < 0) {
    out += "<text x=\"70\" y=\"80\">no fault latencies recorded</text>\n";
    out += kSvgClose;
    return out;
  }
  uint64_t ymax = 1;
  for (int b = lo; b <= hi; ++b) ymax = std::max(ymax, h[b][0] + h[b][1]);
  f.x0 = lo;
  f.x1 = hi + 1;
  f.y1 = static_cast<double>(ymax) * 1.05;
  count_axis(out, f, "faults");
  for (int b = lo; b <= hi; ++b) {
    double x = f.px(b) + 1, w = f.px(b + 1) - f.px(b) - 2;
    double y_minor = f.py(static_cast<double>(h[b][0]));
    double y_all = f.py(static_cast<double>(h[b][0] + h[b][1]));
    uint64_t low = uint64_t{64} << b;
    std::string range =
        b == 0 ? "< 128 ns"
               : fmt::format("{} to {}", format_time_label(low), format_time_label(low * 2));
    out += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#2c7bb6\">"
        "<title>{}: {} minor</title></rect>\n",
        x, y_minor, w, f.py(0) - y_minor, xml_escape(range), h[b][0]);
    if (h[b][1])
      out += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#d7191c\">"
          "<title>{}: {} major</title></rect>\n",
          x, y_all, w, y_minor - y_all, xml_escape(range), h[b][1]);
    if ((b - lo) % 2 == 0)
      out += fmt::format(
          "<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\">{}</text>\n",
          f.px(b), f.height - f.bottom + 14,
          xml_escape(format_time_label(static_cast<double>(b == 0 ? 0 : low))));
  }
  out += fmt::format(
      "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">latency (log2 "
      "buckets); {} faults with a known latency</text>\n",
      (f.left + f.width - f.right) / 2, f.height - 6, known);
  out += fmt::format(
      "<rect x=\"{}\" y=\"44\" width=\"12\" height=\"12\" fill=\"#2c7bb6\"/><text x=\"{}\" "
      "y=\"55\">minor</text>"
      "<rect x=\"{}\" y=\"62\" width=\"12\" height=\"12\" fill=\"#d7191c\"/><text x=\"{}\" "
      "y=\"73\">major</text>\n",
      f.width - f.right + 10, f.width - f.right + 27, f.width - f.right + 10,
      f.width - f.right + 27);
  out += kSvgClose;
  return out;
}

std::string top_functions_svg(const FaultReportModel& m, size_t n) {
  auto top = top_functions(m, n);
  const int row = 22;
  Frame f;
  f.left = 330;
  f.right = 90;
  f.height = f.top + f.bottom + row * static_cast<int>(std::max<size_t>(1, top.size()));
  const std::string heading = "top faulting functions";
  std::string out = svg_open(f.width, f.height, heading);
  title(out, f, heading);
  uint64_t max = 1;
  for (const auto& e : top) max = std::max(max, e.count);
  f.x1 = static_cast<double>(max);
  for (size_t i = 0; i < top.size(); ++i) {
    const auto& e = top[i];
    int y = f.top + static_cast<int>(i) * row;
    std::string label = e.label.size() > 48 ? e.label.substr(0, 47) + "…" : e.label;
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\">{} <tspan "
        "fill=\"#777\">{}</tspan></text>\n",
        f.left - 6, y + 15, xml_escape(label), xml_escape(e.detail));
    double w = f.px(static_cast<double>(e.count)) - f.left;
    double wm = f.px(static_cast<double>(e.major)) - f.left;
    out +=
        fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"#2c7bb6\"/>\n",
                    f.left, y + 3, std::max(1.0, w), row - 6);
    if (e.major)
      out +=
          fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"#d7191c\"/>\n",
                      f.left, y + 3, std::max(1.0, wm), row - 6);
    out += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\">{}</text>\n",
                       f.left + std::max(1.0, w) + 4, y + 15, e.count);
  }
  out += kSvgClose;
  return out;
}

}  // namespace kscope
