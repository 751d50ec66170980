// Tests of the fault scatter plot (src/render/scatter_plot.h). The rendered text is parsed back
// into its plot area (margin label, border, cells per line) and checked against cells computed
// here from the documented mapping, not against the renderer's own helpers.
#include "render/scatter_plot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace kscope {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kPage = 4096;

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The plot area of a rendered plot, top line first.
struct ParsedPlot {
  std::vector<std::string> lines;    // the whole output
  size_t axis_line = 0;              // index in `lines` of the X axis ("+---+---+")
  std::vector<std::string> margins;  // label left of each area line, spaces trimmed
  std::vector<char> borders;         // '|' for a data row, '~' for a break row
  std::vector<std::string> cells;    // the cols characters inside the borders
  int rows = 0;
  int cols = 0;

  // Cell at `row` counted from the bottom (row 0 = lowest pages) and column `col`.
  char at(int row, int col) const { return cells[rows - 1 - row][col]; }
  const std::string& row_cells(int row) const { return cells[rows - 1 - row]; }
  const std::string& row_margin(int row) const { return margins[rows - 1 - row]; }
  char row_border(int row) const { return borders[rows - 1 - row]; }
  int count_breaks() const {
    return static_cast<int>(std::count(borders.begin(), borders.end(), '~'));
  }
  int count_marked_cells() const {  // in data rows; break rows are all '~'
    int n = 0;
    for (size_t i = 0; i < cells.size(); ++i) {
      if (borders[i] == '|')
        n += static_cast<int>(cols - std::count(cells[i].begin(), cells[i].end(), ' '));
    }
    return n;
  }
  const std::string& tick_labels() const { return lines.at(axis_line + 1); }
  std::string legend() const {  // the legend's lines joined
    std::string text;
    for (size_t i = axis_line + 3; i < lines.size(); ++i) text += lines[i] + "\n";
    return text;
  }
};

// Finds the axis line and takes the `rows` lines above it as the plot area; reports a failure
// and returns nothing when the layout is not as documented.
// Lines of the plot area: between the Y-axis label line and the X axis line.
int area_rows(const std::string& text) {
  std::vector<std::string> lines = split_lines(text);
  size_t label = 0;
  while (label < lines.size() && lines[label] != "virtual page (addr>>12, hex)") ++label;
  size_t axis = label + 1;
  while (axis < lines.size()) {
    const std::string& line = lines[axis];
    const size_t first = line.find_first_not_of(' ');
    if (first != std::string::npos && line[first] == '+' &&
        line.find_first_not_of("+-", first) == std::string::npos)
      break;
    ++axis;
  }
  if (label >= lines.size() || axis >= lines.size()) return -1;
  return static_cast<int>(axis - label - 1);
}

std::optional<ParsedPlot> parse_plot(const std::string& text, int rows, int cols) {
  ParsedPlot plot;
  plot.lines = split_lines(text);
  plot.rows = rows;
  plot.cols = cols;
  std::optional<size_t> axis;
  for (size_t i = 0; i < plot.lines.size(); ++i) {
    const std::string& line = plot.lines[i];
    const size_t first = line.find_first_not_of(' ');
    if (first != std::string::npos && line[first] == '+' && line.back() == '+' &&
        line.find_first_not_of("+-", first) == std::string::npos) {
      axis = i;
      break;
    }
  }
  if (!axis) {
    ADD_FAILURE() << "no X axis line in:\n" << text;
    return std::nullopt;
  }
  plot.axis_line = *axis;
  const std::string& axis_text = plot.lines[*axis];
  const size_t border_pos = axis_text.find('+');
  if (axis_text.size() != border_pos + cols + 2) {
    ADD_FAILURE() << "axis line is not cols wide: '" << axis_text << "'";
    return std::nullopt;
  }
  if (*axis < static_cast<size_t>(rows)) {
    ADD_FAILURE() << "fewer than " << rows << " lines above the axis in:\n" << text;
    return std::nullopt;
  }
  for (size_t i = *axis - rows; i < *axis; ++i) {
    const std::string& line = plot.lines[i];
    if (line.size() != border_pos + cols + 2) {
      ADD_FAILURE() << "plot line " << i << " has width " << line.size() << ": '" << line << "'";
      return std::nullopt;
    }
    const char border = line[border_pos];
    if ((border != '|' && border != '~') || line.back() != border) {
      ADD_FAILURE() << "plot line " << i << " has no border: '" << line << "'";
      return std::nullopt;
    }
    std::string margin = line.substr(0, border_pos);
    margin.erase(0, margin.find_first_not_of(' '));
    margin.erase(margin.find_last_not_of(' ') + 1);
    plot.margins.push_back(margin);
    plot.borders.push_back(border);
    plot.cells.push_back(line.substr(border_pos + 1, cols));
  }
  // The line above the area is the Y axis label.
  if (plot.lines[*axis - rows - 1] != "virtual page (addr>>12, hex)") {
    ADD_FAILURE() << "no Y axis label above the plot area:\n" << text;
    return std::nullopt;
  }
  return plot;
}

std::string render_ok(const std::vector<PlotPoint>& points, const ScatterOptions& options) {
  Result<std::string> text = render_scatter_plot(points, options);
  if (!text) {
    ADD_FAILURE() << "render failed: " << text.error().message;
    return {};
  }
  return *text;
}

void expect_line_widths(const std::string& text, int cols) {
  for (const std::string& line : split_lines(text)) {
    EXPECT_LE(line.size(), static_cast<size_t>(cols) + 24) << "line too long: '" << line << "'";
  }
}

PlotPoint point(uint64_t time_ns, uint64_t page, bool major = false,
                Segment segment = Segment::kOther) {
  return PlotPoint{time_ns, page * kPage + 123, major, segment};  // +123: any offset in the page
}

// Three far-apart clusters like a real process: executable, a library, the stack.
constexpr uint64_t kCodePage = 0x555555554;   // 64 pages
constexpr uint64_t kLibPage = 0x7f1234560;    // 128 pages
constexpr uint64_t kStackPage = 0x7ffc12340;  // 8 pages

std::vector<PlotPoint> three_clusters() {
  std::vector<PlotPoint> points;
  uint64_t t = 0;
  for (uint64_t i = 0; i < 64; ++i)
    points.push_back(point(t += 1000, kCodePage + i, false, Segment::kCode));
  for (uint64_t i = 0; i < 128; ++i)
    points.push_back(point(t += 1000, kLibPage + i, false, Segment::kFile));
  for (uint64_t i = 0; i < 8; ++i)
    points.push_back(point(t += 1000, kStackPage + i, false, Segment::kStack));
  return points;
}

// Rows (from the bottom) of each band of data rows between break rows, bottom band first.
std::vector<std::vector<int>> bands(const ParsedPlot& plot) {
  std::vector<std::vector<int>> result(1);
  for (int row = 0; row < plot.rows; ++row) {
    if (plot.row_border(row) == '~') {
      result.emplace_back();
    } else {
      result.back().push_back(row);
    }
  }
  return result;
}

TEST(ScatterPlotTest, GapCompressionCutsThreeClustersWithTwoBreaks) {
  const ScatterOptions options;  // 30 x 70, gap-compressed
  const std::string text = render_ok(three_clusters(), options);
  auto plot = parse_plot(text, 30, 70);
  ASSERT_TRUE(plot);
  EXPECT_EQ(plot->count_breaks(), 2) << text;

  // Break rows are labelled with the skipped size: (0x7f1234560 - 0x555555593 - 1) pages is
  // 41.7 TiB, (0x7ffc12340 - 0x7f12345df - 1) pages is 935.5 GiB.
  std::vector<std::string> break_labels;
  for (int row = 0; row < plot->rows; ++row) {
    if (plot->row_border(row) == '~') break_labels.push_back(plot->row_margin(row));
  }
  EXPECT_THAT(break_labels, ::testing::ElementsAre("42 TiB gap", "935 GiB gap"));

  // Three bands, bottom to top: code, library, stack; each starts and ends with its cluster's
  // first and last page and has faults in it.
  const auto band_rows = bands(*plot);
  ASSERT_EQ(band_rows.size(), 3u);
  const uint64_t first_page[] = {kCodePage, kLibPage, kStackPage};
  const uint64_t last_page[] = {kCodePage + 63, kLibPage + 127, kStackPage + 7};
  for (size_t b = 0; b < 3; ++b) {
    ASSERT_FALSE(band_rows[b].empty());
    EXPECT_EQ(plot->row_margin(band_rows[b].front()), fmt::format("{:#x}", first_page[b]));
    EXPECT_EQ(plot->row_margin(band_rows[b].back()), fmt::format("{:#x}", last_page[b]));
    int marks = 0;
    for (int row : band_rows[b]) {
      const std::string& c = plot->row_cells(row);
      marks += static_cast<int>(c.size() - std::count(c.begin(), c.end(), ' '));
    }
    EXPECT_GT(marks, 0) << "band " << b << " is empty";
  }
  // The bigger clusters get more rows.
  EXPECT_GT(band_rows[1].size(), band_rows[0].size());
  EXPECT_GT(band_rows[0].size(), band_rows[2].size());
  EXPECT_THAT(plot->legend(), HasSubstr("~~="));
  expect_line_widths(text, 70);
}

// One dense cluster has no gap worth cutting: gap mode draws it exactly like linear mode.
TEST(ScatterPlotTest, DenseClusterIsNotCut) {
  std::vector<PlotPoint> points;
  for (uint64_t i = 0; i < 500; ++i) points.push_back(point(i * 100, 0x7f0000000 + i * 3));
  ScatterOptions options;
  const std::string gap_text = render_ok(points, options);
  options.linear = true;
  EXPECT_EQ(gap_text, render_ok(points, options));
  auto plot = parse_plot(gap_text, 30, 70);
  ASSERT_TRUE(plot);
  EXPECT_EQ(plot->count_breaks(), 0);
}

TEST(ScatterPlotTest, PointsLandInComputedCells) {
  // 300 pages on 30 rows: 10 pages per row. Times 0..69999 ns on 70 columns: 1000 ns per
  // column (the X axis runs from 0 to the last fault).
  constexpr uint64_t lo = 0x7f0000000;
  struct Case {
    uint64_t time_ns, page_offset;
    int row, col;
  };
  const std::vector<Case> cases = {
      {0, 0, 0, 0},          // first column, bottom row
      {69999, 299, 29, 69},  // last column, top row
      {35000, 150, 15, 35}, {12345, 42, 4, 12}, {68999, 9, 0, 68}, {1000, 290, 29, 1},
  };
  std::vector<PlotPoint> points;
  for (const Case& c : cases) points.push_back(point(c.time_ns, lo + c.page_offset));
  ScatterOptions options;
  options.linear = true;
  const std::string text = render_ok(points, options);
  auto plot = parse_plot(text, 30, 70);
  ASSERT_TRUE(plot);
  for (const Case& c : cases) {
    EXPECT_EQ(plot->at(c.row, c.col), '.') << "t=" << c.time_ns << " page+" << c.page_offset << "\n"
                                           << text;
  }
  EXPECT_EQ(plot->count_marked_cells(), static_cast<int>(cases.size())) << text;
  // Linear axis labels: bottom row is the lowest page, top row the highest, and row 4 starts at
  // page lo + 40.
  EXPECT_EQ(plot->row_margin(0), "0x7f0000000");
  EXPECT_EQ(plot->row_margin(29), fmt::format("{:#x}", lo + 299));
  EXPECT_EQ(plot->row_margin(4), fmt::format("{:#x}", lo + 40));
}

TEST(ScatterPlotTest, GapModeCornersAreFirstAndLastCells) {
  // Two dense clusters far apart. Whatever rows each band gets, the lowest page at time 0 is in
  // the bottom-left cell and the highest page at the last time in the top-right cell.
  std::vector<PlotPoint> points;
  for (uint64_t i = 0; i < 100; ++i) points.push_back(point(5000 + i, 0x555555554 + i));
  for (uint64_t i = 0; i < 100; ++i) points.push_back(point(5000 + i, 0x7ffc12340 + i));
  points.push_back(point(0, 0x555555554));
  points.push_back(point(1'000'000, 0x7ffc12340 + 99));
  const std::string text = render_ok(points, ScatterOptions{});
  auto plot = parse_plot(text, 30, 70);
  ASSERT_TRUE(plot);
  EXPECT_EQ(plot->count_breaks(), 1);
  EXPECT_NE(plot->at(0, 0), ' ') << text;
  EXPECT_EQ(plot->at(29, 69), '.') << text;
  EXPECT_EQ(plot->row_margin(0), "0x555555554");
  EXPECT_EQ(plot->row_margin(29), "0x7ffc123a3");
}

// Parses the legend's "X=a-b", "X=a" and "X=a+" items into [a, b] per density mark.
std::map<char, std::pair<uint64_t, uint64_t>> legend_ranges(const std::string& legend) {
  std::map<char, std::pair<uint64_t, uint64_t>> ranges;
  std::istringstream in(legend);
  for (std::string item; in >> item;) {
    if (item.size() < 3 || item[1] != '=' || !std::isdigit(static_cast<unsigned char>(item[2])))
      continue;
    const std::string value = item.substr(2);
    const uint64_t low = std::stoull(value);
    uint64_t high = low;
    if (value.back() == '+') {
      high = std::numeric_limits<uint64_t>::max();
    } else if (const size_t dash = value.find('-'); dash != std::string::npos) {
      high = std::stoull(value.substr(dash + 1));
    }
    ranges[item[0]] = {low, high};
  }
  return ranges;
}

TEST(ScatterPlotTest, DensityMarksGetHeavierWithCount) {
  // Columns 0..4 of the same page hold 1..5 faults; the busiest cell has 5.
  std::vector<PlotPoint> points;
  for (int col = 0; col < 5; ++col) {
    for (int k = 0; k <= col; ++k) points.push_back(point(col * 1000, 0x1000));
  }
  points.push_back(point(69999, 0x1000));  // fixes the time axis at 1000 ns per column
  ScatterOptions options;
  const std::string text = render_ok(points, options);
  auto plot = parse_plot(text, 30, 70);
  ASSERT_TRUE(plot);
  const int row = (30 - 1) / 2;  // a single page sits in the middle row
  EXPECT_EQ(plot->row_cells(row).substr(0, 5), ".:oO@") << text;
  EXPECT_EQ(plot->at(row, 69), '.');
  const std::string legend = plot->legend();
  for (const char* item : {".=1", ":=2", "o=3", "O=4", "@=5+"}) {
    EXPECT_THAT(legend, HasSubstr(item)) << legend;
  }
}

TEST(ScatterPlotTest, DensityThresholdsScaleToBusiestCell) {
  const std::vector<uint64_t> counts = {1, 3, 10, 30, 100, 300, 1000, 3000};
  std::vector<PlotPoint> points;
  for (size_t col = 0; col < counts.size(); ++col) {
    for (uint64_t k = 0; k < counts[col]; ++k) points.push_back(point(col * 1000, 0x1000));
  }
  points.push_back(point(69999, 0x1000));
  const std::string text = render_ok(points, ScatterOptions{});
  auto plot = parse_plot(text, 30, 70);
  ASSERT_TRUE(plot);
  const std::string& cells = plot->row_cells(14);
  const std::string order = ".:oO@";
  EXPECT_EQ(cells[0], '.');
  EXPECT_EQ(cells[counts.size() - 1], '@');
  const auto ranges = legend_ranges(plot->legend());
  ASSERT_EQ(ranges.size(), 5u) << plot->legend();
  for (size_t col = 0; col < counts.size(); ++col) {
    const char mark = cells[col];
    ASSERT_NE(order.find(mark), std::string::npos) << "col " << col << ": '" << mark << "'";
    if (col > 0) {
      EXPECT_GE(order.find(mark), order.find(cells[col - 1])) << text;
    }
    // The legend's range for the mark contains the cell's count.
    ASSERT_TRUE(ranges.count(mark));
    EXPECT_GE(counts[col], ranges.at(mark).first) << mark;
    EXPECT_LE(counts[col], ranges.at(mark).second) << mark;
  }
}

TEST(ScatterPlotTest, MajorFaultMarksItsCell) {
  std::vector<PlotPoint> points;
  for (int k = 0; k < 10; ++k) points.push_back(point(0, 0x2000));      // minor only
  for (int k = 0; k < 10; ++k) points.push_back(point(10000, 0x2000));  // 9 minor + 1 major
  points.back().major = true;
  points.push_back(point(20000, 0x2000, true));  // a lone major fault
  points.push_back(point(69999, 0x2000));
  const std::string text = render_ok(points, ScatterOptions{});
  auto plot = parse_plot(text, 30, 70);
  ASSERT_TRUE(plot);
  EXPECT_EQ(plot->at(14, 0), '@');
  EXPECT_EQ(plot->at(14, 10), 'M');
  EXPECT_EQ(plot->at(14, 20), 'M');
  EXPECT_EQ(plot->at(14, 69), '.');
  EXPECT_THAT(plot->legend(), HasSubstr("M=any major fault"));
}

TEST(ScatterPlotTest, LinearModePutsFarClustersAtTopAndBottom) {
  std::vector<PlotPoint> points;
  for (uint64_t i = 0; i < 10; ++i) {
    points.push_back(point(i * 7000, kCodePage + i));
    points.push_back(point(i * 7000, kStackPage + i));
  }
  ScatterOptions options;
  options.linear = true;
  const std::string text = render_ok(points, options);
  auto plot = parse_plot(text, 30, 70);
  ASSERT_TRUE(plot);
  EXPECT_EQ(plot->count_breaks(), 0);
  EXPECT_NE(plot->row_cells(0), std::string(70, ' ')) << text;
  EXPECT_NE(plot->row_cells(29), std::string(70, ' ')) << text;
  for (int row = 1; row < 29; ++row) {
    EXPECT_EQ(plot->row_cells(row), std::string(70, ' ')) << "row " << row << "\n" << text;
  }
  EXPECT_EQ(plot->row_margin(0), fmt::format("{:#x}", kCodePage));
  EXPECT_EQ(plot->row_margin(29), fmt::format("{:#x}", kStackPage + 9));
  EXPECT_THAT(plot->legend(), Not(HasSubstr("~~=")));

  // The same points gap-compressed: one break, both clusters still at bottom and top.
  const std::string compressed = render_ok(points, ScatterOptions{});
  auto cplot = parse_plot(compressed, 30, 70);
  ASSERT_TRUE(cplot);
  EXPECT_EQ(cplot->count_breaks(), 1);
}

TEST(ScatterPlotTest, RespectsRowsAndColsExactly) {
  const auto points = three_clusters();
  for (auto [rows, cols] : {std::pair{4, 10}, {5, 11}, {12, 40}, {30, 70}, {50, 120}}) {
    SCOPED_TRACE(fmt::format("{}x{}", rows, cols));
    for (bool linear : {false, true}) {
      ScatterOptions options;
      options.rows = rows;
      options.cols = cols;
      options.linear = linear;
      options.title = std::string(300, 'T');  // cut to fit
      const std::string text = render_ok(points, options);
      auto plot = parse_plot(text, rows, cols);  // checks every area line's width
      ASSERT_TRUE(plot) << text;
      EXPECT_EQ(plot->cells.size(), static_cast<size_t>(rows));
      // The line above the area is the Y label, above it the title; nothing else.
      EXPECT_EQ(plot->axis_line, static_cast<size_t>(rows) + 2) << text;
      expect_line_widths(text, cols);
      // All 200 points are somewhere in the area.
      EXPECT_GT(plot->count_marked_cells(), 0);
      if (!linear) {
        EXPECT_GE(plot->count_breaks(), 1);
      }
    }
  }
}

TEST(ScatterPlotTest, EmptyInputGivesMessage) {
  ScatterOptions options;
  Result<std::string> text = render_scatter_plot({}, options);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "(no faults to plot)\n");
  options.title = "pid 42";
  text = render_scatter_plot({}, options);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "pid 42\n(no faults to plot)\n");
}

TEST(ScatterPlotTest, TimeRangeSelectsPointsAndSetsAxis) {
  std::vector<PlotPoint> points = {point(1'000'000, 0x10), point(5'000'000, 0x20),
                                   point(9'000'000, 0x30)};
  ScatterOptions options;
  options.time_range = TimeWindow{4'000'000, 6'000'000};
  auto plot = parse_plot(render_ok(points, options), 30, 70);
  ASSERT_TRUE(plot);
  EXPECT_EQ(plot->count_marked_cells(), 1);
  EXPECT_EQ(plot->row_margin(14), "0x20");  // the only page, in the middle row
  // 5 ms is the middle of 4..6 ms: column floor(1000000 * 70 / 2000001) = 34.
  EXPECT_EQ(plot->at(14, 34), '.');
  EXPECT_THAT(plot->tick_labels(), HasSubstr("4ms"));
  EXPECT_THAT(plot->tick_labels(), HasSubstr("6ms"));

  options.time_range = TimeWindow{10'000'000, 20'000'000};
  Result<std::string> none = render_scatter_plot(points, options);
  ASSERT_TRUE(none);
  EXPECT_THAT(*none, HasSubstr("(no faults in the selected time range)"));
}

TEST(ScatterPlotTest, SinglePointIsCentredOnY) {
  const std::vector<PlotPoint> points = {point(5, 0x7ffc12340)};
  const std::string text = render_ok(points, ScatterOptions{});
  auto plot = parse_plot(text, 30, 70);
  ASSERT_TRUE(plot);
  EXPECT_EQ(plot->count_marked_cells(), 1);
  // One page: the middle row. The axis runs 0..5 ns, fewer values than columns, so 5 ns is
  // spread to the last column.
  EXPECT_EQ(plot->at(14, 69), '.') << text;
  EXPECT_EQ(plot->row_margin(14), "0x7ffc12340");
  expect_line_widths(text, 70);
}

TEST(ScatterPlotTest, AllPointsInOneCellAtTimeZero) {
  std::vector<PlotPoint> points(1000, point(0, 0x55555));
  const std::string text = render_ok(points, ScatterOptions{});
  auto plot = parse_plot(text, 30, 70);
  ASSERT_TRUE(plot);
  EXPECT_EQ(plot->count_marked_cells(), 1);
  EXPECT_EQ(plot->at(14, 34), '@') << text;  // the middle of a zero-width time axis
  EXPECT_THAT(plot->tick_labels(), HasSubstr("0ns"));
}

TEST(ScatterPlotTest, SameTimeManyPagesIsOneColumn) {
  std::vector<PlotPoint> points;
  for (uint64_t i = 0; i < 30; ++i) points.push_back(point(7'000'000, 0x400000 + i));
  ScatterOptions options;
  options.time_range = TimeWindow{7'000'000, 7'000'000};
  auto plot = parse_plot(render_ok(points, options), 30, 70);
  ASSERT_TRUE(plot);
  for (int row = 0; row < 30; ++row) {
    EXPECT_EQ(plot->at(row, 34), '.') << row;
  }
  EXPECT_EQ(plot->count_marked_cells(), 30);
}

TEST(ScatterPlotTest, ExtremeValuesDoNotOverflow) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  const std::vector<PlotPoint> points = {{0, 0, false, Segment::kOther},
                                         {kMax, kMax, true, Segment::kOther}};
  for (bool linear : {false, true}) {
    ScatterOptions options;
    options.linear = linear;
    const std::string text = render_ok(points, options);
    auto plot = parse_plot(text, 30, 70);
    ASSERT_TRUE(plot);
    EXPECT_EQ(plot->count_marked_cells(), 2) << text;
    expect_line_widths(text, 70);
    if (linear) {
      EXPECT_EQ(plot->at(0, 0), '.') << text;
      EXPECT_EQ(plot->at(29, 69), 'M') << text;
    } else {
      // Two single pages, each centred in its own band above and below the break.
      ASSERT_EQ(plot->count_breaks(), 1) << text;
      const auto band_rows = bands(*plot);
      ASSERT_EQ(band_rows.size(), 2u);
      EXPECT_EQ(plot->row_margin(band_rows[0][(band_rows[0].size() - 1) / 2]), "0x0");
      EXPECT_EQ(plot->row_margin(band_rows[1][(band_rows[1].size() - 1) / 2]), "0xfffffffffffff");
      EXPECT_EQ(plot->at(band_rows[0][(band_rows[0].size() - 1) / 2], 0), '.') << text;
      EXPECT_EQ(plot->at(band_rows[1][(band_rows[1].size() - 1) / 2], 69), 'M') << text;
    }
  }
}

TEST(ScatterPlotTest, TimeAxisUsesMillisecondsOrSeconds) {
  // 50 ms: millisecond ticks from 0.
  std::vector<PlotPoint> points = {point(0, 0x100), point(50'000'000, 0x200)};
  auto plot = parse_plot(render_ok(points, ScatterOptions{}), 30, 70);
  ASSERT_TRUE(plot);
  const std::string ms = plot->tick_labels();
  EXPECT_THAT(ms, HasSubstr("0ms"));
  EXPECT_THAT(ms, HasSubstr("50ms"));
  std::istringstream ms_labels(ms);
  for (std::string label; ms_labels >> label;) EXPECT_THAT(label, ::testing::EndsWith("0ms")) << ms;
  // The first and last column are ticks.
  const std::string& axis = plot->lines[plot->axis_line];
  const size_t left = axis.find('+');
  EXPECT_EQ(axis[left + 1], '+');
  EXPECT_EQ(axis[left + 70], '+');
  EXPECT_THAT(plot->lines[plot->axis_line + 2], HasSubstr("time since start"));

  // 3 s: second ticks with a decimal where needed.
  points = {point(0, 0x100), point(3'000'000'000, 0x200)};
  plot = parse_plot(render_ok(points, ScatterOptions{}), 30, 70);
  ASSERT_TRUE(plot);
  const std::string s = plot->tick_labels();
  for (const char* label : {"0s", "1s", "1.5s", "3s"}) EXPECT_THAT(s, HasSubstr(label)) << s;
  std::istringstream s_labels(s);
  for (std::string label; s_labels >> label;) {
    EXPECT_THAT(label, ::testing::EndsWith("s")) << s;
    EXPECT_THAT(label, Not(::testing::EndsWith("ms"))) << s;
  }
}

TEST(ScatterPlotTest, OutputDependsOnlyOnThePointSet) {
  auto points = three_clusters();
  points[10].major = true;
  ScatterOptions options;
  options.title = "same";
  const std::string first = render_ok(points, options);
  std::mt19937 rng(7);
  std::shuffle(points.begin(), points.end(), rng);
  EXPECT_EQ(render_ok(points, options), first);
  EXPECT_EQ(render_ok(points, options), first);
}

TEST(ScatterPlotTest, BySegmentOmitsEmptySegmentsAndTitlesTheRest) {
  std::vector<PlotPoint> points = {
      point(1'000'000, kCodePage, false, Segment::kCode),
      point(2'000'000, kCodePage + 1, false, Segment::kCode),
      point(3'000'000, kCodePage + 5, true, Segment::kCode),
      point(10'000'000, kStackPage, false, Segment::kStack),
      point(20'000'000, kStackPage + 2, false, Segment::kStack),
  };
  ScatterOptions options;
  options.rows = 10;
  options.cols = 40;
  Result<std::vector<SegmentPlot>> plots = render_scatter_by_segment(points, options);
  ASSERT_TRUE(plots);
  ASSERT_EQ(plots->size(), 2u);
  EXPECT_EQ((*plots)[0].segment, Segment::kCode);
  EXPECT_EQ((*plots)[1].segment, Segment::kStack);
  EXPECT_EQ(split_lines((*plots)[0].text).front(), "code");
  EXPECT_EQ(split_lines((*plots)[1].text).front(), "stack");

  // Each plot is sized to its data: one row per page of its axis (code: pages +0..+5, 6 rows;
  // stack: +0..+2, 3 rows), not the 10 rows asked for.
  EXPECT_EQ(area_rows((*plots)[0].text), 6);
  EXPECT_EQ(area_rows((*plots)[1].text), 3);
  auto code = parse_plot((*plots)[0].text, 6, 40);
  auto stack = parse_plot((*plots)[1].text, 3, 40);
  ASSERT_TRUE(code && stack);
  EXPECT_EQ(code->count_marked_cells(), 3);
  EXPECT_EQ(stack->count_marked_cells(), 2);
  // Each plot's Y axis holds only its own segment's pages.
  EXPECT_EQ(code->row_margin(0), fmt::format("{:#x}", kCodePage));
  EXPECT_EQ(stack->row_margin(2), fmt::format("{:#x}", kStackPage + 2));
  // One shared X axis (0..20 ms): the code faults at 1-3 ms sit in the first columns, and both
  // plots have the same ticks.
  EXPECT_EQ(code->tick_labels(), stack->tick_labels());
  EXPECT_THAT(code->tick_labels(), HasSubstr("20ms"));
  // One row per page, lowest at the bottom (code: page +5 at row 5). 3 ms on 0..20 ms over 40
  // columns: floor(3000000 * 40 / 20000001) = 5.
  EXPECT_EQ(code->at(5, 5), 'M') << (*plots)[0].text;
  EXPECT_EQ(code->at(0, 1), '.') << (*plots)[0].text;  // page +0 at 1 ms
  EXPECT_EQ(code->at(1, 3), '.') << (*plots)[0].text;  // page +1 at 2 ms
  EXPECT_EQ(stack->at(2, 39), '.') << (*plots)[1].text;

  options.title = "demo";
  plots = render_scatter_by_segment(points, options);
  ASSERT_TRUE(plots);
  ASSERT_EQ(plots->size(), 2u);
  EXPECT_EQ(split_lines((*plots)[1].text).front(), "demo: stack");

  plots = render_scatter_by_segment({}, options);
  ASSERT_TRUE(plots);
  EXPECT_TRUE(plots->empty());
}

TEST(ScatterPlotTest, BySegmentSizesSmallSegmentsToTheirData) {
  std::vector<PlotPoint> points = {point(5'000'000, kStackPage, false, Segment::kStack)};
  // A heap of 200 distinct pages in two far-apart clusters: more pages than rows, so it keeps
  // all 30 rows; a file segment of two pages 1000 pages apart: a gap is only cut when it would
  // take rows, so it is two rows with a break between them or drawn to scale.
  for (uint64_t i = 0; i < 100; ++i) {
    points.push_back(point(i * 1000, kCodePage + 0x1000 + i * 3, false, Segment::kHeap));
    points.push_back(point(i * 1000, kCodePage + 0x900000 + i * 3, false, Segment::kHeap));
  }
  points.push_back(point(1'000'000, 0x7f0000000, false, Segment::kFile));
  points.push_back(point(2'000'000, 0x7f0000000 + 1000, false, Segment::kFile));
  ScatterOptions options;  // 30 rows x 70 columns
  auto plots = render_scatter_by_segment(points, options);
  ASSERT_TRUE(plots);
  ASSERT_EQ(plots->size(), 3u);
  std::map<Segment, std::string> text;
  for (const auto& p : *plots) text[p.segment] = p.text;
  // One fault: one row, labelled with its page, its mark in it.
  ASSERT_EQ(area_rows(text[Segment::kStack]), 1) << text[Segment::kStack];
  auto stack = parse_plot(text[Segment::kStack], 1, 70);
  ASSERT_TRUE(stack);
  EXPECT_EQ(stack->row_margin(0), fmt::format("{:#x}", kStackPage));
  EXPECT_EQ(stack->count_marked_cells(), 1);
  EXPECT_EQ(area_rows(text[Segment::kHeap]), 30) << "200 pages need every row";
  // Two pages: each gets a row; the 999 empty pages between them become one break row.
  ASSERT_EQ(area_rows(text[Segment::kFile]), 3) << text[Segment::kFile];
  auto file = parse_plot(text[Segment::kFile], 3, 70);
  ASSERT_TRUE(file);
  EXPECT_EQ(file->count_breaks(), 1);
  EXPECT_EQ(file->row_margin(0), fmt::format("{:#x}", 0x7f0000000));
  EXPECT_EQ(file->row_margin(2), fmt::format("{:#x}", 0x7f0000000 + 1000));
  // The single plot keeps the size asked for.
  auto single = render_scatter_plot(points, options);
  ASSERT_TRUE(single);
  EXPECT_EQ(area_rows(*single), 30);
}

TEST(ScatterPlotTest, InvalidOptionsAreUsageErrors) {
  const auto points = three_clusters();
  for (auto [rows, cols] :
       {std::pair{3, 70}, {30, 9}, {0, 0}, {-5, 70}, {30, -1}, {1001, 70}, {30, 1001}}) {
    ScatterOptions options;
    options.rows = rows;
    options.cols = cols;
    Result<std::string> text = render_scatter_plot(points, options);
    ASSERT_FALSE(text) << rows << "x" << cols;
    EXPECT_EQ(text.error().exit_code, ExitCode::kUsage);
    EXPECT_THAT(text.error().message, HasSubstr("rows"));
    EXPECT_FALSE(render_scatter_by_segment(points, options));
    EXPECT_FALSE(render_scatter_plot({}, options)) << "checked before looking at the points";
  }
  ScatterOptions options;
  options.time_range = TimeWindow{10, 5};
  Result<std::string> text = render_scatter_plot(points, options);
  ASSERT_FALSE(text);
  EXPECT_EQ(text.error().exit_code, ExitCode::kUsage);
}

}  // namespace
}  // namespace kscope
