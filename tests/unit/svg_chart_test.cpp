#include "render/svg_chart.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "render/svg.h"

namespace kscope {
namespace {

// Charts escape their text with the one XML escaper of render/svg.h.
TEST(SvgChart, EscapesText) {
  ChartOptions o;
  o.title = "a<b>&\"c'\x01";
  std::string svg = render_svg_chart({{"s<1>", {{0, 1}, {1, 2}}}}, o);
  EXPECT_NE(svg.find(xml_escape(o.title)), std::string::npos) << svg;
  EXPECT_EQ(svg.find("a<b>"), std::string::npos);
  EXPECT_NE(svg.find("s&lt;1&gt;"), std::string::npos);
}

TEST(SvgChart, NiceTicksCoverTheRange) {
  auto t = nice_ticks(0, 97, 5);
  ASSERT_GE(t.size(), 3u);
  EXPECT_LE(t.front(), 0);
  EXPECT_GE(t.back(), 97);
  EXPECT_DOUBLE_EQ(t[1] - t[0], 20);
  t = nice_ticks(0.001, 0.0042, 4);
  EXPECT_LE(t.front(), 0.001);
  EXPECT_GE(t.back(), 0.0042);
  EXPECT_EQ(nice_ticks(5, 5).size() >= 2, true);
}

TEST(SvgChart, RendersTitleAxesLegendAndSeries) {
  ChartSeries a{"run <1> & co", {{0, 0}, {1, 10}, {2, 25}}, true, false};
  ChartSeries b{"major", {{0, 0}, {2, 3}}, false, true};
  ChartOptions o;
  o.title = "Faults \"vs\" time";
  o.x_label = "time (s)";
  o.y_label = "faults (count)";
  std::string svg = render_svg_chart({a, b}, o);
  EXPECT_EQ(svg.rfind("<svg ", 0), 0u);
  EXPECT_NE(svg.find("Faults &quot;vs&quot; time"), std::string::npos);
  EXPECT_NE(svg.find("time (s)"), std::string::npos);
  EXPECT_NE(svg.find("faults (count)"), std::string::npos);
  EXPECT_NE(svg.find("run &lt;1&gt; &amp; co"), std::string::npos);
  EXPECT_EQ(svg.find("<1>"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 10, true);
  size_t polylines = 0;
  for (size_t p = svg.find("<polyline"); p != std::string::npos; p = svg.find("<polyline", p + 1))
    ++polylines;
  EXPECT_EQ(polylines, 2u);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
  EXPECT_NE(svg.find("<circle"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST(SvgChart, EmptyChartSaysNoData) {
  ChartOptions o;
  o.title = "empty";
  std::string svg = render_svg_chart({}, o);
  EXPECT_NE(svg.find("no data"), std::string::npos);
}

TEST(SvgChart, TickLabels) {
  EXPECT_EQ(format_tick(20000, 5000), "20k");
  EXPECT_EQ(format_tick(2000000, 500000), "2M");
  EXPECT_EQ(format_tick(40, 10), "40");
  EXPECT_EQ(format_tick(0.25, 0.05), "0.25");
}

}  // namespace
}  // namespace kscope
