// kscope report and the flame graph renderers: content against the recording they came from,
// escaping of untrusted names, and the page checked in a real browser (headless chromium).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "render/fault_figures.h"
#include "render/flamegraph.h"
#include "render/report_html.h"
#include "render/scatter_plot.h"
#include "subprocess.h"
#include "symbols/symbolizer.h"
#include "synthetic_fixture.h"
#include "tools.h"

namespace kscope::testing {
namespace {

size_t count_of(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + 1))
    ++n;
  return n;
}

StackProfile synthetic_profile() {
  StackProfile p;
  p.value_types = {{"oncpu", "nanoseconds"}};
  auto frame = [](std::string fn, bool kernel) {
    ProfileFrame f;
    f.function = std::move(fn);
    f.resolved = true;
    f.kernel = kernel;
    return f;
  };
  p.frames = {frame("main", false), frame("parse</script><b>", false), frame("compute", false),
              frame("do_syscall_64", true), frame("ksys_read", true)};
  // leaf first: main->compute 60, main->parse 30, main->parse->syscall->ksys_read 10 (2 samples)
  p.samples.push_back({{2, 0}, {60}, 1, 1, "app"});
  p.samples.push_back({{1, 0}, {30}, 1, 1, "app"});
  p.samples.push_back({{4, 3, 1, 0}, {4}, 1, 1, "app"});
  p.samples.push_back({{4, 3, 1, 0}, {6}, 1, 2, "app"});
  p.samples.push_back({{0}, {0}, 1, 1, "app"});  // zero: left out
  return p;
}

TEST(FlameGraph, TreeMergesStacksRootFirst) {
  auto nodes = build_flame_tree(synthetic_profile(), {});
  std::map<std::string, int64_t> value;
  std::map<std::string, uint8_t> kind;
  std::map<std::string, uint32_t> depth;
  for (const auto& n : nodes) {
    value[n.name] += n.value;
    kind[n.name] = n.kind;
    depth[n.name] = n.depth;
  }
  EXPECT_EQ(nodes[0].name, "all");
  EXPECT_EQ(nodes[0].value, 100);
  EXPECT_EQ(value["app"], 100);
  EXPECT_EQ(value["main"], 100);
  EXPECT_EQ(value["compute"], 60);
  EXPECT_EQ(value["parse</script><b>"], 40);
  EXPECT_EQ(value["ksys_read"], 10);
  EXPECT_EQ(kind["ksys_read"], 1);
  EXPECT_EQ(kind["main"], 0);
  EXPECT_EQ(kind["app"], 2);
  EXPECT_EQ(depth["ksys_read"], 5);  // all > app > main > parse > do_syscall_64 > ksys_read
  // Every node's children add up to at most its own value.
  std::vector<int64_t> child_sum(nodes.size(), 0);
  for (const auto& n : nodes)
    if (n.parent >= 0) child_sum[n.parent] += n.value;
  for (size_t i = 0; i < nodes.size(); ++i)
    EXPECT_LE(child_sum[i], nodes[i].value) << nodes[i].name;
}

TEST(FlameGraph, SvgAndHtmlEscapeNames) {
  auto p = synthetic_profile();
  std::string svg = render_flamegraph_svg(p, {});
  EXPECT_EQ(svg.find("</script>"), std::string::npos);
  EXPECT_NE(svg.find("parse&lt;/script&gt;&lt;b&gt;"), std::string::npos);
  EXPECT_NE(svg.find("(10 nanoseconds, 10.00%)"), std::string::npos) << "ksys_read's share";
  std::string html = render_flamegraph_section(p, {});
  EXPECT_EQ(html.find("</script><b>"), std::string::npos);
  EXPECT_EQ(count_of(html, "</script>"), 1u) << "only the data block's own end tag";
}

using ReportTest = SyntheticRecordingTest;

TEST_F(ReportTest, HtmlShowsTheRecordingsNumbersAndEscapesNames) {
  auto r = run({KSCOPE_BINARY, "report", rec_, "-o", dir_ + "/r.html", "--svg", dir_ + "/svg"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string html = read_file(dir_ + "/r.html");
  // Per-segment counts in the summary table are the recording's.
  std::map<Segment, size_t> per;
  for (const auto& f : data_.faults) ++per[f.segment];
  for (auto [seg, n] : per) {
    std::regex row(std::string("</i>") + std::string(to_string(seg)) +
                   "</td><td class=\"n\">([0-9,]+)</td>");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(html, m, row)) << to_string(seg);
    std::string digits = m[1];
    digits.erase(std::remove(digits.begin(), digits.end(), ','), digits.end());
    EXPECT_EQ(std::stoul(digits), n) << to_string(seg);
  }
  // The comm "beta<script>" is escaped wherever it appears; the only script elements are ours.
  EXPECT_NE(html.find("beta&lt;script&gt;"), std::string::npos);
  EXPECT_EQ(html.find("beta<script>"), std::string::npos);
  EXPECT_EQ(count_of(html, "<script"), 4u);  // page data, flame data, report.js, flamegraph.js
  // No network: nothing is loaded from anywhere.
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("href=\"http"), std::string::npos);
  // The page data's axis is the terminal plot's gap-compressed axis for the same pages.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(html, m, std::regex("id=\"kscope-data\">(.*?)</script>")));
  auto data = nlohmann::json::parse(m[1].str());
  EXPECT_EQ(data["n"], data_.faults.size());
  std::vector<uint64_t> pages;
  for (const auto& f : data_.faults) pages.push_back(f.addr >> 12);
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  auto axis = compress_page_axis(pages, kReportAxisRows);
  ASSERT_EQ(data["axis"].size(), axis.size());
  for (size_t i = 0; i < axis.size(); ++i) {
    EXPECT_EQ(data["axis"][i][0].get<uint64_t>(), axis[i].lo);
    EXPECT_EQ(data["axis"][i][1].get<uint64_t>(), axis[i].hi);
  }
  EXPECT_GE(axis.size(), 4u) << "heap, anon, file and stack are far apart: gaps are cut";
  // --svg wrote one standalone SVG per figure.
  for (const char* name : {"scatter", "scatter_heap", "scatter_anon", "scatter_file",
                           "scatter_stack", "cumulative_by_process", "cumulative_by_kind",
                           "latency_histogram", "top_functions", "flamegraph"}) {
    std::string svg = read_file(dir_ + "/svg/" + name + ".svg");
    EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u) << name;
    EXPECT_NE(svg.find("</svg>"), std::string::npos) << name;
    EXPECT_EQ(svg.find("beta<script>"), std::string::npos) << name;
  }
  EXPECT_NE(::access((dir_ + "/svg/scatter_code.svg").c_str(), F_OK), 0)
      << "no empty segment panels";
}

TEST_F(ReportTest, BadInput) {
  // Unwritable output: fails before reading (the recording does not even exist).
  auto r = run({KSCOPE_BINARY, "report", dir_ + "/missing", "-o", dir_ + "/no/dir/r.html"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot write " + dir_ + "/no/dir/r.html"), std::string::npos) << r.err;
  r = run({KSCOPE_BINARY, "report", rec_, "-o", dir_ + "/r.html", "--svg", "/proc/version"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(::access((dir_ + "/r.html").c_str(), F_OK), 0) << "failed report leaves no file";
  // Corrupt recording: the byte offset is named, no output left.
  std::string bytes = read_file(rec_);
  bytes[bytes.size() / 3] ^= 0x40;
  std::ofstream(dir_ + "/bad.kscope", std::ios::binary) << bytes;
  r = run({KSCOPE_BINARY, "report", dir_ + "/bad.kscope", "-o", dir_ + "/r.html"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("corrupted at byte "), std::string::npos) << r.err;
  EXPECT_NE(::access((dir_ + "/r.html").c_str(), F_OK), 0);
  // Not a recording at all.
  r = run({KSCOPE_BINARY, "report", "/etc/hostname", "-o", dir_ + "/r.html"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(r.err.empty());
  r = run({KSCOPE_BINARY, "report", rec_});
  EXPECT_EQ(r.exit_code, 2) << "-o is required";
}

// Runs the page's own ?selftest in headless chromium and returns its JSON result.
nlohmann::json browser_selftest(const std::string& chromium, const std::string& html,
                                const std::string& dir) {
  auto r = run(
      {chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
       "--disable-background-networking", "--disable-component-update", "--disable-sync",
       "--user-data-dir=" + dir + "/chrome-profile", "--window-size=1300,1000",
       "--virtual-time-budget=15000", "--dump-dom", "file://" + html + "?selftest"},
      90);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  if (!std::regex_search(r.out, m, std::regex("<pre id=\"kscope-selftest\">(.*?)</pre>"))) {
    ADD_FAILURE() << "no self-test result in the page; stderr: " << r.err;
    return {};
  }
  std::string text = m[1];
  // textContent in the DOM dump is HTML-escaped.
  for (auto [from, to] : {std::pair<std::string, std::string>{"&quot;", "\""},
                          {"&lt;", "<"},
                          {"&gt;", ">"},
                          {"&amp;", "&"}}) {
    for (size_t pos = text.find(from); pos != std::string::npos;
         pos = text.find(from, pos + to.size()))
      text.replace(pos, from.size(), to);
  }
  return nlohmann::json::parse(text);
}

TEST_F(ReportTest, PageRendersAndZoomsInChromium) {
  KSCOPE_REQUIRE_TOOL_OR_SKIP(chromium, "chromium", "chromium");
  // Points mode, and (threshold below the 4000 faults) density mode, through the same page code.
  for (const char* threshold : {"200000", "1000"}) {
    std::string html = dir_ + "/r" + threshold + ".html";
    auto r = run({KSCOPE_BINARY, "report", rec_, "-o", html, "--density-threshold", threshold});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto res = browser_selftest(chromium, html, dir_);
    ASSERT_TRUE(res.is_object());
    EXPECT_TRUE(res["ok"].get<bool>()) << res.dump(1);
    EXPECT_TRUE(res["errors"].empty()) << res["errors"].dump();
    EXPECT_EQ(res["scatters"], 5) << "all + heap, anon, file, stack";
    EXPECT_EQ(res["modeBefore"], std::string(threshold) == "1000" ? "density" : "points");
    // Zoom changed the visible range: fewer points in view than before.
    EXPECT_LT(res["zoom"]["after"]["points"].get<int>(),
              res["zoom"]["before"]["points"].get<int>());
    EXPECT_EQ(res["zoom"]["before"]["points"], data_.faults.size());
    size_t flame_checks = 0;
    for (const auto& c : res["checks"])
      if (c["name"].get<std::string>().find("flame graph") != std::string::npos) ++flame_checks;
    EXPECT_EQ(flame_checks, 2u) << "drawn, click zooms";
  }
}

TEST(ReportEmpty, SaysNoFaultsRecorded) {
  std::string dir = temp_dir();
  SyntheticRecording empty;
  ASSERT_EQ(write_synthetic(dir + "/e.kscope", empty), "");
  auto r = run({KSCOPE_BINARY, "report", dir + "/e.kscope", "-o", dir + "/e.html"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("no faults recorded"), std::string::npos);
  std::string html = read_file(dir + "/e.html");
  EXPECT_NE(html.find("no faults recorded"), std::string::npos);
  std::string chromium = find_tool("chromium");
  if (!chromium.empty()) {
    auto res = browser_selftest(chromium, dir + "/e.html", dir);
    EXPECT_TRUE(res["ok"].get<bool>()) << res.dump(1);
    EXPECT_TRUE(res["noFaults"].get<bool>());
  } else if (bpf_required()) {
    FAIL() << "KSCOPE_REQUIRE_BPF=1 but chromium is missing";
  }
  run({"/bin/rm", "-rf", dir});
}

TEST(ReportApi, BuildFaultReportHtmlIsTheSamePage) {
  auto data = make_synthetic(100);
  std::string dir = temp_dir();
  ASSERT_EQ(write_synthetic(dir + "/r.kscope", data), "");
  auto rec = read_recording(dir + "/r.kscope");
  ASSERT_TRUE(rec.ok());
  ReportOptions o;
  o.source_path = "x";
  auto html = build_fault_report_html(*rec, o);
  ASSERT_TRUE(html.ok());
  EXPECT_NE(html->find("<title>kscope report: x</title>"), std::string::npos);
  EXPECT_NE(html->find("id=\"flame-section\""), std::string::npos);
  run({"/bin/rm", "-rf", dir});
}

}  // namespace
}  // namespace kscope::testing
