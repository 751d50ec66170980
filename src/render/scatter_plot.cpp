#include "render/scatter_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string_view>
#include <utility>

namespace kscope {
namespace {

// Page numbers need up to 52 bits and times 64; products of either with a row or column count
// are done in 128 bits so the mapping is exact and cannot overflow.
using u128 = unsigned __int128;

constexpr int kPageShift = 12;
constexpr std::array<char, 5> kDensityMarks = {'.', ':', 'o', 'O', '@'};
constexpr char kMajorMark = 'M';
constexpr char kBreakMark = '~';
// A gap between faulting pages is cut out of the Y axis when drawing it to scale would take more
// than this many rows of nothing. A break row itself costs one row, so a gap worth only a row or
// two is cheaper to draw as it is, and leaves the axis linear there.
constexpr u128 kGapCutRows = 2;
// At most one break per this many rows, so data keeps at least two thirds of the plot.
constexpr uint32_t kRowsPerBreak = 3;
// Inside a range, a page label every this many rows (the range's first and last rows always
// have one).
constexpr uint32_t kLabelEvery = 4;
// Text lines (title, legend, tick labels) may be wider than the plot frame up to this width, so a
// narrow plot with short page labels still has room for the legend. cols + 24 is the promised
// limit and cols >= 10, so 34 always fits.
constexpr size_t kMinTextWidth = 34;
// Aim for a time tick about every this many columns.
constexpr uint32_t kColsPerTick = 12;

constexpr std::string_view kYAxisLabel = "virtual page (addr>>12, hex)";
constexpr std::string_view kXAxisLabel = "time since start";

// Maps v in [lo, hi] onto cells 0..n-1 (n >= 1, lo <= v <= hi).
// When the interval holds at least n values, the cells are equal buckets of consecutive values
// (so a cell's count is an honest density). When it holds fewer, each value gets its own cell,
// spread evenly with lo in the first and hi in the last cell; a single value sits in the middle.
uint32_t to_cell(uint64_t v, uint64_t lo, uint64_t hi, uint32_t n) {
  // Fast path for the usual case (every page interval; time windows up to 104 days): with
  // n <= 1000 < 2^10 the products stay below 2^63, and 64-bit division is several times cheaper
  // than 128-bit on the millions of points a plot may get. Same results as the general path.
  static_assert(kScatterMaxRows < 1024 && kScatterMaxCols < 1024);
  if (hi - lo < (uint64_t{1} << 53)) {
    const uint64_t span = hi - lo + 1;
    const uint64_t offset = v - lo;
    if (span >= n) return static_cast<uint32_t>(offset * n / span);
    if (span == 1) return (n - 1) / 2;
    return static_cast<uint32_t>(offset * (n - 1) / (span - 1));
  }
  const u128 span = static_cast<u128>(hi - lo) + 1;
  const u128 offset = v - lo;
  if (span >= n) return static_cast<uint32_t>(offset * n / span);
  if (span == 1) return (n - 1) / 2;
  return static_cast<uint32_t>(offset * (n - 1) / (span - 1));
}

// The smallest value that to_cell() maps to cell c, or nothing when no value does (possible
// when the interval holds fewer values than cells).
std::optional<uint64_t> first_in_cell(uint32_t c, uint64_t lo, uint64_t hi, uint32_t n) {
  const u128 span = static_cast<u128>(hi - lo) + 1;
  u128 offset = 0;  // ceil of the inverse of to_cell()'s formula
  if (span >= n) {
    offset = (static_cast<u128>(c) * span + n - 1) / n;
  } else if (span > 1) {
    offset = (static_cast<u128>(c) * (span - 1) + n - 2) / (n - 1);
  }
  if (offset >= span) return std::nullopt;
  const uint64_t v = lo + static_cast<uint64_t>(offset);
  if (to_cell(v, lo, hi, n) != c) return std::nullopt;
  return v;
}

// Splits `total` among the items in proportion to their weights by the largest remainder
// method; equal remainders favour the lower index so the result is deterministic.
std::vector<uint32_t> apportion(uint32_t total, const std::vector<uint64_t>& weights) {
  const size_t n = weights.size();
  std::vector<uint32_t> shares(n, 0);
  if (n == 0) return shares;
  u128 weight_sum = 0;
  for (uint64_t w : weights) weight_sum += w;
  if (weight_sum == 0) {  // not reached with page spans (always >= 1); split evenly
    for (size_t i = 0; i < n; ++i) shares[i] = total / n + (i < total % n ? 1 : 0);
    return shares;
  }
  std::vector<std::pair<u128, size_t>> remainders;  // (remainder, index)
  remainders.reserve(n);
  uint32_t given = 0;
  for (size_t i = 0; i < n; ++i) {
    const u128 scaled = static_cast<u128>(total) * weights[i];
    shares[i] = static_cast<uint32_t>(scaled / weight_sum);
    given += shares[i];
    remainders.emplace_back(scaled % weight_sum, i);
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (uint32_t k = 0; given + k < total; ++k) ++shares[remainders[k].second];
  return shares;
}

// A run of faulting pages that gets its own band of rows on the Y axis.
struct PageRange {
  uint64_t lo = 0;         // lowest faulting page
  uint64_t hi = 0;         // highest faulting page
  uint32_t rows = 0;       // rows of the band
  uint32_t first_row = 0;  // the band's lowest row, counted from the bottom of the plot area

  uint64_t span() const { return hi - lo + 1; }
};

// Gives each range at least one row and the rest in proportion to its page span, but never more
// rows than the range has pages while another range could still use them (a 3-page stack does
// not need 5 rows). Only when every range is full do the remaining rows go to all of them,
// and to_cell() then spreads the pages over the extra rows.
void allot_rows(std::vector<PageRange>& ranges, uint32_t data_rows) {
  std::vector<uint32_t> rows(ranges.size(), 1);
  uint32_t left = data_rows - static_cast<uint32_t>(ranges.size());
  // Each round either places all rows or fills at least one more range, so this ends.
  while (left > 0) {
    std::vector<size_t> open;
    std::vector<uint64_t> weights;
    for (size_t i = 0; i < ranges.size(); ++i) {
      if (rows[i] < ranges[i].span()) {
        open.push_back(i);
        weights.push_back(ranges[i].span());
      }
    }
    if (open.empty()) break;
    const std::vector<uint32_t> shares = apportion(left, weights);
    for (size_t j = 0; j < open.size(); ++j) {
      const size_t i = open[j];
      const uint64_t room = ranges[i].span() - rows[i];
      const auto add = static_cast<uint32_t>(std::min<uint64_t>(shares[j], room));
      rows[i] += add;
      left -= add;
    }
  }
  if (left > 0) {
    std::vector<uint64_t> weights;
    for (const PageRange& r : ranges) weights.push_back(r.span());
    const std::vector<uint32_t> shares = apportion(left, weights);
    for (size_t i = 0; i < ranges.size(); ++i) rows[i] += shares[i];
  }
  // Bands from the bottom up, one break row between neighbours.
  uint32_t next_row = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    ranges[i].rows = rows[i];
    ranges[i].first_row = next_row;
    next_row += rows[i] + 1;
  }
}

// Clusters the sorted distinct pages into ranges separated by the gaps worth cutting out.
//
// Greedy from the largest gap down: with k gaps already cut, the plot has (rows - k) rows for
// `content` pages (the span minus the cut gaps), so the next gap would take
// gap * (rows - k) / content rows if left in. It is cut when that is more than kGapCutRows and
// the content does not fit in the rows page by page anyway. Gaps are tried largest first and
// `content` only shrinks, so the first gap that is not worth cutting ends the search. At most rows
// / kRowsPerBreak gaps are cut; when a process has more separate clusters than that, the largest
// gaps win and smaller ones stay drawn to scale.
std::vector<PageRange> compressed_ranges(const std::vector<uint64_t>& pages, uint32_t rows) {
  struct Gap {
    uint64_t empty_pages;  // pages without faults between pages[index - 1] and pages[index]
    size_t index;
  };
  std::vector<Gap> gaps;
  for (size_t i = 1; i < pages.size(); ++i) {
    if (pages[i] - pages[i - 1] > 1) gaps.push_back({pages[i] - pages[i - 1] - 1, i});
  }
  std::sort(gaps.begin(), gaps.end(), [](const Gap& a, const Gap& b) {
    return a.empty_pages != b.empty_pages ? a.empty_pages > b.empty_pages : a.index < b.index;
  });

  const uint32_t max_breaks = (rows - 1) / kRowsPerBreak;
  uint64_t content = pages.back() - pages.front() + 1;
  std::vector<size_t> cuts;  // indices into pages where a new range starts
  for (const Gap& gap : gaps) {
    if (cuts.size() >= max_breaks) break;
    const uint32_t data_rows = rows - static_cast<uint32_t>(cuts.size());
    // Once every page can have a row of its own, cutting gains nothing: the plot is exact.
    if (content <= data_rows) break;
    if (static_cast<u128>(gap.empty_pages) * data_rows <= kGapCutRows * content) break;
    content -= gap.empty_pages;
    cuts.push_back(gap.index);
  }
  std::sort(cuts.begin(), cuts.end());

  std::vector<PageRange> ranges;
  uint64_t start = pages.front();
  for (size_t cut : cuts) {
    ranges.push_back({start, pages[cut - 1]});
    start = pages[cut];
  }
  ranges.push_back({start, pages.back()});
  allot_rows(ranges, rows - static_cast<uint32_t>(cuts.size()));
  return ranges;
}

// "2.1 TiB", "512 MiB", "40 KiB": binary units, one decimal below 10.
std::string format_bytes(u128 bytes) {
  static constexpr std::array<std::string_view, 7> kUnits = {"B",   "KiB", "MiB", "GiB",
                                                             "TiB", "PiB", "EiB"};
  if (bytes < 1024) return fmt::format("{} B", static_cast<uint64_t>(bytes));
  auto value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < kUnits.size()) {
    value /= 1024;
    ++unit;
  }
  return value < 10 ? fmt::format("{:.1f} {}", value, kUnits[unit])
                    : fmt::format("{:.0f} {}", value, kUnits[unit]);
}

// Lowest counts of the five density marks. Up to a busiest cell of 5 faults each count has its
// own mark; above that the thresholds grow geometrically up to the busiest cell
// (max^(k/5)), so '@' always means "among the busiest" and '.' a single fault, whatever the
// number of points.
std::array<uint64_t, kDensityMarks.size()> density_thresholds(uint64_t max_count) {
  std::array<uint64_t, kDensityMarks.size()> thresholds{};
  thresholds[0] = 1;
  for (size_t k = 1; k < thresholds.size(); ++k) {
    const double geometric =
        std::pow(static_cast<double>(max_count), static_cast<double>(k) / kDensityMarks.size());
    thresholds[k] = std::max(thresholds[k - 1] + 1, static_cast<uint64_t>(std::llround(geometric)));
  }
  return thresholds;
}

char density_mark(uint64_t count, const std::array<uint64_t, kDensityMarks.size()>& thresholds) {
  size_t level = 0;
  while (level + 1 < thresholds.size() && count >= thresholds[level + 1]) ++level;
  return kDensityMarks[level];
}

// Time units for tick labels, largest first.
struct TimeUnit {
  uint64_t ns;
  std::string_view suffix;
};
constexpr std::array<TimeUnit, 4> kTimeUnits = {
    {{1'000'000'000, "s"}, {1'000'000, "ms"}, {1'000, "us"}, {1, "ns"}}};

// `t` in `unit` with `decimals` digits, trailing zeros dropped: "1.5s", "25ms", "0s".
std::string format_time(uint64_t t, const TimeUnit& unit, int decimals) {
  std::string text = fmt::format("{}", t / unit.ns);
  if (decimals > 0) {
    uint64_t pow10 = 1;
    for (int i = 0; i < decimals; ++i) pow10 *= 10;
    const auto fraction = static_cast<uint64_t>(static_cast<u128>(t % unit.ns) * pow10 / unit.ns);
    std::string digits = fmt::format("{:0{}}", fraction, decimals);
    while (!digits.empty() && digits.back() == '0') digits.pop_back();
    if (!digits.empty()) text += "." + digits;
  }
  return text + std::string(unit.suffix);
}

struct Tick {
  uint32_t col;
  std::string label;
};

// Ticks at round times (1, 2 or 5 times a power of ten nanoseconds) inside [t0, t1], about one
// every kColsPerTick columns. The unit is chosen from the largest time shown.
std::vector<Tick> time_ticks(uint64_t t0, uint64_t t1, uint32_t cols) {
  const TimeUnit& unit = *std::find_if(kTimeUnits.begin(), kTimeUnits.end() - 1,
                                       [&](const TimeUnit& u) { return t1 >= u.ns; });
  // At least 3 intervals: the chosen step (< 1.6 * wanted_step) is then below t1 - t0, so a tick
  // always fits.
  const uint32_t intervals = std::max<uint32_t>(3, cols / kColsPerTick);
  const u128 wanted_step = std::max<u128>(1, (static_cast<u128>(t1) - t0) / intervals);
  // The round step nearest to wanted_step on a log scale: the first one >= it, or the one before
  // when that is closer (wanted / below < above / wanted).
  u128 below = 1;
  u128 above = 1;
  for (u128 power = 1; above < wanted_step; power *= 10) {
    for (uint64_t m : {1, 2, 5}) {
      below = above;
      above = power * m;
      if (above >= wanted_step) break;
    }
  }
  const u128 step = wanted_step * wanted_step < below * above ? below : above;
  int decimals = 0;  // enough digits that consecutive ticks differ
  for (u128 scaled = step; decimals < 9 && scaled % unit.ns != 0; scaled *= 10) ++decimals;

  std::vector<Tick> ticks;
  for (u128 t = (t0 + step - 1) / step * step; t <= t1; t += step) {
    const auto time = static_cast<uint64_t>(t);
    ticks.push_back({to_cell(time, t0, t1, cols), format_time(time, unit, decimals)});
  }
  if (ticks.empty()) ticks.push_back({0, format_time(t0, unit, decimals)});  // not expected
  return ticks;
}

// Breaks `items` into lines of at most `width` characters, items two spaces apart,
// continuation lines indented by two. Items are at most kMinTextWidth - 2 characters.
void append_wrapped(std::string& out, const std::vector<std::string>& items, size_t width) {
  std::string line;
  for (const std::string& item : items) {
    if (!line.empty() && line.size() + 2 + item.size() > width) {
      out += line;
      out += '\n';
      line = "  ";
    } else if (!line.empty()) {
      line += "  ";
    }
    line += item;
  }
  if (!line.empty()) {
    out += line;
    out += '\n';
  }
}

void rtrim(std::string& s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
}

Status validate(const ScatterOptions& options) {
  if (options.rows < kScatterMinRows || options.cols < kScatterMinCols ||
      options.rows > kScatterMaxRows || options.cols > kScatterMaxCols) {
    return usage_error(fmt::format(
        "scatter plot size {} rows x {} columns is out of range: rows must be {}..{} and "
        "columns {}..{}",
        options.rows, options.cols, kScatterMinRows, kScatterMaxRows, kScatterMinCols,
        kScatterMaxCols));
  }
  if (options.time_range && options.time_range->end_ns < options.time_range->begin_ns) {
    return usage_error(fmt::format("scatter plot time range ends ({} ns) before it begins ({} ns)",
                                   options.time_range->end_ns, options.time_range->begin_ns));
  }
  return {};
}

// Segment values outside the enum count as kOther, like to_string(Segment) does.
size_t segment_index(Segment s) {
  return std::min<size_t>(static_cast<size_t>(s), kSegmentCount - 1);
}

// Which points a plot shows.
struct Selection {
  std::optional<Segment> segment;  // empty: all segments
  TimeWindow window;               // inclusive

  bool contains(const PlotPoint& p) const {
    return p.time_ns >= window.begin_ns && p.time_ns <= window.end_ns &&
           (!segment || segment_index(p.segment) == segment_index(*segment));
  }
};

// The longest line a plot may have (the promise in the header).
size_t max_line_width(int cols) { return static_cast<size_t>(cols) + 24; }

// The title line, on one line and cut to `width`.
std::string title_line(std::string_view title, size_t width) {
  std::string line(title);
  std::replace_if(
      line.begin(), line.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  if (line.size() > width) line = line.substr(0, width - 3) + "...";
  return line + '\n';
}

// Renders the selected points; options are already validated.
std::string render_selection(std::span<const PlotPoint> points, const ScatterOptions& options,
                             const Selection& selection, std::string_view title,
                             std::string_view empty_message) {
  auto rows = static_cast<uint32_t>(options.rows);
  const auto cols = static_cast<uint32_t>(options.cols);

  // The Y axis: linear mode needs only the lowest and highest page; gap compression needs the
  // sorted distinct pages, which is the only O(n log n) step.
  std::vector<PageRange> ranges;
  if (options.linear) {
    std::optional<PageRange> all;
    for (const PlotPoint& p : points) {
      if (!selection.contains(p)) continue;
      const uint64_t page = p.addr >> kPageShift;
      if (!all) all = PageRange{page, page, rows, 0};
      all->lo = std::min(all->lo, page);
      all->hi = std::max(all->hi, page);
    }
    if (all) ranges.push_back(*all);
  } else {
    std::vector<uint64_t> pages;
    pages.reserve(points.size());
    for (const PlotPoint& p : points) {
      if (selection.contains(p)) pages.push_back(p.addr >> kPageShift);
    }
    if (!pages.empty()) {
      std::sort(pages.begin(), pages.end());
      pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
      ranges = compressed_ranges(pages, rows);
    }
  }
  if (ranges.empty()) {
    std::string out;
    if (!title.empty()) out += title_line(title, max_line_width(options.cols));
    return out + std::string(empty_message) + '\n';
  }
  if (options.fit_rows) {
    // When every faulting page already has a row of its own with rows to spare, the spare rows
    // would only repeat pages: use one row per page (plus the break rows) instead.
    uint64_t pages_shown = 0;
    for (const PageRange& r : ranges) pages_shown += r.span();
    const uint64_t needed = pages_shown + ranges.size() - 1;
    if (needed < rows) {
      rows = static_cast<uint32_t>(needed);
      if (options.linear)
        ranges[0].rows = rows;
      else
        allot_rows(ranges, static_cast<uint32_t>(pages_shown));
    }
  }

  // Count faults per cell. Rows are counted from the bottom (row 0 holds the lowest pages).
  const uint64_t t0 = selection.window.begin_ns;
  const uint64_t t1 = selection.window.end_ns;
  std::vector<uint64_t> counts(static_cast<size_t>(rows) * cols, 0);
  std::vector<uint8_t> has_major(counts.size(), 0);
  for (const PlotPoint& p : points) {
    if (!selection.contains(p)) continue;
    const uint64_t page = p.addr >> kPageShift;
    // The range whose lo is the last one <= page; every selected page is inside one.
    auto it = std::upper_bound(ranges.begin(), ranges.end(), page,
                               [](uint64_t v, const PageRange& r) { return v < r.lo; });
    const PageRange& range = *(it - 1);
    const uint32_t row = range.first_row + to_cell(page, range.lo, range.hi, range.rows);
    const uint32_t col = to_cell(p.time_ns, t0, t1, cols);
    const size_t cell = static_cast<size_t>(row) * cols + col;
    ++counts[cell];
    if (p.major) has_major[cell] = 1;
  }
  const uint64_t max_count = *std::max_element(counts.begin(), counts.end());
  const auto thresholds = density_thresholds(max_count);

  // What the margin left of each row says, and the row's border character.
  std::vector<std::string> margin(rows);
  std::vector<char> border(rows, '|');
  for (size_t i = 0; i < ranges.size(); ++i) {
    const PageRange& r = ranges[i];
    if (r.lo == r.hi) {
      margin[r.first_row + to_cell(r.lo, r.lo, r.hi, r.rows)] = fmt::format("{:#x}", r.lo);
    } else {
      // First and last row: the range's own first and last faulting page (a one-row range
      // shows its first). Rows between: the first page the row covers, every kLabelEvery rows,
      // none right under the top label.
      for (uint32_t local = 0; local < r.rows; ++local) {
        std::optional<uint64_t> label;
        if (local == 0) {
          label = r.lo;
        } else if (local + 1 == r.rows) {
          label = r.hi;
        } else if (local % kLabelEvery == 0 && local + 2 < r.rows) {
          label = first_in_cell(local, r.lo, r.hi, r.rows);
        }
        if (label) margin[r.first_row + local] = fmt::format("{:#x}", *label);
      }
    }
    if (i + 1 < ranges.size()) {
      const uint32_t break_row = r.first_row + r.rows;
      const uint64_t skipped_pages = ranges[i + 1].lo - r.hi - 1;
      margin[break_row] = format_bytes(static_cast<u128>(skipped_pages) << kPageShift) + " gap";
      border[break_row] = kBreakMark;
    }
  }
  size_t margin_width = 0;
  for (const std::string& m : margin) margin_width = std::max(margin_width, m.size());
  // Every plot-area line is: margin, space, border, cols cells, border.
  const size_t frame_width = margin_width + 3 + cols;
  const size_t text_width = std::max(frame_width, kMinTextWidth);

  std::string out;
  out.reserve((text_width + 1) * (rows + 8));
  if (!title.empty()) out += title_line(title, text_width);
  out += kYAxisLabel;
  out += '\n';

  for (uint32_t row = rows; row-- > 0;) {  // top line holds the highest pages
    out += fmt::format("{:>{}} ", margin[row], margin_width);
    out += border[row];
    if (border[row] == kBreakMark) {
      out.append(cols, kBreakMark);
    } else {
      for (uint32_t col = 0; col < cols; ++col) {
        const size_t cell = static_cast<size_t>(row) * cols + col;
        if (has_major[cell]) {
          out += kMajorMark;
        } else {
          out += counts[cell] == 0 ? ' ' : density_mark(counts[cell], thresholds);
        }
      }
    }
    out += border[row];
    out += '\n';
  }

  // X axis: '+' under each labelled tick, labels centred on their column where they fit.
  std::string axis(cols, '-');
  std::string labels(text_width, ' ');
  size_t free_from = 0;  // first position a label may start at (keeps one space between labels)
  for (const Tick& tick : time_ticks(t0, t1, cols)) {
    const size_t center = margin_width + 2 + tick.col;
    const size_t len = tick.label.size();
    size_t start = center >= len / 2 ? center - len / 2 : 0;
    start = std::min(start, text_width - len);
    if (start < free_from) continue;
    labels.replace(start, len, tick.label);
    free_from = start + len + 1;
    axis[tick.col] = '+';
  }
  rtrim(labels);
  out += fmt::format("{:>{}} +{}+\n", "", margin_width, axis);
  out += labels;
  out += '\n';
  const size_t x_label_start =
      margin_width + 2 + (cols > kXAxisLabel.size() ? (cols - kXAxisLabel.size()) / 2 : 0);
  out += std::string(std::min(x_label_start, text_width - kXAxisLabel.size()), ' ');
  out += kXAxisLabel;
  out += '\n';

  // Legend: each mark with the counts it stands for (only marks that can occur in this plot).
  std::vector<std::string> legend = {"faults per cell:"};
  for (size_t k = 0; k < thresholds.size() && thresholds[k] <= max_count; ++k) {
    if (k + 1 == thresholds.size()) {
      legend.push_back(fmt::format("{}={}+", kDensityMarks[k], thresholds[k]));
    } else if (thresholds[k + 1] - 1 == thresholds[k]) {
      legend.push_back(fmt::format("{}={}", kDensityMarks[k], thresholds[k]));
    } else {
      legend.push_back(
          fmt::format("{}={}-{}", kDensityMarks[k], thresholds[k], thresholds[k + 1] - 1));
    }
  }
  legend.push_back(fmt::format("{}=any major fault", kMajorMark));
  if (ranges.size() > 1) {
    legend.push_back(fmt::format("{0}{0}=gap of pages with no faults", kBreakMark));
  }
  append_wrapped(out, legend, text_width);
  return out;
}

// The default X axis: from the start of tracing (time 0) to the last fault; nothing without
// points. Starting at 0 rather than at the first fault shows how long the process ran before
// faulting, and puts a round "0" under the first column.
std::optional<TimeWindow> default_window(std::span<const PlotPoint> points) {
  if (points.empty()) return std::nullopt;
  uint64_t last = 0;
  for (const PlotPoint& p : points) last = std::max(last, p.time_ns);
  return TimeWindow{0, last};
}

constexpr std::string_view kNoFaults = "(no faults to plot)";
constexpr std::string_view kNoFaultsInWindow = "(no faults in the selected time range)";

}  // namespace

Result<std::string> render_scatter_plot(std::span<const PlotPoint> points,
                                        const ScatterOptions& options) {
  KSCOPE_TRY(validate(options));
  std::optional<TimeWindow> window = options.time_range;
  if (!window) window = default_window(points);
  if (!window) {  // no points at all
    std::string out;
    if (!options.title.empty()) out += title_line(options.title, max_line_width(options.cols));
    return out + std::string(kNoFaults) + '\n';
  }
  return render_selection(points, options, Selection{std::nullopt, *window}, options.title,
                          points.empty() ? kNoFaults : kNoFaultsInWindow);
}

Result<std::vector<SegmentPlot>> render_scatter_by_segment(std::span<const PlotPoint> points,
                                                           const ScatterOptions& options) {
  KSCOPE_TRY(validate(options));
  std::vector<SegmentPlot> plots;
  // One X axis for all segments, so the plots line up in time.
  std::optional<TimeWindow> window = options.time_range;
  if (!window) window = default_window(points);
  if (!window) return plots;

  std::array<uint64_t, kSegmentCount> per_segment{};
  const Selection all{std::nullopt, *window};
  for (const PlotPoint& p : points) {
    if (all.contains(p)) ++per_segment[segment_index(p.segment)];
  }
  for (size_t i = 0; i < per_segment.size(); ++i) {
    if (per_segment[i] == 0) continue;
    const auto segment = static_cast<Segment>(i);
    const std::string title = options.title.empty()
                                  ? std::string(to_string(segment))
                                  : fmt::format("{}: {}", options.title, to_string(segment));
    ScatterOptions fitted = options;
    fitted.fit_rows = true;  // a segment with a few pages gets a few rows, not options.rows
    plots.push_back(
        {segment, render_selection(points, fitted, Selection{segment, *window}, title, kNoFaults)});
  }
  return plots;
}

std::vector<PageAxisRange> compress_page_axis(const std::vector<uint64_t>& pages, uint32_t rows) {
  std::vector<PageAxisRange> out;
  if (pages.empty() || rows == 0) return out;
  for (const PageRange& r : compressed_ranges(pages, rows)) {
    out.push_back({r.lo, r.hi, r.rows, r.first_row});
  }
  return out;
}

Result<std::string> render_fault_plots(const std::vector<PlotPoint>& points, int rows, int cols,
                                       bool by_segment, bool linear) {
  ScatterOptions opts;
  opts.rows = rows;
  opts.cols = cols;
  opts.linear = linear;
  if (!by_segment) {
    opts.title = "page faults: virtual page over time";
    return render_scatter_plot(points, opts);
  }
  KSCOPE_ASSIGN_OR_RETURN(auto plots, render_scatter_by_segment(points, opts));
  if (plots.empty()) return std::string("(no faults to plot)\n");
  std::string out;
  for (const auto& p : plots) {
    if (!out.empty()) out += "\n";
    out += p.text;
  }
  return out;
}

Status validate_plot_size(int rows, int cols) {
  if (rows < kScatterMinRows || rows > kScatterMaxRows)
    return usage_error(
        fmt::format("--rows must be between {} and {}", kScatterMinRows, kScatterMaxRows));
  if (cols < kScatterMinCols || cols > kScatterMaxCols)
    return usage_error(
        fmt::format("--cols must be between {} and {}", kScatterMinCols, kScatterMaxCols));
  return {};
}

}  // namespace kscope
