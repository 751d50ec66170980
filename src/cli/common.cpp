#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "cli/commands.h"
#include "kscope/version.h"
#include "render/symbol_sources.h"
#include "trace/proc.h"
#include "util/clock.h"
#include "util/file.h"

namespace kscope::cli {

int report_error(const Error& error) {
  std::fprintf(stderr, "kscope: %s\n", error.describe().c_str());
  if (!error.hint.empty()) std::fprintf(stderr, "kscope: %s\n", error.hint.c_str());
  return static_cast<int>(error.exit_code);
}

RecordingMeta make_recording_meta(const std::vector<uint32_t>& pids) {
  RecordingMeta meta;
  meta.kscope_version = KSCOPE_VERSION;
  if (auto cmdline = read_file("/proc/self/cmdline")) {
    std::string arg;
    for (char c : *cmdline) {
      if (c == '\0') {
        meta.command_line.push_back(arg);
        arg.clear();
      } else {
        arg.push_back(c);
      }
    }
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  meta.hostname = host;
  utsname u{};
  uname(&u);
  meta.kernel_release = u.release;
  meta.start_wall_ns = realtime_ns();
  meta.target_pids = pids;
  return meta;
}

CLI::Option* add_duration_option(CLI::App* app, double& seconds, const std::string& description) {
  return app
      ->add_option_function<std::string>(
          "--duration",
          [&seconds](const std::string& text) {
            double v = 0;
            auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
            if (text.empty() || ec != std::errc() || p != text.data() + text.size() ||
                !std::isfinite(v) || v <= 0)
              throw CLI::ValidationError("--duration must be a positive number of seconds");
            seconds = v;
          },
          description)
      ->type_name("SECONDS");
}

GlobalOptions& global_options() {
  static GlobalOptions options;
  return options;
}

SymbolizerOptions symbolizer_options() {
  SymbolizerOptions options;
  const GlobalOptions& global = global_options();
  if (!global.debug_dirs.empty()) {
    options.debug_search.debug_dirs = global.debug_dirs;
  } else if (const char* env = std::getenv("KSCOPE_DEBUG_DIR"); env && *env) {
    options.debug_search.debug_dirs.clear();
    std::string_view dirs(env);
    while (!dirs.empty()) {
      size_t colon = dirs.find(':');
      std::string_view dir = dirs.substr(0, colon);
      if (!dir.empty()) options.debug_search.debug_dirs.emplace_back(dir);
      dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    }
  }
  if (!global.no_debuginfod) options.debuginfod = debuginfod_options_from_environment();
  if (const char* env = std::getenv("KSCOPE_KALLSYMS"); env && *env) options.kallsyms_path = env;
  if (const char* env = std::getenv("KSCOPE_PERF_MAP_DIR")) options.perf_map_dir = env;
  return options;
}

void print_symbol_sources(const std::vector<BinarySource>& sources) {
  if (!global_options().verbose) return;
  SymbolSourcesView view;
  view.rows = sources;
  std::fputs(symbol_sources_text(view).c_str(), stderr);
}

void print_symbol_sources(const Recording& recording, const Symbolizer& symbolizer) {
  SymbolSourcesView view = symbol_sources_view(recording, symbolizer);
  if (global_options().verbose) {
    std::fputs(symbol_sources_text(view).c_str(), stderr);
  } else if (recording.symbols.empty() && !recording.faults.empty()) {
    std::fprintf(stderr, "kscope: symbols: %s\n", view.note.c_str());
  }
}

}  // namespace kscope::cli
