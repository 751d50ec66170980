// kscope export: a recording in formats other tools read (csv, jsonl, sqlite, pprof, folded,
// chrome-trace). Formats are documented in docs/export-formats.md.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/recording_input.h"
#include "export/chrome_trace.h"
#include "export/fault_event_writer.h"
#include "export/folded.h"
#include "export/pprof.h"
#include "export/sqlite_export.h"
#include "model/fault_profile.h"
#include "symbols/symbolizer.h"
#include "util/output_file.h"

namespace kscope::cli {

namespace {

struct ExportOptions {
  std::string path;
  std::string format;
  std::string output;
  bool opened_output = false;  // set once -o was created by us: remove it again on failure
};

// Streams the faults in file order with the thread names known at that point of the file, like
// `kscope faults --events` printed them while tracing.
class EventExportVisitor : public RecordingVisitor {
 public:
  explicit EventExportVisitor(FaultEventWriter& w) : writer_(w) {}
  Status on_thread(const ThreadInfo& t) override {
    comms_[t.tid] = t.comm;
    return {};
  }
  Status on_fault(const FaultRecord& r) override {
    auto it = comms_.find(r.tid);
    writer_.write(r, it == comms_.end() ? std::string_view("?") : std::string_view(it->second));
    if (++n_ % 65536 == 0) return writer_.flush();
    return {};
  }

 private:
  FaultEventWriter& writer_;
  std::map<uint32_t, std::string> comms_;
  uint64_t n_ = 0;
};

Result<int> run_export(ExportOptions& o) {
  const std::string& fmt_name = o.format;
  const bool binary = fmt_name == "sqlite" || fmt_name == "pprof";
  // Fail on an unwritable path before reading anything.
  KSCOPE_ASSIGN_OR_RETURN(OutputFile out, OutputFile::open(o.output, !binary));
  o.opened_output = !out.is_stdout();

  if (fmt_name == "csv" || fmt_name == "jsonl") {
    FaultEventWriter writer(out.get(), fmt_name == "csv" ? EventFormat::kCsv : EventFormat::kJsonl);
    writer.write_header();
    EventExportVisitor visitor(writer);
    auto summary = visit_recording(o.path, visitor);
    if (!summary) {
      Error e = std::move(summary).error();
      e.message = "export: " + e.message;
      return e;
    }
    if (!summary->warning.empty()) std::fprintf(stderr, "kscope: %s\n", summary->warning.c_str());
    KSCOPE_TRY(writer.flush());
    KSCOPE_TRY(out.close());
    return 0;
  }

  KSCOPE_ASSIGN_OR_RETURN(Recording rec, load_recording_for(o.path, "export"));
  if (rec.summary.kind != RecordingKind::kFaults) return top_not_supported("export");

  if (fmt_name == "folded") {
    return make_error(
        "export: a faults recording has no stacks (only the instruction that faulted), so it "
        "cannot be written as folded stacks",
        0, "folded stacks need a 'kscope top' recording; for fault counts by code location use "
           "--format pprof or --format sqlite");
  }

  Symbolizer symbolizer;
  FaultLocations locations = resolve_fault_locations(rec, symbolizer);
  StackProfile profile = fault_stack_profile(rec, locations);

  if (fmt_name == "pprof") {
    KSCOPE_ASSIGN_OR_RETURN(std::string bytes, encode_pprof(profile));
    KSCOPE_TRY(out.write(bytes));
    KSCOPE_TRY(out.close());
    return 0;
  }
  if (fmt_name == "sqlite") {
    std::string path = out.path();
    KSCOPE_TRY(out.close());  // write_sqlite replaces the (now empty) file atomically
    SqliteExportInput in;
    in.recording = &rec;
    in.frame_of_fault = locations.frame_of_fault;
    in.profile = &profile;
    Status st = write_sqlite(in, path);
    if (!st) {
      ::unlink(path.c_str());
      return std::move(st).error();
    }
    return 0;
  }
  if (fmt_name == "chrome-trace") {
    std::vector<std::string> functions(rec.faults.size());
    std::vector<std::string> labels;
    labels.reserve(profile.frames.size());
    for (const auto& f : profile.frames) labels.push_back(f.display());
    for (size_t i = 0; i < rec.faults.size(); ++i) functions[i] = labels[locations.frame_of_fault[i]];
    ChromeTraceInput in;
    in.faults = rec.faults;
    in.fault_functions = functions;
    in.process_names = process_names(rec);
    in.thread_names = thread_names(rec);
    in.metadata["kscope_recording"] = o.path;
    in.metadata["hostname"] = rec.meta.hostname;
    in.metadata["kernel_release"] = rec.meta.kernel_release;
    in.metadata["start_wall_ns"] = std::to_string(rec.meta.start_wall_ns);
    KSCOPE_TRY(write_chrome_trace(in, out.get()));
    KSCOPE_TRY(out.close());
    return 0;
  }
  return usage_error("unknown --format " + fmt_name);
}

}  // namespace

Subcommand setup_export(CLI::App& parent) {
  auto o = std::make_shared<ExportOptions>();
  auto* app = parent.add_subcommand(
      "export",
      "Write a recording in a format other tools read.\n"
      "  kscope export RECORDING --format FORMAT -o FILE");
  app->add_option("recording", o->path, "Recording file (kscope faults -o)")->required();
  app->add_option("--format", o->format,
                  "csv | jsonl: one line per fault (the columns of 'faults --events'); "
                  "sqlite: a database (tables meta, processes, threads, mappings, faults, frames, "
                  "stacks, accounts); pprof: gzipped profile.proto of fault counts by code "
                  "location (go tool pprof, Pyroscope, Parca, Grafana); folded: folded stacks "
                  "(top recordings only); chrome-trace: Trace Event JSON for Perfetto / "
                  "chrome://tracing")
      ->required()
      ->check(CLI::IsMember({"csv", "jsonl", "sqlite", "pprof", "folded", "chrome-trace"}));
  app->add_option("-o,--output", o->output,
                  "Output file ('-' = stdout for the text formats); created 0666 minus umask")
      ->required();
  app->footer("Formats and the sqlite schema: docs/export-formats.md. Exit status: 0 on success, "
              "1 on error, 2 on bad usage.");
  return {app, [o] {
            auto r = run_export(*o);
            if (!r) {
              // No half-written or empty output left behind for a failed export.
              if (o->opened_output)
                ::unlink(o->output.c_str());
              return report_error(r.error());
            }
            return *r;
          }};
}

}  // namespace kscope::cli
