// kscope plot: re-draws the fault plots of a recording (kscope faults -o).
#include <cstdio>

#include "cli/commands.h"
#include "cli/recording_input.h"
#include "model/recording.h"
#include "render/scatter_plot.h"

namespace kscope::cli {

Subcommand setup_plot(CLI::App& parent) {
  struct PlotOptions {
    std::string path;
    int rows = 30;
    int cols = 70;
    bool by_segment = false;
    bool linear = false;
  };
  auto o = std::make_shared<PlotOptions>();
  auto* app =
      parent.add_subcommand("plot", "Re-draw the fault plots of a recording (kscope faults -o)");
  app->add_option("recording", o->path, "Recording file")->required();
  app->add_option("--rows", o->rows, "Plot height in lines (default 30)");
  app->add_option("--cols", o->cols, "Plot width in characters (default 70)");
  app->add_flag("--by-segment", o->by_segment, "One plot per segment that had faults");
  app->add_flag("--linear", o->linear, "Plot the raw address range (no gap compression)");
  return {app, [o]() -> int {
            if (auto st = validate_plot_size(o->rows, o->cols); !st)
              return report_error(st.error());
            // A top recording holds no faults: say what it is instead of an empty plot.
            auto kind = recording_kind(o->path);
            if (!kind) return report_error(kind.error());
            if (*kind == RecordingKind::kTop)
              return report_error(make_error(
                  fmt::format("plot: {} is a 'kscope top' recording: it holds on-CPU time, not "
                              "page faults, so there is nothing to plot",
                              o->path),
                  0,
                  fmt::format("'kscope report {} -o report.html' draws its flame graph and "
                              "tables; 'kscope export' writes it as folded, pprof, csv or "
                              "chrome-trace",
                              o->path)));
            auto rec = load_recording_for(o->path, "plot");
            if (!rec) return report_error(rec.error());
            std::vector<PlotPoint> points;
            points.reserve(rec->faults.size());
            for (const auto& f : rec->faults) points.push_back(to_plot_point(f));
            auto plot = render_fault_plots(points, o->rows, o->cols, o->by_segment, o->linear);
            if (!plot) return report_error(plot.error());
            std::fputs(plot->c_str(), stdout);
            return 0;
          }};
}

}  // namespace kscope::cli
