// kscope study thrashing: CPU utilization, completion time and major faults against the number
// of concurrent processes under a memory limit with swap.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "render/svg_chart.h"
#include "study/experiment.h"
#include "study/pressure.h"
#include "study/studies.h"
#include "trace/proc.h"

namespace kscope::study {

Result<int> run_thrashing(const ThrashingOptions& o, const volatile sig_atomic_t* stop) {
  KSCOPE_ASSIGN_OR_RETURN(auto ns, proc::parse_pid_list(o.n_list));  // positive integers
  if (o.mb < 1 || o.accesses < 1 || o.iterations < 1 || o.limit_mb < 8)
    return usage_error("--mb, --accesses and --iterations must be positive, --limit-mb >= 8");
  for (auto n : ns)
    if (n > 512) return usage_error("--n: at most 512 processes per step");
  if (o.swap != "auto" && o.swap != "zram" && o.swap != "file")
    return usage_error("--swap must be auto, zram or file");
  if (o.period_ms < 1 || o.period_ms > 60000) return usage_error("--period-ms must be 1..60000");
  if (::geteuid() != 0)
    return make_error(
        "kscope study thrashing needs root: it creates a memory cgroup and enables "
        "swap for the run",
        0, "run it with sudo");
  KSCOPE_TRY(ensure_out_dir(o.out));
  KSCOPE_ASSIGN_OR_RETURN(auto programs, find_study_programs(o.work));
  uint64_t max_n = *std::max_element(ns.begin(), ns.end());
  uint64_t swap_mb = o.swap_mb ? o.swap_mb : max_n * o.mb + 512;
  Pressure::recover_leftovers();
  Pressure pressure;
  KSCOPE_TRY(pressure.setup(o.limit_mb, swap_mb, o.swap));
  std::fprintf(stderr, "kscope: study thrashing: %s\n", pressure.describe().c_str());
  long ncpu = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1) ncpu = 1;

  struct Point {
    int n;
    double wall_s;
    double util_monitor;  // mean aggregate cpu_util / ncpu, percent
    double util_self;     // sum of workers' own CPU / (wall * ncpu), percent
    double util_user;     // the same, user-mode time only: the work itself
    uint64_t maj, min;
    int failed;
    std::string failed_status;  // exit statuses of the failed workers
  };
  std::vector<Point> points;
  std::string table =
      "n,completion_s,cpu_util_pct,cpu_util_self_reported_pct,user_cpu_util_pct,maj_faults,"
      "min_faults,failed\n";
  for (pid_t n : ns) {
    std::vector<WorkerSpec> specs;
    for (int i = 0; i < n; ++i)
      specs.push_back({fmt::format("w{}", i),
                       {"--mb", std::to_string(o.mb), "--pattern", "random", "--accesses",
                        std::to_string(o.accesses), "--iterations", std::to_string(o.iterations),
                        "--seed", std::to_string(i + 1)}});
    std::fprintf(stderr, "kscope: study thrashing: N=%d ...\n", n);
    KSCOPE_ASSIGN_OR_RETURN(
        auto r, run_experiment(o.out, fmt::format("thrashing-n{}", n), programs, specs, o.period_ms,
                               pressure.procs_file(), stop));
    Point p{n, r.wall_s, 0, 0, 0, 0, 0, 0};
    double cpu_ms = 0, user_ms = 0;
    for (const auto& w : r.workers) {
      user_ms += w.user_ms;
      p.maj += w.maj_faults;
      p.min += w.min_faults;
      cpu_ms += w.cpu_ms;
      if (w.exit_status != 0) {
        ++p.failed;
        p.failed_status += (p.failed_status.empty() ? "" : ", ") + std::to_string(w.exit_status);
      }
    }
    // Mean of the aggregate utilization over the active interval: from the first period with
    // CPU use to the last (the workers are registered before they start, so the first rows are
    // idle waiting for the start signal, and the last ones are exit teardown).
    std::vector<double> agg;
    for (const auto& row : r.rows)
      if (row.pid == "all") agg.push_back(row.cpu_util);
    size_t first = 0, last = agg.size();
    while (first < agg.size() && agg[first] <= 0) ++first;
    while (last > first && agg[last - 1] <= 0) --last;
    double sum = 0;
    for (size_t i = first; i < last; ++i) sum += agg[i];
    p.util_monitor = last > first ? 100.0 * sum / static_cast<double>(last - first) / ncpu : 0;
    p.util_self = r.wall_s > 0 ? 100.0 * cpu_ms / 1e3 / r.wall_s / ncpu : 0;
    p.util_user = r.wall_s > 0 ? 100.0 * user_ms / 1e3 / r.wall_s / ncpu : 0;
    points.push_back(p);
    table += fmt::format("{},{:.3f},{:.1f},{:.1f},{:.1f},{},{},{}\n", p.n, p.wall_s, p.util_monitor,
                         p.util_self, p.util_user, p.maj, p.min, p.failed);
    std::fprintf(stderr,
                 "kscope: study thrashing: N=%d done in %.2f s, CPU %.1f%%, %llu major faults%s\n",
                 n, p.wall_s, p.util_monitor, static_cast<unsigned long long>(p.maj),
                 p.failed ? " (some workers failed)" : "");
  }
  pressure.restore();
  KSCOPE_TRY(write_output(o.out + "/thrashing.csv", table));

  ChartSeries util{"CPU utilization (monitor samples)", {}, true, false};
  ChartSeries util_self{"CPU utilization (workers' own getrusage)", {}, true, true};
  ChartSeries util_user{"user-mode CPU utilization: the work itself (getrusage)", {}, true, false};
  ChartSeries wall{"completion time of all N processes", {}, true, false};
  ChartSeries maj{"major faults, all processes", {}, true, false};
  for (const auto& p : points) {
    util.points.emplace_back(p.n, p.util_monitor);
    util_self.points.emplace_back(p.n, p.util_self);
    util_user.points.emplace_back(p.n, p.util_user);
    wall.points.emplace_back(p.n, p.wall_s);
    maj.points.emplace_back(p.n, static_cast<double>(p.maj));
  }
  ChartOptions co;
  co.x_from_zero = true;
  co.x_label = "concurrent processes N";
  co.title = fmt::format("Thrashing: total CPU utilization vs N ({} MiB each, {} MiB limit)", o.mb,
                         o.limit_mb);
  co.y_label = fmt::format("CPU utilization (% of {} CPUs)", ncpu);
  KSCOPE_TRY(write_output(o.out + "/thrashing-cpu.svg",
                          render_svg_chart({util, util_self, util_user}, co)));
  co.title = "Thrashing: completion time vs N";
  co.y_label = "completion time (s)";
  KSCOPE_TRY(write_output(o.out + "/thrashing-time.svg", render_svg_chart({wall}, co)));
  co.title = "Thrashing: major faults vs N";
  co.y_label = "major faults (count)";
  KSCOPE_TRY(write_output(o.out + "/thrashing-faults.svg", render_svg_chart({maj}, co)));

  std::string md = "# Thrashing study\n\n";
  md += fmt::format(
      "N concurrent `kscope-work --mb {} --pattern random --accesses {} --iterations {}` for N = "
      "{}, in a {} (set up by the study and removed afterwards). Sampled by `kscope monitor` every "
      "{} ms. {} CPUs online.\n\n",
      o.mb, o.accesses, o.iterations, o.n_list, pressure.describe(), o.period_ms, ncpu);
  md +=
      "| N | completion (s) | CPU utilization, monitor (% of all CPUs) | same, workers' getrusage "
      "| user-mode part | major faults | minor faults | failed |\n"
      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const auto& p : points)
    md += fmt::format("| {} | {:.2f} | {:.1f} | {:.1f} | {:.1f} | {} | {} | {} |\n", p.n, p.wall_s,
                      p.util_monitor, p.util_self, p.util_user, p.maj, p.min, p.failed);
  md +=
      "\n![CPU utilization](thrashing-cpu.svg)\n\n![completion time](thrashing-time.svg)\n\n"
      "![major faults](thrashing-faults.svg)\n\n";
  // Where it peaks and where it collapses (below 70% of the peak), for total and user-mode CPU.
  auto describe = [&](const char* what, double Point::*field) {
    auto peak = std::max_element(points.begin(), points.end(), [&](const Point& a, const Point& b) {
      return a.*field < b.*field;
    });
    std::string out = fmt::format("{} peaks at N = {} ({:.1f}%)", what, peak->n, (*peak).*field);
    auto after = std::find_if(peak, points.end(),
                              [&](const Point& p) { return p.*field < 0.7 * ((*peak).*field); });
    if (after != points.end())
      out += fmt::format(" and collapses at N = {} ({:.1f}%, {:.0f}% of the peak; {} major faults)",
                         after->n, (*after).*field, 100 * ((*after).*field) / ((*peak).*field),
                         after->maj);
    else
      out += " and does not fall below 70% of the peak within the N measured";
    return out + ".";
  };
  md += describe("Total CPU utilization (monitor)", &Point::util_monitor) + " " +
        describe("User-mode CPU utilization, the workers' actual work,", &Point::util_user) + "\n";
  for (const auto& p : points)
    if (p.failed)
      md += fmt::format(
          "\nAt N = {}, {} worker(s) did not finish normally (exit status {}; 137 = killed by "
          "SIGKILL, here the cgroup's OOM killer when reclaim cannot keep up): their own counts "
          "are missing from the totals, the monitor's samples still have them.\n",
          p.n, p.failed, p.failed_status);
  auto fastest = points.front();
  auto slowest = points.back();
  if (points.size() > 1 && fastest.n > 0 && slowest.n > 0)
    md += fmt::format(
        "\nCompletion time per process-worth of work: {:.3f} s at N = {}, {:.3f} s at N = {} "
        "({:.0f}x).\n",
        fastest.wall_s / fastest.n, fastest.n, slowest.wall_s / slowest.n, slowest.n,
        fastest.wall_s > 0 ? (slowest.wall_s / slowest.n) / (fastest.wall_s / fastest.n) : 0.0);
  md +=
      "\nUtilization is the workers' user+system CPU time divided by wall time and by the "
      "number of CPUs. Reclaiming and swapping a process's pages (including zram compression "
      "and decompression) is done by the kernel in that process's context and counted as its "
      "system time: with swap on zram the CPUs stay busy under thrashing, but with the kernel's "
      "paging rather than the work. The user-mode part is what collapses, together with the "
      "completion time.\n";
  KSCOPE_TRY(write_output(o.out + "/thrashing.md", md));
  std::fputs(md.c_str(), stdout);
  return 0;
}

}  // namespace kscope::study
