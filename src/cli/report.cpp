// kscope report: a self-contained HTML report of a recording, optionally every figure as SVG.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/recording_input.h"
#include "model/top_recording.h"
#include "render/report_html.h"
#include "render/top_report.h"
#include "symbols/symbolizer.h"
#include "util/invoking_user.h"
#include "util/output_file.h"

namespace kscope::cli {

namespace {

struct ReportCliOptions {
  std::string path;
  std::string output;
  std::string svg_dir;
  std::string title;
  size_t top = 25;
  size_t density_threshold = 200'000;
  bool opened_output = false;
};

Status prepare_svg_dir(const std::string& dir) {
  if (auto st = create_output_dir(dir, 0777); !st)
    return make_error("cannot create --svg directory " + dir, st.error().sys_errno);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return make_error("--svg " + dir + " is not a directory");
  if (::access(dir.c_str(), W_OK) != 0)
    return errno_error("cannot write into --svg directory " + dir);
  return {};
}

Result<int> run_report(ReportCliOptions& o) {
  if (o.density_threshold < 1000) return usage_error("--density-threshold must be at least 1000");
  // Outputs first: an unwritable path fails before the (possibly long) work.
  KSCOPE_ASSIGN_OR_RETURN(OutputFile out, OutputFile::open(o.output, true));
  o.opened_output = !out.is_stdout();
  if (!o.svg_dir.empty()) KSCOPE_TRY(prepare_svg_dir(o.svg_dir));

  KSCOPE_ASSIGN_OR_RETURN(RecordingKind kind, recording_kind(o.path));
  ReportOptions ro;
  ro.title = o.title;
  ro.source_path = o.path;
  ro.top = o.top;
  ro.density_threshold = o.density_threshold;
  Symbolizer symbolizer(symbolizer_options());
  ReportOutput report;
  bool empty = false;
  if (kind == RecordingKind::kTop) {
    KSCOPE_ASSIGN_OR_RETURN(TopRecording top_rec, load_top_recording_for(o.path, "report"));
    KSCOPE_ASSIGN_OR_RETURN(report, build_top_report(top_rec, ro, !o.svg_dir.empty()));
    empty = top_rec.profile.samples.empty();
    if (empty)
      std::fprintf(stderr, "kscope: report: no on-CPU time recorded in %s\n", o.path.c_str());
  } else {
    KSCOPE_ASSIGN_OR_RETURN(Recording rec, load_recording_for(o.path, "report"));
    KSCOPE_ASSIGN_OR_RETURN(report, build_fault_report(rec, ro, symbolizer, !o.svg_dir.empty()));
    print_symbol_sources(rec, symbolizer);
    empty = rec.faults.empty();
    if (empty) std::fprintf(stderr, "kscope: report: no faults recorded in %s\n", o.path.c_str());
  }
  KSCOPE_TRY(out.write(report.html));
  KSCOPE_TRY(out.close());
  for (const auto& fig : report.figures) {
    auto f = OutputFile::open(o.svg_dir + "/" + fig.name + ".svg", false);
    if (!f) return std::move(f).error();
    KSCOPE_TRY(f->write(fig.svg));
    KSCOPE_TRY(f->close());
  }
  return 0;
}

}  // namespace

Subcommand setup_report(CLI::App& parent) {
  auto o = std::make_shared<ReportCliOptions>();
  auto* app = parent.add_subcommand(
      "report",
      "Write a self-contained HTML report of a recording (no network needed to open it). Faults: "
      "summary and kernel-counter reconciliation, zoomable fault scatter (all and per segment), "
      "cumulative faults, latency histogram, top functions and pages, a flame graph, where each "
      "binary's symbols came from. Top: an "
      "on-CPU flame graph, the per-task table, schedule-in and run-queue-wait figures.\n"
      "  kscope report RECORDING -o report.html [--svg DIR]");
  app->add_option("recording", o->path, "Recording file (kscope faults -o or kscope top -o)")
      ->required();
  app->add_option("-o,--output", o->output,
                  "HTML file to write ('-' = stdout); created 0666 minus umask")
      ->required();
  app->add_option("--svg", o->svg_dir, "Also write every figure as a standalone SVG file into DIR");
  app->add_option("--title", o->title, "Page title (default: 'kscope report: RECORDING')");
  app->add_option("--top", o->top, "Rows of the top functions / top pages tables (default 25)")
      ->check(CLI::Range(1, 10000));
  app->add_option(
      "--density-threshold", o->density_threshold,
      "Faults in view above which the scatter draws a density heatmap (default 200000)");
  app->footer(
      "What each panel shows: docs/report.md. Exit status: 0 on success, 1 on error, 2 on bad "
      "usage.");
  return {app, [o] {
            auto r = run_report(*o);
            if (!r) {
              if (o->opened_output) ::unlink(o->output.c_str());
              return report_error(r.error());
            }
            return *r;
          }};
}

}  // namespace kscope::cli
