#include "render/top_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "model/top_model.h"
#include "model/top_profile.h"
#include "render/flamegraph.h"
#include "render/html_page.h"
#include "render/svg.h"

namespace kscope {

namespace {

// A horizontal bar chart of one value per task (the top `n`), standalone SVG.
std::string bar_chart_svg(const std::vector<TopTaskTotal>& tasks, const std::string& title,
                          const std::string& unit_label, uint64_t (*value)(const TopTaskTotal&),
                          bool as_time, size_t n) {
  std::vector<const TopTaskTotal*> rows;
  for (const auto& t : tasks)
    if (value(t) > 0) rows.push_back(&t);
  std::sort(rows.begin(), rows.end(),
            [&](const auto* a, const auto* b) { return value(*a) > value(*b); });
  if (rows.size() > n) rows.resize(n);
  const int width = 760, left = 230, right = 90, top = 40, bar = 18, gap = 6;
  const int height = top + static_cast<int>(std::max<size_t>(rows.size(), 1)) * (bar + gap) + 40;
  std::string o = svg_open(width, height, title);
  o += fmt::format("<text x=\"{}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n", 10,
                   xml_escape(title));
  if (rows.empty()) {
    o +=
        fmt::format("<text x=\"10\" y=\"{}\" font-size=\"13\">nothing recorded</text>\n", top + 14);
    return o + std::string(kSvgClose);
  }
  double max = static_cast<double>(value(*rows.front()));
  int y = top;
  for (const auto* t : rows) {
    double w = max > 0 ? (width - left - right) * static_cast<double>(value(*t)) / max : 0;
    std::string label = fmt::format("{} [{}/{}]", t->comm, t->pid, t->tid);
    std::string v = as_time ? format_duration_ns(value(*t)) : format_count(value(*t));
    o += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{}</text>\n",
                     left - 6, y + bar - 5, xml_escape(label));
    o += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"#4e79a7\"><title>{}: "
        "{}</title></rect>\n",
        left, y, std::max(w, 1.0), bar, xml_escape(label), v);
    o += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"12\">{}</text>\n", left + w + 4,
                     y + bar - 5, v);
    y += bar + gap;
  }
  o += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n",
                   left + (width - left - right) / 2, height - 10, xml_escape(unit_label));
  return o + std::string(kSvgClose);
}

enum class OverTime { kSwitches, kRunq, kOffCpu };

// Switches, run-queue wait or off-CPU time per refresh interval (all traced tasks), as a line
// chart.
std::string over_time_svg(const std::vector<TopInterval>& intervals, OverTime what) {
  const bool runq = what != OverTime::kSwitches;  // a time, not a count
  const std::string title =
      what == OverTime::kRunq ? "Run-queue wait per interval (all traced tasks)"
      : what == OverTime::kOffCpu
          ? "Off-CPU time per interval (all traced tasks; exact, ended in the interval)"
          : "Context switches per interval (all traced tasks)";
  const int width = 760, height = 260, left = 70, right = 20, top = 36, bottom = 40;
  std::string o = svg_open(width, height, title);
  o += fmt::format("<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
                   xml_escape(title));
  std::vector<std::pair<double, double>> pts;
  for (const auto& iv : intervals) {
    uint64_t v = 0;
    for (const auto& r : iv.rows)
      v += what == OverTime::kRunq     ? r.values.runq_wait_ns
           : what == OverTime::kOffCpu ? r.values.offcpu_ns
                                       : r.values.switches;
    pts.emplace_back(static_cast<double>(iv.end_ns), static_cast<double>(v));
  }
  double xmax = 1, ymax = 1;
  for (auto [x, y] : pts) xmax = std::max(xmax, x), ymax = std::max(ymax, y);
  auto X = [&](double x) { return left + (width - left - right) * x / xmax; };
  auto Y = [&](double y) { return height - bottom - (height - top - bottom) * y / ymax; };
  o += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n", left,
                   height - bottom, width - right, height - bottom);
  o += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n", left, top,
                   left, height - bottom);
  for (int i = 0; i <= 4; ++i) {
    double yv = ymax * i / 4, xv = xmax * i / 4;
    o += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n",
                     left - 4, Y(yv) + 4, runq ? format_time_label(yv) : format_short_count(yv));
    o += fmt::format(
        "<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n", X(xv),
        height - bottom + 14, format_time_label(xv));
  }
  o += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">time since start</text>\n",
      left + (width - left - right) / 2, height - 6);
  std::string path;
  for (auto [x, y] : pts)
    path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", X(x), Y(y));
  if (!path.empty())
    o +=
        fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"#e15759\" stroke-width=\"2\"/>\n", path);
  for (auto [x, y] : pts)
    o += fmt::format(
        "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"#e15759\"><title>{}: "
        "{}</title></circle>\n",
        X(x), Y(y), format_time_label(x), runq ? format_time_label(y) : format_short_count(y));
  return o + std::string(kSvgClose);
}

}  // namespace

std::vector<TopTaskTotal> top_task_totals(const StackProfile& profile) {
  std::map<std::pair<uint32_t, uint32_t>, TopTaskTotal> by;
  for (const auto& s : profile.samples) {
    auto& t = by[{s.pid, s.tid}];
    t.pid = s.pid;
    t.tid = s.tid;
    t.comm = s.comm;
    t.values += top_values_of(profile, s);
  }
  // A profile of an older kscope top has no on-CPU by stack, only slice time, whose sum per
  // thread is the same exact on-CPU total.
  bool has_oncpu = profile.value_index(top_profile::kOnCpu).has_value();
  std::vector<TopTaskTotal> out;
  for (auto& [k, t] : by) {
    if (!has_oncpu) t.values.oncpu_ns = t.values.slice_ns;
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    if (a.values.oncpu_ns != b.values.oncpu_ns) return a.values.oncpu_ns > b.values.oncpu_ns;
    return std::tie(a.pid, a.tid) < std::tie(b.pid, b.tid);
  });
  return out;
}

Result<ReportOutput> build_top_report(const TopRecording& rec, const ReportOptions& options,
                                      bool want_svg) {
  ReportOutput out;
  std::string title =
      options.title.empty() ? "kscope report: " + options.source_path : options.title;
  std::string body = fmt::format(
      "<header><h1>{}</h1><p class=\"note\">kscope top recording, host {}, kernel {}, {} "
      "measured</p>"
      "<nav><a href=\"#fg-oncpu-section\">flame graphs</a> <a href=\"#tasks\">tasks</a> "
      "<a href=\"#switches\">switches and run-queue wait</a></nav></header>\n",
      xml_escape(title), xml_escape(rec.meta.hostname), xml_escape(rec.meta.kernel_release),
      format_duration_ns(rec.profile.duration_ns));
  if (!rec.has_profile) {
    body +=
        "<section class=\"panel\"><p class=\"empty\">this recording has no profile: kscope "
        "top did not shut down cleanly and no profile increment survived; only the slices and "
        "intervals written before are available</p></section>\n";
  } else if (rec.profile_from_increments) {
    body += fmt::format(
        "<section class=\"panel\"><p class=\"note\" id=\"from-increments\">kscope top did not "
        "shut down cleanly: this profile is the sum of the {} per-second increments it wrote, "
        "covering the first {} of the run</p></section>\n",
        rec.increments, format_duration_ns(rec.profile.duration_ns));
  }
  if (!rec.summary.damage.empty() || rec.summary.truncated) {
    std::string items;
    for (const auto& d : rec.summary.damage)
      items += fmt::format("<li>bytes {} to {} skipped: {}</li>", d.offset, d.resumed_at,
                           xml_escape(d.reason));
    if (rec.summary.truncated)
      items +=
          fmt::format("<li>the file ends inside a block at byte {}</li>", rec.summary.truncated_at);
    body +=
        "<section class=\"panel\" id=\"damage\"><h2>Damage</h2><ul>" + items + "</ul></section>\n";
  }
  const TopCounters& c = rec.counters;
  body += fmt::format(
      "<section class=\"panel\" id=\"summary\"><h2>Summary</h2><table>"
      "<tr><th>context switches (all CPUs)</th><td>{}</td></tr>"
      "<tr><th>switch-outs of traced tasks</th><td>{}</td></tr>"
      "<tr><th>lost (stack collisions, accounts full, storage, ring buffer)</th><td>{}</td></tr>"
      "<tr><th>kernel / user stack collisions</th><td>{} / {}</td></tr>"
      "<tr><th>slices recorded</th><td>{}</td></tr></table></section>\n",
      format_count(c.switches_total), format_count(c.tracked_switches), format_count(c.lost()),
      c.kstack_collisions, c.ustack_collisions, format_count(rec.slices.size()));
  auto tasks = top_task_totals(rec.profile);
  if (tasks.empty()) {
    body +=
        "<section class=\"panel\"><p class=\"empty\" id=\"no-samples\">no on-CPU time "
        "recorded</p></section>\n";
    out.html = html_page(title, body);
    return out;
  }
  // Two questions, two flame graphs: where the CPU went (sampled, scaled to exact per-thread
  // totals) and where threads left the CPU (exact, by switch-out stack).
  std::vector<FlameGraphOptions> graphs;
  // A flame graph of the profile's `value`, when the profile has that value.
  auto add_graph = [&](const char* value, std::string graph_title, std::string id,
                       std::string note) {
    auto index = rec.profile.value_index(value);
    if (!index) return;
    FlameGraphOptions fg;
    fg.title = std::move(graph_title);
    if (!id.empty()) fg.id = std::move(id);
    fg.value_index = *index;
    fg.note = std::move(note);
    graphs.push_back(std::move(fg));
  };
  add_graph(top_profile::kOnCpu,
            "On-CPU time by stack (sampled, scaled to exact per-thread totals)", "fg-oncpu",
            "Width: each thread's exact on-CPU ns (kernel counters) split over its stacks by the "
            "share of cpu-clock samples they got; kernel and user frames coloured apart; click to "
            "zoom, search to highlight.");
  add_graph(top_profile::kOffCpu, "Off-CPU time by switch-out stack (exact)", "fg-offcpu",
            "Width: ns from each switch-out to the next switch-in (blocked and run-queue wait), by "
            "the stack the thread had when it left the CPU.");
  if (graphs.empty())
    add_graph(top_profile::kSlice, "CPU time of the slices that ended at each switch-out stack", "",
              "A recording of an older kscope top: it has no on-CPU time by stack, only the CPU "
              "time of each slice charged to the stack it switched out at (not where the CPU "
              "went).");
  for (const auto& fg : graphs) body += render_flamegraph_section(rec.profile, fg);

  body +=
      "<section class=\"panel\" id=\"tasks\"><h2>Tasks</h2><table "
      "class=\"wide\"><tr><th>pid</th><th>tid</th><th>comm</th>"
      "<th>on-CPU</th><th>schedule-ins</th><th>voluntary</th><th>involuntary</th><th>avg "
      "slice</th><th>run-queue wait</th></tr>\n";
  size_t shown = 0;
  for (const auto& t : tasks) {
    if (shown++ >= std::max<size_t>(options.top, 1) * 4) break;
    uint64_t outs = t.values.voluntary + t.values.involuntary;
    body += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</"
        "td><td>{}</td></tr>\n",
        t.pid, t.tid, xml_escape(t.comm), format_duration_ns(t.values.oncpu_ns), t.values.switches,
        t.values.voluntary, t.values.involuntary,
        format_duration_ns(outs ? t.values.oncpu_ns / outs : t.values.oncpu_ns),
        format_duration_ns(t.values.runq_wait_ns));
  }
  body += "</table></section>\n";

  std::string sw = bar_chart_svg(
      tasks, "Schedule-ins per task", "schedule-ins",
      [](const TopTaskTotal& t) { return t.values.switches; }, false, options.top);
  std::string rq = bar_chart_svg(
      tasks, "Run-queue wait per task", "time runnable but waiting for a CPU",
      [](const TopTaskTotal& t) { return t.values.runq_wait_ns; }, true, options.top);
  body +=
      "<section class=\"panel\" id=\"switches\"><h2>Switches and run-queue wait</h2><div "
      "class=\"grid\">\n" +
      sw + rq;
  std::string sw_t, rq_t, off_t;
  if (rec.intervals.size() > 1) {
    sw_t = over_time_svg(rec.intervals, OverTime::kSwitches);
    rq_t = over_time_svg(rec.intervals, OverTime::kRunq);
    body += sw_t + rq_t;
    // Recordings before 1.2 did not keep it per interval: no chart rather than a flat zero.
    if (std::all_of(rec.intervals.begin(), rec.intervals.end(),
                    [](const TopInterval& iv) { return iv.has_offcpu; })) {
      off_t = over_time_svg(rec.intervals, OverTime::kOffCpu);
      body += off_t;
    }
  }
  body += "</div></section>\n";
  out.html = html_page(title, body);
  if (want_svg) {
    for (const auto& fg : graphs)
      out.figures.push_back({fg.id == "fg-offcpu" ? "flamegraph_offcpu" : "flamegraph",
                             render_flamegraph_svg(rec.profile, fg)});
    out.figures.push_back({"switches_per_task", sw});
    out.figures.push_back({"runq_wait_per_task", rq});
    if (!sw_t.empty()) {
      out.figures.push_back({"switches_over_time", sw_t});
      out.figures.push_back({"runq_wait_over_time", rq_t});
    }
    if (!off_t.empty()) out.figures.push_back({"offcpu_over_time", off_t});
  }
  return out;
}

}  // namespace kscope
