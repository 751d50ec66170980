#include "render/report_html.h"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "render/fault_figures.h"
#include "render/fault_summary_text.h"
#include "render/flamegraph.h"
#include "render/html_page.h"
#include "render/svg.h"
#include "render/symbol_sources.h"
#include "symbols/symbolizer.h"
#include "util/gzip.h"

namespace kscope {

namespace {

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// The points, time-sorted, as the compact byte stream report.js decodes (see decodePoints):
// per point varint time delta (ns), zigzag varint address delta, flags byte (segment bits 0-2,
// major bit 3, access bits 4-5, kernel mode bit 6), varint location index, varint process index.
std::string encode_points(const FaultReportModel& m,
                          const std::map<uint32_t, uint32_t>& pid_index) {
  const auto& faults = m.recording->faults;
  std::string out;
  out.reserve(faults.size() * 8);
  uint64_t prev_t = 0, prev_addr = 0;
  for (uint32_t i : m.order) {
    const FaultRecord& f = faults[i];
    put_varint(out, f.time_ns - prev_t);
    prev_t = f.time_ns;
    const auto d = static_cast<int64_t>(f.addr - prev_addr);
    put_varint(out, (static_cast<uint64_t>(d) << 1) ^ static_cast<uint64_t>(d >> 63));
    prev_addr = f.addr;
    uint8_t flags =
        static_cast<uint8_t>(std::min<int>(static_cast<int>(f.segment), kSegmentCount - 1)) |
        (f.kind == FaultKind::kMajor ? 8 : 0) |
        static_cast<uint8_t>((static_cast<int>(f.access) & 3) << 4) |
        (f.mode == FaultMode::kKernel ? 64 : 0);
    out.push_back(static_cast<char>(flags));
    put_varint(out, m.locations.frame_of_fault[i]);
    put_varint(out, pid_index.at(f.pid));
  }
  return out;
}

nlohmann::json axis_json(const std::vector<PageAxisRange>& axis) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& r : axis) a.push_back({r.lo, r.hi, r.rows, r.first_row});
  return a;
}

// part / whole as a percentage with one decimal, or with two significant digits when it is
// below 0.1% (a page with 3 of 10 million faults is "0.000030%", not "0.0%"): a row of a
// top-N table never reads as zero when it is not.
std::string pct(uint64_t part, uint64_t whole) {
  if (!whole) return "-";
  const double p = 100.0 * static_cast<double>(part) / static_cast<double>(whole);
  if (part == 0 || p >= 0.1) return fmt::format("{:.1f}%", p);
  const int decimals = std::min(12, static_cast<int>(std::ceil(-std::log10(p))) + 1);
  return fmt::format("{:.{}f}%", p, decimals);
}

std::string wall_time(uint64_t ns) {
  if (!ns) return "unknown";
  time_t s = static_cast<time_t>(ns / 1000000000ull);
  tm t{};
  gmtime_r(&s, &t);
  char buf[64];
  strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &t);
  return buf;
}

std::string summary_section(const Recording& rec, const FaultReportModel& m) {
  const FaultSummary& s = m.summary;
  std::string o =
      "<section class=\"panel\" id=\"summary\"><h2>Summary</h2><div class=\"tables\">\n";
  const double dur_s = static_cast<double>(m.t_max) / 1e9;
  o += "<table><tr><th colspan=\"3\">faults</th></tr>";
  o += fmt::format("<tr><td>recorded</td><td class=\"n\">{}</td><td></td></tr>",
                   format_count(s.total));
  o += fmt::format("<tr><td>first to last fault</td><td class=\"n\">{}</td><td></td></tr>",
                   format_duration_ns(s.total ? s.last_ns - std::min(s.first_ns, s.last_ns) : 0));
  if (dur_s > 0)
    o += fmt::format("<tr><td>rate</td><td class=\"n\">{}/s</td><td></td></tr>",
                     format_count(static_cast<uint64_t>(static_cast<double>(s.total) / dur_s)));
  o += fmt::format("<tr><td>minor</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                   format_count(s.by_kind[0]), pct(s.by_kind[0], s.total));
  o += fmt::format("<tr><td>major</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                   format_count(s.by_kind[1]), pct(s.by_kind[1], s.total));
  for (int a = 0; a < 3; ++a)
    o += fmt::format("<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                     to_string(static_cast<Access>(a)), format_count(s.by_access[a]),
                     pct(s.by_access[a], s.total));
  o += fmt::format("<tr><td>user mode</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                   format_count(s.by_mode[0]), pct(s.by_mode[0], s.total));
  o += fmt::format("<tr><td>kernel mode</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                   format_count(s.by_mode[1]), pct(s.by_mode[1], s.total));
  o += "</table>\n<table><tr><th colspan=\"3\">by segment</th></tr>";
  for (int i = 0; i < kSegmentCount; ++i)
    o += fmt::format(
        "<tr><td><i class=\"sw\" style=\"background:{}\"></i>{}</td><td class=\"n\">{}</td><td "
        "class=\"n\">{}</td></tr>",
        segment_color(static_cast<Segment>(i)), to_string(static_cast<Segment>(i)),
        format_count(s.by_segment[i]), pct(s.by_segment[i], s.total));
  o += "</table>\n";
  const auto& h = s.latency;
  o += "<table><tr><th colspan=\"2\">latency (entry to resolution)</th></tr>";
  if (h.count()) {
    for (auto [name, q] : {std::pair{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99.9", 0.999}})
      o += fmt::format("<tr><td>{}</td><td class=\"n\">{}</td></tr>", name,
                       format_duration_ns(h.percentile(q)));
    o += fmt::format("<tr><td>max</td><td class=\"n\">{}</td></tr>", format_duration_ns(h.max()));
    o += fmt::format("<tr><td>known for</td><td class=\"n\">{}</td></tr>", format_count(h.count()));
  } else {
    o += "<tr><td colspan=\"2\">no latencies recorded</td></tr>";
  }
  o += "</table></div>\n";

  // Reconciliation with the kernel's own counters: the trailer has the kernel's deltas over the
  // trace for all traced tasks; exit events have each thread's final (absolute) counters.
  o += "<h3>Kernel counters</h3>\n";
  if (rec.trailer) {
    const auto& t = *rec.trailer;
    const uint64_t kernel_total = t.kernel_minflt + t.kernel_majflt;
    uint64_t lost = std::accumulate(t.lost_per_cpu.begin(), t.lost_per_cpu.end(), uint64_t{0});
    o += "<table class=\"wide\"><tr><th>traced tasks, whole trace</th><th>kernel "
         "minflt+majflt</th><th>seen by BPF</th>"
         "<th>recorded</th><th>not seen individually</th><th>ring-buffer records lost</th></tr>\n";
    o += fmt::format(
        "<tr><td>all</td><td class=\"n\">{} (minflt {}, majflt {})</td><td class=\"n\">{}</td><td "
        "class=\"n\">{}</td>"
        "<td class=\"n\">{}</td><td class=\"n\">{}</td></tr></table>\n",
        format_count(kernel_total), format_count(t.kernel_minflt), format_count(t.kernel_majflt),
        format_count(t.faults_seen), format_count(t.faults_recorded),
        kernel_total >= s.total ? format_count(kernel_total - s.total)
                                : "-" + format_count(s.total - kernel_total),
        format_count(lost));
    std::string drops;
    for (const auto& [name, v] : t.drop_counters)
      if (v) drops += fmt::format(" {}: {}.", xml_escape(name), format_count(v));
    if (!drops.empty()) o += "<p>Other drops:" + drops + "</p>\n";
    o += "<p class=\"note\">Faults taken through get_user_pages() (MAP_POPULATE, mlock, "
         "process_vm_readv) "
         "are counted by the kernel but fire no per-fault event, so they show as not seen "
         "individually.</p>\n";
  } else {
    o += "<p class=\"warn\">The recording has no trailer (kscope did not shut down cleanly): the "
         "kernel totals and loss counters are unknown.</p>\n";
  }
  o += "<table class=\"wide\"><tr><th>pid</th><th>process</th><th>recorded</th>"
       "<th>final kernel counters of its exited threads (minflt+majflt, since each thread "
       "started)</th></tr>\n";
  const auto kernel = kernel_counts_by_process(rec);
  std::map<uint32_t, bool> pids;
  for (auto& [pid, n] : s.by_pid) pids[pid] = true;
  for (auto& [pid, k] : kernel) pids[pid] = true;
  for (auto& [pid, unused] : pids) {
    auto seen_it = s.by_pid.find(pid);
    uint64_t seen = seen_it == s.by_pid.end() ? 0 : seen_it->second;
    auto name_it = m.process_names.find(pid);
    auto k = kernel.find(pid);
    std::string kern = "-";
    if (k != kernel.end())
      kern = fmt::format("{} (minflt {}, majflt {}; {} threads)",
                         format_count(k->second.minflt + k->second.majflt),
                         format_count(k->second.minflt), format_count(k->second.majflt),
                         k->second.threads);
    o += fmt::format(
        "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td "
        "class=\"n\">{}</td></tr>\n",
        pid, xml_escape(name_it == m.process_names.end() ? "?" : name_it->second),
        format_count(seen), kern);
  }
  o += "</table>\n";
  o += "</section>\n";
  return o;
}

std::string top_table(const char* id, const char* heading, const char* label_col,
                      const char* detail_col, const std::vector<TopEntry>& rows, uint64_t total) {
  std::string o = fmt::format(
      "<section class=\"panel\" id=\"{}\"><h2>{}</h2>\n<table class=\"wide\"><tr><th>faults</th>"
      "<th>%</th><th>major</th><th>{}</th><th>{}</th></tr>\n",
      id, heading, label_col, detail_col);
  for (const auto& r : rows)
    o += fmt::format(
        "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td "
        "class=\"mono\">{}</td><td>{}</td></tr>\n",
        format_count(r.count), pct(r.count, total), format_count(r.major), xml_escape(r.label),
        xml_escape(r.detail));
  o += "</table></section>\n";
  return o;
}

std::string scatter_panel(const std::string& id, const std::string& heading, int segment,
                          int height) {
  return fmt::format(
      "<div class=\"scatter\" id=\"{0}\" data-segment=\"{1}\" data-height=\"{2}\"><h3>{3}</h3>"
      "<div class=\"sc-bar\"><button class=\"sc-reset\">reset zoom</button> <span "
      "class=\"sc-mode\"></span>"
      " <span class=\"sc-range\"></span></div><div class=\"sc-wrap\"><canvas "
      "class=\"sc-canvas\"></canvas>"
      "<div class=\"tip\"></div></div></div>\n",
      id, segment, height, xml_escape(heading));
}

}  // namespace

Result<ReportOutput> build_fault_report(const Recording& rec, const ReportOptions& options,
                                        Symbolizer& symbolizer, bool want_svg) {
  ReportOutput out;
  FaultReportModel m = build_fault_report_model(rec, symbolizer);
  const std::string title =
      options.title.empty() ? "kscope report: " + options.source_path : options.title;

  std::string body;
  body += fmt::format("<header><h1>{}</h1>\n", xml_escape(title));
  std::string argv;
  for (const auto& a : rec.meta.command_line) argv += (argv.empty() ? "" : " ") + a;
  body += fmt::format(
      "<p class=\"meta\">faults recording · <span class=\"mono\">{}</span><br>host {} · kernel {} "
      "· "
      "started {} · kscope {}</p>\n",
      xml_escape(argv), xml_escape(rec.meta.hostname), xml_escape(rec.meta.kernel_release),
      wall_time(rec.meta.start_wall_ns), xml_escape(rec.meta.kscope_version));
  if (!rec.summary.warning.empty())
    body += fmt::format("<p class=\"warn\">{}</p>\n", xml_escape(rec.summary.warning));
  body +=
      "<nav><a href=\"#summary\">summary</a> <a href=\"#scatter\">scatter</a> <a "
      "href=\"#segments\">segments</a> "
      "<a href=\"#cumulative\">cumulative</a> <a href=\"#latency\">latency</a> <a "
      "href=\"#functions\">functions</a> "
      "<a href=\"#pages\">pages</a> <a href=\"#flame-section\">flame graph</a> <a "
      "href=\"#symbol-sources\">symbol sources</a></nav></header>\n";

  if (rec.faults.empty()) {
    body +=
        "<section class=\"panel\"><p class=\"empty\" id=\"no-faults\">no faults "
        "recorded</p></section>\n";
    body += summary_section(rec, m);
    body += json_script("kscope-data", {{"n", 0}});
    out.html = html_page(title, body);
    if (want_svg) out.figures.push_back({"scatter", scatter_svg(m, std::nullopt)});
    return out;
  }

  body += summary_section(rec, m);

  // Interactive scatter panels: all faults, then one per non-empty segment.
  body +=
      "<section class=\"panel\" id=\"scatter\"><h2>Faults over time</h2>\n<p class=\"note\">Time "
      "on X, "
      "virtual page on Y with the gaps between faulting ranges cut out (dashed lines, labelled "
      "with the "
      "size cut), as in the terminal plot. Colour: segment; black ring: major fault. Wheel: zoom "
      "(shift: time only, alt: address only); drag: pan; double-click: reset. Above " +
      format_count(options.density_threshold) +
      " points in view the plot switches to a density heatmap.</p>\n";
  body += scatter_panel("sc-all", "all segments", -1, 440);
  body +=
      "</section>\n<section class=\"panel\" id=\"segments\"><h2>Per segment</h2><div "
      "class=\"grid\">\n";
  for (int s = 0; s < kSegmentCount; ++s) {
    if (!m.summary.by_segment[s]) continue;
    body += scatter_panel(fmt::format("sc-{}", to_string(static_cast<Segment>(s))),
                          fmt::format("{} ({} faults)", to_string(static_cast<Segment>(s)),
                                      format_count(m.summary.by_segment[s])),
                          s, 260);
  }
  body += "</div></section>\n";

  const std::string cum_proc = cumulative_by_process_svg(m), cum_kind = cumulative_by_kind_svg(m);
  const std::string latency = latency_histogram_svg(m), top_fn_svg = top_functions_svg(m, 15);
  body +=
      "<section class=\"panel\" id=\"cumulative\"><h2>Cumulative faults</h2><div "
      "class=\"grid\">\n" +
      cum_proc + cum_kind + "</div></section>\n";
  body +=
      "<section class=\"panel\" id=\"latency\"><h2>Fault latency</h2>\n" + latency + "</section>\n";
  body += "<section class=\"panel\" id=\"functions-chart\"><h2>Top faulting functions</h2>\n" +
          top_fn_svg + "</section>\n";
  body += top_table("functions", "Top faulting functions (table)", "function", "module",
                    top_functions(m, options.top), m.summary.total);
  body += top_table("pages", "Top faulted pages", "page address",
                    "process · segment · last faulting location", top_pages(m, options.top),
                    m.summary.total);

  StackProfile profile = fault_stack_profile(rec, m.locations);
  FlameGraphOptions fg;
  fg.id = "flame";
  if (!m.locations.chains.empty()) {
    fg.title = "Faults by call stack";
    fg.note =
        "A flame graph of fault counts by full call stack (kscope faults --stacks): process, "
        "then the user frames from the outermost to the one that faulted, then the kernel frames "
        "of faults taken in the kernel. A stack the walker could not finish ends in a frame "
        "'[incomplete: REASON]' at its root. Click a frame to zoom, search with a regex.";
  } else {
    fg.title = "Faults by process and function";
    fg.note =
        "A flame graph of fault counts: process, then the function that faulted (recorded "
        "without --stacks, so each stack is one frame). Click a frame to zoom, search with a "
        "regex.";
  }
  body += render_flamegraph_section(profile, fg);
  const SymbolSourcesView sources = symbol_sources_view(rec, symbolizer);
  body += symbol_sources_html(sources);

  // Page data for report.js.
  std::map<uint32_t, uint32_t> pid_index;
  nlohmann::json pids = nlohmann::json::array(), comms = nlohmann::json::array();
  for (const auto& [pid, n] : m.summary.by_pid) {
    pid_index[pid] = static_cast<uint32_t>(pid_index.size());
    pids.push_back(pid);
    auto it = m.process_names.find(pid);
    comms.push_back(it == m.process_names.end() ? "?" : it->second);
  }
  KSCOPE_ASSIGN_OR_RETURN(std::string packed, gzip_compress(encode_points(m, pid_index), 6));
  nlohmann::json segs = nlohmann::json::array(), colors = nlohmann::json::array(),
                 seg_axes = nlohmann::json::array();
  for (int s = 0; s < kSegmentCount; ++s) {
    segs.push_back(std::string(to_string(static_cast<Segment>(s))));
    colors.push_back(std::string(segment_color(static_cast<Segment>(s))));
    seg_axes.push_back(axis_json(m.segment_axis[s]));
  }
  nlohmann::json data = {
      {"n", rec.faults.size()},
      {"t_max", m.t_max},
      {"segments", segs},
      {"colors", colors},
      {"locations", m.location_labels},
      {"pids", pids},
      {"comms", comms},
      {"axis", axis_json(m.axis)},
      {"segment_axes", seg_axes},
      {"density_threshold", options.density_threshold},
      {"points", base64_encode(packed)},
      {"symbol_sources", symbol_sources_json(sources)},
  };
  body += json_script("kscope-data", data);
  out.html = html_page(title, body);

  if (want_svg) {
    out.figures.push_back({"scatter", scatter_svg(m, std::nullopt)});
    for (int s = 0; s < kSegmentCount; ++s)
      if (m.summary.by_segment[s])
        out.figures.push_back({fmt::format("scatter_{}", to_string(static_cast<Segment>(s))),
                               scatter_svg(m, static_cast<Segment>(s))});
    out.figures.push_back({"cumulative_by_process", cum_proc});
    out.figures.push_back({"cumulative_by_kind", cum_kind});
    out.figures.push_back({"latency_histogram", latency});
    out.figures.push_back({"top_functions", top_fn_svg});
    out.figures.push_back({"flamegraph", render_flamegraph_svg(profile, fg)});
  }
  return out;
}

Result<std::string> build_fault_report_html(const Recording& recording,
                                            const ReportOptions& options) {
  Symbolizer symbolizer;
  KSCOPE_ASSIGN_OR_RETURN(ReportOutput out,
                          build_fault_report(recording, options, symbolizer, false));
  return std::move(out.html);
}

}  // namespace kscope
