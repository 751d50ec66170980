// kscope study locality: random vs locality access with the same size and number of accesses.
#include <fmt/format.h>

#include <cstdio>

#include "render/svg_chart.h"
#include "study/experiment.h"
#include "study/studies.h"

namespace kscope::study {

Result<int> run_locality(const LocalityOptions& o, const volatile sig_atomic_t* stop) {
  if (o.mb < 1 || o.accesses_a < 1 || o.accesses_b < 1 || o.iterations < 1)
    return usage_error("--mb, --accesses-a, --accesses-b and --iterations must be positive");
  if (o.period_ms < 1 || o.period_ms > 60000) return usage_error("--period-ms must be 1..60000");
  KSCOPE_TRY(ensure_out_dir(o.out));
  KSCOPE_ASSIGN_OR_RETURN(auto programs, find_study_programs(o.work));
  auto spec = [&](const std::string& tag, const char* pattern, uint64_t acc) {
    return WorkerSpec{fmt::format("{}: {} {} MB x {}", tag, pattern, o.mb, acc),
                      {"--mb", std::to_string(o.mb), "--pattern", pattern, "--accesses",
                       std::to_string(acc), "--iterations", std::to_string(o.iterations)}};
  };
  std::vector<std::vector<WorkerSpec>> runs = {
      {spec("A", "random", o.accesses_a), spec("B", "random", o.accesses_b)},
      {spec("A", "random", o.accesses_a), spec("B", "locality", o.accesses_b)}};
  std::vector<RunResult> results;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::fprintf(stderr, "kscope: study locality: run %zu of 2 (%s + %s)\n", i + 1,
                 runs[i][0].label.c_str(), runs[i][1].label.c_str());
    KSCOPE_ASSIGN_OR_RETURN(auto r, run_experiment(o.out, fmt::format("locality-run{}", i + 1),
                                                   programs, runs[i], o.period_ms, "", stop));
    results.push_back(std::move(r));
  }
  std::string md = "# Locality study\n\n";
  md += fmt::format(
      "Two runs of two concurrent `kscope-work` processes each, sampled by `kscope monitor` "
      "every {} ms; {} iterations per process. Run 1: {} and {}. Run 2: {} and {}.\n\n",
      o.period_ms, o.iterations, runs[0][0].label, runs[0][1].label, runs[1][0].label,
      runs[1][1].label);
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    std::vector<ChartSeries> series;
    for (const auto& w : r.workers) {
      series.push_back(cumulative(r.rows, std::to_string(w.pid), w.label + " - minor", false));
    }
    for (const auto& w : r.workers)
      series.push_back(cumulative(r.rows, std::to_string(w.pid), w.label + " - major", true));
    ChartOptions co;
    co.title = fmt::format("Locality study, run {}: cumulative page faults", i + 1);
    co.x_label = "time since the monitor started (s)";
    co.y_label = "cumulative faults (count)";
    co.x_from_zero = true;
    KSCOPE_TRY(write_output(fmt::format("{}/locality-run{}.svg", o.out, i + 1),
                            render_svg_chart(series, co)));
    md += fmt::format("## Run {}\n\n![run {}](locality-run{}.svg)\n\n", i + 1, i + 1, i + 1);
    md +=
        "| process | completion (s) | minor faults | major faults | CPU (s) | monitor's last minor "
        "total |\n";
    md += "| --- | ---: | ---: | ---: | ---: | ---: |\n";
    for (const auto& w : r.workers) {
      uint64_t last = 0;
      for (const auto& row : r.rows)
        if (row.pid == std::to_string(w.pid)) last = row.min_total;
      md += fmt::format("| {} | {:.2f} | {} | {} | {:.2f} | {} |\n", w.label, w.elapsed_ms / 1e3,
                        w.min_faults, w.maj_faults, w.cpu_ms / 1e3, last);
    }
    md += fmt::format("\nBoth processes finished {:.2f} s after they were started.\n\n", r.wall_s);
  }
  // Comparison of the second process of each run: same size and accesses, random vs locality.
  const auto& rb = results[0].workers[1];
  const auto& lb = results[1].workers[1];
  ChartSeries s1 = cumulative(results[0].rows, std::to_string(rb.pid), "run 1 B: random", false);
  ChartSeries s2 = cumulative(results[1].rows, std::to_string(lb.pid), "run 2 B: locality", false);
  ChartOptions co;
  co.title = "Random vs locality access: cumulative minor faults";
  co.x_label = "time since the monitor started (s)";
  co.y_label = "cumulative minor faults (count)";
  co.x_from_zero = true;
  KSCOPE_TRY(
      write_output(fmt::format("{}/locality-compare.svg", o.out), render_svg_chart({s1, s2}, co)));
  md += "## Comparison\n\n![compare](locality-compare.svg)\n\n";
  double ratio = lb.min_faults ? static_cast<double>(rb.min_faults) / lb.min_faults : 0;
  md += fmt::format(
      "With the same size and number of accesses, the random process B of run 1 took {} minor "
      "faults and finished in {:.2f} s; the locality process B of run 2 took {} minor faults "
      "({:.1f}x fewer) and finished in {:.2f} s. Process A (random, {} accesses) took {} and {} "
      "minor faults and finished in {:.2f} s and {:.2f} s. Major faults: {} / {} (run 1) and "
      "{} / {} (run 2): the machine has enough memory, so every fault is a first touch.\n",
      rb.min_faults, rb.elapsed_ms / 1e3, lb.min_faults, ratio, lb.elapsed_ms / 1e3, o.accesses_a,
      results[0].workers[0].min_faults, results[1].workers[0].min_faults,
      results[0].workers[0].elapsed_ms / 1e3, results[1].workers[0].elapsed_ms / 1e3,
      results[0].workers[0].maj_faults, rb.maj_faults, results[1].workers[0].maj_faults,
      lb.maj_faults);
  md +=
      "\nFault counts, completion time and CPU are what each `kscope-work` reported about "
      "itself (getrusage); the plots are the monitor's samples. Raw samples: `locality-run1.csv`, "
      "`locality-run2.csv`.\n";
  KSCOPE_TRY(write_output(o.out + "/locality.md", md));
  std::fputs(md.c_str(), stdout);
  return 0;
}

}  // namespace kscope::study
