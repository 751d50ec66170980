// Subcommand registry. Each subcommand lives in its own src/cli/<name>.cpp and provides a
// setup function that adds its CLI11 subcommand (options bound to its own options struct) and
// returns the function main() calls when that subcommand was chosen.
#pragma once

#include <signal.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "model/recording.h"
#include "symbols/symbolizer.h"
#include "util/result.h"
#include "util/signals.h"

namespace kscope::cli {

// Runs a parsed subcommand; returns the process exit status (an ExitCode value, or a traced
// command's own exit status).
using Runner = std::function<int()>;

struct Subcommand {
  CLI::App* app = nullptr;
  Runner run;
};

Subcommand setup_faults(CLI::App& parent);
Subcommand setup_plot(CLI::App& parent);
Subcommand setup_doctor(CLI::App& parent);
Subcommand setup_top(CLI::App& parent);

// Metadata of a recording made now by this process (argv, host, kernel, wall-clock start).
RecordingMeta make_recording_meta(const std::vector<uint32_t>& pids);
Subcommand setup_export(CLI::App& parent);
Subcommand setup_report(CLI::App& parent);
Subcommand setup_monitor(CLI::App& parent);
Subcommand setup_study(CLI::App& parent);

// Prints "kscope: <message>" (and the hint) on stderr, returns the exit code to use.
int report_error(const Error& error);

// --duration SECONDS for every command that has it: a positive, finite number of seconds, else
// the usage error "--duration must be a positive number of seconds".
CLI::Option* add_duration_option(CLI::App* app, double& seconds, const std::string& description);

// Global flags shared by all subcommands.
struct GlobalOptions {
  int verbose = 0;  // -v: libbpf's own log and debug details on stderr
  // --debug-dir DIR (repeatable; else KSCOPE_DEBUG_DIR, colon-separated; else /usr/lib/debug):
  // roots of the build-id and debuglink trees, like gdb's debug-file-directory.
  std::vector<std::string> debug_dirs;
  bool no_debuginfod = false;  // --no-debuginfod: never ask DEBUGINFOD_URLS' servers
};
GlobalOptions& global_options();

// The symbolizer settings the global options and the environment ask for: debug directories,
// debuginfod (DEBUGINFOD_URLS, the sudo user's, --no-debuginfod), KSCOPE_KALLSYMS (a kallsyms
// file to use instead of /proc/kallsyms) and KSCOPE_PERF_MAP_DIR (where perf-PID.map files are).
SymbolizerOptions symbolizer_options();

// Under -v: one line per binary naming where its symbols came from, on stderr.
void print_symbol_sources(const std::vector<BinarySource>& sources);
// For a faults recording that was read and named with `symbolizer`: under -v the whole symbol
// sources table (render/symbol_sources.h); without -v only the note, when the names were
// resolved now because the recording holds none (it was cut short).
void print_symbol_sources(const Recording& recording, const Symbolizer& symbolizer);

}  // namespace kscope::cli
