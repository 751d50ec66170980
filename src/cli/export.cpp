// kscope export: a recording in formats other tools read (csv, jsonl, sqlite, pprof, folded,
// chrome-trace). Formats are documented in docs/export-formats.md.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/recording_input.h"
#include "export/chrome_trace.h"
#include "export/fault_event_writer.h"
#include "export/folded.h"
#include "export/pprof.h"
#include "export/sqlite_export.h"
#include "model/fault_profile.h"
#include "model/top_profile.h"
#include "model/top_recording.h"
#include "symbols/fault_locations.h"
#include "symbols/fault_run_symbols.h"
#include "symbols/fault_stack_frames.h"
#include "symbols/symbolizer.h"
#include "util/output_file.h"

namespace kscope::cli {

namespace {

// Either kind of recording, as a gzipped pprof profile.
Result<int> write_pprof(OutputFile& out, const StackProfile& profile) {
  KSCOPE_ASSIGN_OR_RETURN(std::string bytes, encode_pprof(profile));
  KSCOPE_TRY(out.write(bytes));
  KSCOPE_TRY(out.close());
  return 0;
}

struct ExportOptions {
  std::string path;
  std::string format;
  std::string output;
  bool opened_output = false;   // set once -o was created by us: remove it again on failure
  std::string value = "oncpu";  // --value (folded): oncpu, offcpu or switches
  bool symbols = false;         // --symbols (csv, jsonl of faults): the `symbol` field
};

// A first pass over a faults recording for the events' stack field: its stacks, each process's
// last mappings and the stored names (faults are not kept).
class StackNamesVisitor : public RecordingVisitor {
 public:
  Status on_mappings(const MappingSnapshot& m) override {
    auto& slot = latest[m.pid];
    if (slot.mappings.empty() || m.time_ns >= slot.time_ns) slot = m;
    return {};
  }
  Status on_stacks(const std::vector<FaultStack>& v) override {
    for (const FaultStack& s : v) stacks.emplace(s.id, s);
    return {};
  }
  Status on_symbols(const std::vector<StoredSymbol>& v) override {
    symbols.insert(symbols.end(), v.begin(), v.end());
    return {};
  }
  Status on_fault(const FaultRecord& f) override {
    has_stacks = has_stacks || f.stack != 0;
    return {};
  }
  std::map<uint32_t, MappingSnapshot> latest;
  std::map<uint32_t, FaultStack> stacks;
  std::vector<StoredSymbol> symbols;
  bool has_stacks = false;
};

// Streams the faults in file order with the thread names known at that point of the file, like
// `kscope faults --events` printed them while tracing; with `names`, each with its stack field
// (recordings with stacks) and, with `symbols`, its symbol field, named from the recording's
// stored names (its last mappings and this machine's files for a recording without them).
class EventExportVisitor : public RecordingVisitor {
 public:
  EventExportVisitor(FaultEventWriter& w, const StackNamesVisitor* names, bool symbols)
      : writer_(w), names_(names), symbols_(symbols) {
    if (!names_) return;
    symbolizer_ = std::make_unique<Symbolizer>(symbolizer_options());
    for (const auto& [pid, snap] : names_->latest) symbolizer_->set_mappings(snap);
    symbolizer_->add_stored_symbols(names_->symbols);
  }
  Status on_thread(const ThreadInfo& t) override {
    comms_[t.tid] = t.comm;
    return {};
  }
  Status on_fault(const FaultRecord& r) override {
    auto it = comms_.find(r.tid);
    writer_.write(r, it == comms_.end() ? std::string_view("?") : std::string_view(it->second),
                  symbol_field(r.pid, r.ip), stack_field(r.stack));
    if (++n_ % 65536 == 0) return writer_.flush();
    return {};
  }

 private:
  // Named once per (process, address).
  std::string_view symbol_field(uint32_t pid, uint64_t ip) {
    if (!symbols_ || !names_) return {};
    auto [it, fresh] = symbol_fields_.try_emplace({pid, ip});
    if (fresh) it->second = fault_symbol_field(*symbolizer_, pid, ip);
    return it->second;
  }
  // Named once per stack; a stack its recording lost to damage says so.
  std::string_view stack_field(uint32_t id) {
    if (!names_ || !names_->has_stacks || id == 0) return {};
    auto [it, fresh] = fields_.try_emplace(id);
    if (fresh) {
      auto st = names_->stacks.find(id);
      it->second =
          fault_stack_field(name_fault_stack(st == names_->stacks.end() ? nullptr : &st->second,
                                             kStackStatusLostDamaged, *symbolizer_));
    }
    return it->second;
  }

  FaultEventWriter& writer_;
  const StackNamesVisitor* names_;
  bool symbols_;
  std::unique_ptr<Symbolizer> symbolizer_;
  std::map<uint32_t, std::string> fields_;
  std::map<std::pair<uint32_t, uint64_t>, std::string> symbol_fields_;
  std::map<uint32_t, std::string> comms_;
  uint64_t n_ = 0;
};

// write_sqlite replaces the (now empty, closed) output file atomically; on failure nothing is
// left behind.
Result<int> export_sqlite(OutputFile& out, const SqliteExportInput& in) {
  std::string path = out.path();
  KSCOPE_TRY(out.close());
  Status st = write_sqlite(in, path);
  if (!st) {
    ::unlink(path.c_str());
    return std::move(st).error();
  }
  return 0;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// A `kscope top` recording: its whole-run profile (accounts per kernel+user stack) and slices.
Result<int> export_top(ExportOptions& o, OutputFile& out) {
  const std::string& fmt_name = o.format;
  KSCOPE_ASSIGN_OR_RETURN(TopRecording rec, load_top_recording_for(o.path, "export"));
  if (!rec.has_profile && fmt_name != "chrome-trace")
    return make_error(
        "export: " + o.path +
            " has no profile: neither its profile block nor any profile increment survived",
        0, "--format chrome-trace still exports the slices that were written");
  const StackProfile& p = rec.profile;
  if (fmt_name == "csv" || fmt_name == "jsonl") {
    // One row per account: a thread and its kernel+user stack (root first, ';'-separated).
    bool csv = fmt_name == "csv";
    std::string text;
    if (csv)
      text =
          "pid,tid,comm,oncpu_ns,switches,runq_wait_ns,voluntary,involuntary,stack,oncpu_samples,"
          "offcpu_ns,slice_ns\n";
    for (const auto& s : p.samples) {
      std::string stack;
      for (auto it = s.frames.rbegin(); it != s.frames.rend(); ++it) {
        if (*it >= p.frames.size()) continue;
        stack += (stack.empty() ? "" : ";") + folded_frame_name(p.frames[*it], true);
      }
      const TopValues v = top_values_of(p, s);
      if (csv) {
        text +=
            fmt::format("{},{},{},{},{},{},{},{},{},{},{},{}\n", s.pid, s.tid, csv_field(s.comm),
                        v.oncpu_ns, v.switches, v.runq_wait_ns, v.voluntary, v.involuntary,
                        csv_field(stack), v.oncpu_samples, v.offcpu_ns, v.slice_ns);
      } else {
        nlohmann::json j = {{"pid", s.pid},
                            {"tid", s.tid},
                            {"comm", s.comm},
                            {"oncpu_ns", v.oncpu_ns},
                            {"switches", v.switches},
                            {"runq_wait_ns", v.runq_wait_ns},
                            {"voluntary", v.voluntary},
                            {"involuntary", v.involuntary},
                            {"oncpu_samples", v.oncpu_samples},
                            {"offcpu_ns", v.offcpu_ns},
                            {"slice_ns", v.slice_ns},
                            {"stack", stack}};
        text += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
      }
    }
    KSCOPE_TRY(out.write(text));
    KSCOPE_TRY(out.close());
    return 0;
  }
  if (fmt_name == "folded") {
    KSCOPE_ASSIGN_OR_RETURN(const char* value, top_folded_value(o.value));
    auto index = p.value_index(value);
    if (!index)
      return make_error(
          fmt::format("the recording's profile has no '{}' values (recorded by an "
                      "older kscope top)",
                      value));
    FoldedOptions fo;
    fo.value_index = *index;
    KSCOPE_TRY(write_folded(p, out.get(), fo));
    KSCOPE_TRY(out.close());
    return 0;
  }
  if (fmt_name == "pprof") return write_pprof(out, top_pprof_profile(p));
  if (fmt_name == "sqlite") {
    SqliteExportInput in;
    in.profile = &p;
    return export_sqlite(out, in);
  }
  if (fmt_name == "chrome-trace") {
    std::vector<SchedSlice> slices;
    slices.reserve(rec.slices.size());
    for (const auto& s : rec.slices)
      slices.push_back(SchedSlice{s.pid, s.tid, s.cpu, s.start_ns, s.end_ns, s.comm});
    ChromeTraceInput in;
    in.slices = slices;
    for (const auto& t : rec.threads) {
      in.thread_names[t.tid] = t.comm;
      if (t.tid == t.pid) in.process_names[t.pid] = t.comm;
    }
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

Result<int> run_export(ExportOptions& o) {
  const std::string& fmt_name = o.format;
  const bool binary = fmt_name == "sqlite" || fmt_name == "pprof";
  // Fail on an unwritable path before reading anything.
  KSCOPE_ASSIGN_OR_RETURN(OutputFile out, OutputFile::open(o.output, !binary));
  o.opened_output = !out.is_stdout();
  KSCOPE_ASSIGN_OR_RETURN(RecordingKind kind, recording_kind(o.path));
  if (o.symbols && (kind == RecordingKind::kTop || (fmt_name != "csv" && fmt_name != "jsonl")))
    return usage_error(
        "--symbols adds a field to the csv and jsonl exports of a faults recording (the other "
        "formats and top recordings are named already)");
  if (kind == RecordingKind::kTop) return export_top(o, out);

  if (fmt_name == "csv" || fmt_name == "jsonl") {
    // Recordings with stacks get the stack field, --symbols the symbol field: a first pass finds
    // the stacks, the last mappings and the stored names.
    StackNamesVisitor names;
    if (auto first = visit_recording(o.path, names); !first) {
      Error e = std::move(first).error();
      e.message = "export: " + e.message;
      return e;
    }
    FaultEventWriter writer(out.get(), fmt_name == "csv" ? EventFormat::kCsv : EventFormat::kJsonl,
                            o.symbols, names.has_stacks);
    writer.write_header();
    EventExportVisitor visitor(writer, names.has_stacks || o.symbols ? &names : nullptr, o.symbols);
    auto summary = visit_recording(o.path, visitor);
    if (!summary) {
      Error e = std::move(summary).error();
      e.message = "export: " + e.message;
      return e;
    }
    print_read_warnings(*summary);
    KSCOPE_TRY(writer.flush());
    KSCOPE_TRY(out.close());
    return 0;
  }

  KSCOPE_ASSIGN_OR_RETURN(Recording rec, load_recording_for(o.path, "export"));

  Symbolizer symbolizer(symbolizer_options());
  FaultLocations locations = resolve_fault_locations(rec, symbolizer);
  print_symbol_sources(rec, symbolizer);
  StackProfile profile = fault_stack_profile(rec, locations);

  // comm;root;...;leaf COUNT (faults); without stacks the location alone: comm;location COUNT.
  if (fmt_name == "folded") {
    KSCOPE_TRY(write_folded(profile, out.get()));
    KSCOPE_TRY(out.close());
    return 0;
  }

  if (fmt_name == "pprof") return write_pprof(out, profile);
  if (fmt_name == "sqlite") {
    SqliteExportInput in;
    in.recording = &rec;
    in.frame_of_fault = locations.frame_of_fault;
    in.chains = locations.chains;
    in.chain_of_fault = locations.chain_of_fault;
    in.profile = &profile;
    return export_sqlite(out, in);
  }
  if (fmt_name == "chrome-trace") {
    std::vector<std::string> functions(rec.faults.size());
    std::vector<std::string> labels;
    labels.reserve(profile.frames.size());
    for (const auto& f : profile.frames) labels.push_back(f.display());
    for (size_t i = 0; i < rec.faults.size(); ++i)
      functions[i] = labels[locations.frame_of_fault[i]];
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
  auto* app = parent.add_subcommand("export",
                                    "Write a recording in a format other tools read.\n"
                                    "  kscope export RECORDING --format FORMAT -o FILE");
  app->add_option("recording", o->path, "Recording file (kscope faults -o or kscope top -o)")
      ->required();
  app->add_option("--format", o->format,
                  "csv | jsonl: one line per fault (the columns of 'faults --events'); "
                  "sqlite: a database (tables meta, processes, threads, mappings, faults, frames, "
                  "stacks, accounts); pprof: gzipped profile.proto of fault counts by code "
                  "location, or by call stack for 'faults --stacks' recordings (go tool pprof, "
                  "Pyroscope, Parca, Grafana); folded: folded stacks (faults: by call stack with "
                  "--stacks, else by location); chrome-trace: Trace Event JSON for Perfetto / "
                  "chrome://tracing")
      ->required()
      ->check(CLI::IsMember({"csv", "jsonl", "sqlite", "pprof", "folded", "chrome-trace"}));
  app->add_option("-o,--output", o->output,
                  "Output file ('-' = stdout for the text formats); created 0666 minus umask")
      ->required();
  app->add_flag("--symbols", o->symbols,
                "csv | jsonl of a faults recording: a 'symbol' field (before 'stack'), the "
                "faulting instruction as 'function+0xoff (module)', from the names the recording "
                "stored when it was made (as 'faults --events --symbols' prints it)");
  app->add_option("--value", o->value,
                  "folded: weigh stacks by oncpu (default: sampled on-CPU ns), offcpu (off-CPU ns "
                  "by switch-out stack) or switches");
  app->footer(
      "Formats and the sqlite schema: docs/export-formats.md. Exit status: 0 on success, "
      "1 on error, 2 on bad usage.");
  return {app, [o] {
            auto r = run_export(*o);
            if (!r) {
              // No half-written or empty output left behind for a failed export.
              if (o->opened_output) ::unlink(o->output.c_str());
              return report_error(r.error());
            }
            return *r;
          }};
}

}  // namespace kscope::cli
