// kscope report and the flame graph renderers: content against the recording they came from,
// escaping of untrusted names, and the page checked in a real browser (headless chromium).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>

#include "model/top_profile.h"
#include "model/top_recording.h"
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

// The text between the first (or last) `open` and the next `close` after it, or nullopt.
// (std::regex recurses per character: a page's data block is too long for it under ASan.)
std::optional<std::string> between(const std::string& s, const std::string& open,
                                   const std::string& close, bool last = false) {
  size_t from = last ? s.rfind(open) : s.find(open);
  if (from == std::string::npos) return std::nullopt;
  from += open.size();
  size_t to = s.find(close, from);
  if (to == std::string::npos) return std::nullopt;
  return s.substr(from, to - from);
}

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
  auto page_data = between(html, "id=\"kscope-data\">", "</script>");
  ASSERT_TRUE(page_data);
  auto data = nlohmann::json::parse(*page_data);
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
  // A bad file header (the kind of the file is unknown): the byte offset is named, no output
  // left. (Damaged blocks are read around: DamagedRecording below.)
  std::string bytes = read_file(rec_);
  bytes[13] ^= 0x40;
  std::ofstream(dir_ + "/bad.kscope", std::ios::binary) << bytes;
  r = run({KSCOPE_BINARY, "report", dir_ + "/bad.kscope", "-o", dir_ + "/r.html"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(r.err.empty());
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
  // The last one: the page's scripts (inlined in the dump) mention the element too.
  auto selftest = between(r.out, "<pre id=\"kscope-selftest\">", "</pre>", true);
  if (!selftest) {
    ADD_FAILURE() << "no self-test result in the page; stderr: " << r.err;
    return {};
  }
  std::string text = *selftest;
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

// Offsets, types and counts of the blocks of a recording, by walking the documented framing.
struct Block {
  uint64_t offset, end;
  uint16_t type;
  uint32_t count;
};
std::vector<Block> blocks_of(const std::string& b) {
  auto u32 = [&](size_t o) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[o + i]);
    return v;
  };
  std::vector<Block> out;
  for (uint64_t pos = 20; pos + 20 <= b.size(); pos += 20 + u32(pos + 4))
    out.push_back({pos, pos + 20 + u32(pos + 4),
                   static_cast<uint16_t>(static_cast<uint8_t>(b[pos]) |
                                         (static_cast<uint8_t>(b[pos + 1]) << 8)),
                   u32(pos + 8)});
  return out;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(DamagedRecording, FaultsRecordingWithEightOverwrittenBytes) {
  std::string dir = temp_dir();
  SyntheticRecording data = make_synthetic(20000);  // 5 faults blocks of up to 4096 records
  ASSERT_EQ(write_synthetic(dir + "/r.kscope", data), "");
  std::string bytes = read_file(dir + "/r.kscope");
  std::vector<Block> blocks = blocks_of(bytes);
  // Eight bytes in the middle of the file, inside the payload of a faults block.
  const uint64_t at = bytes.size() / 2;
  auto hit = std::find_if(blocks.begin(), blocks.end(),
                          [&](const Block& b) { return b.offset + 20 <= at && at + 8 <= b.end; });
  ASSERT_NE(hit, blocks.end());
  ASSERT_EQ(hit->type, 4);
  for (uint64_t i = at; i < at + 8; ++i) bytes[i] = static_cast<char>(~bytes[i]);
  write_bytes(dir + "/bad.kscope", bytes);
  const size_t recovered = data.faults.size() - hit->count;
  const std::string where = fmt::format("bytes {} to {} skipped", hit->offset, hit->end);

  // export csv: every fault of the other blocks, one line each; the loss on stderr.
  auto r =
      run({KSCOPE_BINARY, "export", dir + "/bad.kscope", "--format", "csv", "-o", dir + "/f.csv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(where), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(fmt::format("{} fault records lost", hit->count)), std::string::npos)
      << r.err;
  std::string csv = read_file(dir + "/f.csv");
  EXPECT_EQ(count_of(csv, "\n"), 1 + recovered);
  // report: the page counts the recovered faults.
  r = run({KSCOPE_BINARY, "report", dir + "/bad.kscope", "-o", dir + "/r.html"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(where), std::string::npos) << r.err;
  std::string html = read_file(dir + "/r.html");
  auto page_data = between(html, "id=\"kscope-data\">", "</script>");
  ASSERT_TRUE(page_data);
  EXPECT_EQ(nlohmann::json::parse(*page_data)["n"], recovered);
  // plot and the other exports work too.
  r = run({KSCOPE_BINARY, "plot", dir + "/bad.kscope"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("virtual page"), std::string::npos);
  EXPECT_NE(r.err.find(where), std::string::npos) << r.err;
  for (const char* format : {"jsonl", "sqlite", "pprof", "chrome-trace"}) {
    r = run({KSCOPE_BINARY, "export", dir + "/bad.kscope", "--format", format, "-o",
             dir + "/out." + format});
    EXPECT_EQ(r.exit_code, 0) << format << ": " << r.err;
  }

  // Damage that leaves nothing usable (a recording with one faults block): exit 1, said why.
  SyntheticRecording small = make_synthetic(100);
  small.threads.clear();
  small.mappings.clear();
  small.exits.clear();
  ASSERT_EQ(write_synthetic(dir + "/small.kscope", small), "");
  bytes = read_file(dir + "/small.kscope");
  blocks = blocks_of(bytes);
  ASSERT_EQ(blocks.size(), 3u);
  for (uint64_t i = blocks[1].offset + 30; i < blocks[1].offset + 38; ++i)
    bytes[i] = static_cast<char>(~bytes[i]);
  write_bytes(dir + "/small.kscope", bytes);
  for (const char* cmd : {"plot", "report", "export"}) {
    std::vector<std::string> argv = {KSCOPE_BINARY, cmd, dir + "/small.kscope"};
    if (std::string(cmd) != "plot") argv.insert(argv.end(), {"-o", dir + "/x"});
    if (std::string(cmd) == "export") argv.insert(argv.end(), {"--format", "csv"});
    r = run(argv);
    EXPECT_EQ(r.exit_code, 1) << cmd;
    EXPECT_NE(r.err.find("nothing usable"), std::string::npos) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find(fmt::format("bytes {} to {}", blocks[1].offset, blocks[1].end)),
              std::string::npos)
        << r.err;
  }
  run({"/bin/rm", "-rf", dir});
}

// A top recording with a profile increment per "second" and its thread names, as kscope top
// writes it; returns the on-CPU total of tid 11 at each increment.
std::vector<int64_t> write_top(const std::string& path, int seconds) {
  std::vector<int64_t> totals;
  auto w = TopRecordingWriter::create(path, RecordingMeta{});
  EXPECT_TRUE(w);
  if (!w) return totals;
  EXPECT_TRUE((*w)->add_thread(ThreadInfo{10, 11, "spinner"}));
  ProfileIncrements increments;
  ProfileIncrements::Totals acc;
  ProfileFrame main_frame;
  main_frame.function = "main";
  main_frame.resolved = true;
  uint64_t t = 0;
  for (int s = 0; s < seconds; ++s) {
    for (int i = 0; i < 100; ++i, t += 10'000'000) {
      EXPECT_TRUE((*w)->add_slice(TopSlice{10, 11, 0, t, t + 9'000'000, false, ""}));
      acc[TopAccountKey{10, 11, -1, 1}] += TopValues{9'000'000, 1'000'000, 1, 0, 1};
    }
    StackProfile p;
    p.value_types = top_profile_value_types();  // in the order of TopProfileValues
    p.frames = {main_frame};
    p.duration_ns = t;
    for (const auto& [k, v] : increments.next(acc))
      p.samples.push_back({{0}, std::vector<int64_t>(v.begin(), v.end()), k.pid, k.tid, "spinner"});
    EXPECT_TRUE((*w)->add_profile_increment(p, TopCounters{}));
    totals.push_back(static_cast<int64_t>(acc.begin()->second.oncpu_ns));
  }
  EXPECT_TRUE((*w)->flush());
  return totals;  // no finish(): as after a kill
}

TEST(DamagedRecording, TopRecordingCutInHalfStillReportsAndExports) {
  std::string dir = temp_dir();
  std::vector<int64_t> totals = write_top(dir + "/top.ksr", 6);
  std::string bytes = read_file(dir + "/top.ksr");
  std::string half = bytes.substr(0, bytes.size() / 2);
  write_bytes(dir + "/half.ksr", half);
  size_t increments = 0;
  for (const Block& b : blocks_of(half))
    if (b.end <= half.size() && b.type == kTopBlockProfileIncrement) ++increments;
  ASSERT_GE(increments, 2u);
  const int64_t expected_oncpu = totals[increments - 1];

  auto r = run({KSCOPE_BINARY, "report", dir + "/half.ksr", "-o", dir + "/top.html"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("sum of its " + std::to_string(increments) + " increments"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("no on-CPU time"), std::string::npos) << r.err;
  EXPECT_NE(read_file(dir + "/top.html").find("spinner"), std::string::npos);
  r = run({KSCOPE_BINARY, "export", dir + "/half.ksr", "--format", "csv", "-o", "-"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("\n10,11,spinner,([0-9]+),")));
  EXPECT_EQ(std::stoll(m[1].str()), expected_oncpu);
  r = run({KSCOPE_BINARY, "export", dir + "/half.ksr", "--format", "folded", "-o", "-"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, fmt::format("spinner;main {}\n", expected_oncpu));
  for (const char* format : {"pprof", "chrome-trace", "jsonl", "sqlite"}) {
    r = run({KSCOPE_BINARY, "export", dir + "/half.ksr", "--format", format, "-o",
             dir + "/top." + format});
    EXPECT_EQ(r.exit_code, 0) << format << ": " << r.err;
  }
  run({"/bin/rm", "-rf", dir});
}

TEST(PlotCommand, TopRecordingIsNamedAndPointsToReport) {
  std::string dir = temp_dir();
  write_top(dir + "/top.ksr", 1);
  auto r = run({KSCOPE_BINARY, "plot", dir + "/top.ksr"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is a 'kscope top' recording"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kscope report " + dir + "/top.ksr"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("no faults to plot"), std::string::npos) << r.out;
  run({"/bin/rm", "-rf", dir});
}

TEST(ReportTopPages, PercentagesAreTheRecordingsAndNeverRoundToZero) {
  std::string dir = temp_dir();
  SyntheticRecording data = make_synthetic(20000);  // 5000 heap pages with one fault each
  ASSERT_EQ(write_synthetic(dir + "/r.kscope", data), "");
  auto r = run({KSCOPE_BINARY, "report", dir + "/r.kscope", "-o", dir + "/r.html", "--top", "200"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string html = read_file(dir + "/r.html");
  size_t section = html.find("<section class=\"panel\" id=\"pages\">");
  ASSERT_NE(section, std::string::npos);
  std::string table = html.substr(section, html.find("</section>", section) - section);
  // Faults per (pid, page), computed here from the recording.
  std::map<std::pair<uint32_t, uint64_t>, uint64_t> per_page;
  for (const auto& f : data.faults) ++per_page[{f.pid, f.addr & ~uint64_t{4095}}];
  std::regex row(
      "<tr><td class=\"n\">([0-9,]+)</td><td class=\"n\">([0-9.]+)%</td><td "
      "class=\"n\">[0-9,]+</td><td class=\"mono\">(0x[0-9a-f]+)</td><td>pid ([0-9]+) ");
  size_t rows = 0, below_tenth = 0;
  for (auto it = std::sregex_iterator(table.begin(), table.end(), row);
       it != std::sregex_iterator(); ++it) {
    std::string count = (*it)[1];
    count.erase(std::remove(count.begin(), count.end(), ','), count.end());
    const std::string shown = (*it)[2];
    const uint64_t page = std::stoull((*it)[3].str(), nullptr, 16);
    const uint32_t pid = static_cast<uint32_t>(std::stoul((*it)[4].str()));
    const uint64_t n = per_page.at({pid, page});
    EXPECT_EQ(std::stoull(count), n) << (*it)[3];
    // The percentage is the count's share of all faults, to the precision shown, and a page
    // with a fault never shows as 0.
    const double want = 100.0 * static_cast<double>(n) / static_cast<double>(data.faults.size());
    const size_t decimals = shown.size() - shown.find('.') - 1;
    EXPECT_NEAR(std::stod(shown), want,
                0.5 * std::pow(10.0, -static_cast<double>(decimals)) + 1e-12)
        << shown;
    EXPECT_GT(std::stod(shown), 0.0) << shown;
    if (want < 0.1) {
      ++below_tenth;
      // Two significant digits: 1 of 20000 is 0.0050%.
      EXPECT_EQ(shown.find_first_not_of("0.") + 2, shown.size()) << shown;
    }
    ++rows;
  }
  EXPECT_EQ(rows, 200u);
  EXPECT_GT(below_tenth, 0u) << "the table reaches the pages with a single fault";
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
