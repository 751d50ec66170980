// kscope faults: trace every page fault of a process; stream, record, summarize, plot.
#include <fcntl.h>
#include <signal.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>

#include "cli/commands.h"
#include "cli/recording_input.h"
#include "export/fault_event_writer.h"
#include "kscope/version.h"
#include "model/recording.h"
#include "model/top_recording.h"
#include "render/fault_summary_text.h"
#include "render/progress_line.h"
#include "render/scatter_plot.h"
#include "symbols/fault_run_symbols.h"
#include "trace/fault_tracer.h"
#include "trace/proc.h"
#include "trace/targets.h"
#include "util/clock.h"
#include "util/invoking_user.h"

namespace kscope::cli {

namespace {

struct FaultsOptions {
  std::string pids;
  std::string tids;
  std::vector<std::string> command;
  std::string events_path;
  std::string format = "text";
  std::string output_path;
  double duration_s = 0;
  std::optional<bool> follow_children;
  int rows = 30;
  int cols = 70;
  bool by_segment = false;
  bool no_plot = false;
  bool linear = false;
  int top = 10;
  uint32_t ringbuf_mb = 16;
  bool symbols = false;  // --symbols: a symbol field in --events
  std::string stacks;    // --stacks[=dwarf|fp]: empty = no stacks
};

// At most this many points are kept for the end-of-run plot; beyond it a uniform reservoir
// sample keeps memory bounded however long the trace (the summary says so).
constexpr size_t kMaxPlotPoints = 1'000'000;

// Receives the tracer's records and fans them out to the outputs.
class FaultCollector : public FaultSink {
 public:
  FaultCollector(FaultEventWriter* events, RecordingWriter* recording, bool symbols, bool plot,
                 SymbolizerOptions symbolizer)
      : events_(events),
        recording_(recording),
        symbol_field_(symbols),
        plot_(plot),
        symbols_(std::move(symbolizer)) {}

  void on_fault(const FaultRecord& r) override {
    summary_.add(r);
    if (events_) {
      auto st = r.stack ? stacks_.find(r.stack) : stacks_.end();
      events_->write(r, comm_of(r.tid),
                     symbol_field_ ? symbols_.function_at(r.pid, r.ip) : std::string_view(),
                     st != stacks_.end() ? symbols_.stack_field(st->second) : std::string_view());
    }
    if (recording_ && status_) status_ = recording_->add_fault(r);
    if (plot_) add_plot_point(to_plot_point(r));
  }
  void on_thread(const ThreadInfo& t) override {
    if (events_) comms_[t.tid] = t.comm;  // only --events names a fault's thread
    if (recording_ && status_) status_ = recording_->add_thread(t);
  }
  void on_mappings(const MappingSnapshot& m) override {
    symbols_.set_mappings(m);
    if (recording_ && status_) status_ = recording_->add_mappings(m);
  }
  void on_stack(const FaultStack& stack) override {
    stacks_.emplace(stack.id, stack);
    if (recording_ && status_) status_ = recording_->add_stack(stack);
  }
  void on_fork(const ForkEvent& fork) override {
    if (recording_ && status_) status_ = recording_->add_fork(fork);
  }
  void on_exit(const ExitEvent& exit) override {
    comms_.erase(exit.tid);  // passed on after the thread's last fault: its name is not needed
    if (recording_ && status_) status_ = recording_->add_exit(exit);
  }
  void on_started(const std::vector<pid_t>& pids) override {
    started_ns_ = monotonic_ns();
    std::string list;
    for (pid_t p : pids) list += (list.empty() ? "" : ",") + std::to_string(p);
    std::fprintf(stderr, "kscope: tracing page faults of pid %s; Ctrl-C to stop\n", list.c_str());
  }
  Status on_tick(uint64_t lost) override {
    if (!status_) return status_;
    write_sizes();
    if (progress_) progress_->show(summary_.total, lost, monotonic_ns());
    if (events_) KSCOPE_TRY(events_->flush());
    if (recording_) KSCOPE_TRY(recording_->flush());
    return {};
  }

  // KSCOPE_FAULTS_SIZES=FILE (docs/RELIABILITY.md): about once a second, what the run holds per
  // process, thread, stack and fault, as key=value counts (the soak and the churn test).
  void set_sizes_output(std::FILE* out, const FaultTracer* tracer) {
    sizes_out_ = out;
    tracer_ = tracer;
  }
  void write_sizes() {
    if (!sizes_out_) return;
    std::fprintf(sizes_out_, "t_ms=%llu faults=%llu %s comms=%zu locations=%zu plot_points=%zu\n",
                 static_cast<unsigned long long>((monotonic_ns() - started_ns_) / 1'000'000),
                 static_cast<unsigned long long>(summary_.total),
                 tracer_->sizes().describe().c_str(), comms_.size(), summary_.by_location.size(),
                 points_.size());
    std::fflush(sizes_out_);
  }

  // A one-line status on stderr (a terminal) about once a second.
  void enable_progress() { progress_.emplace(stderr); }
  void clear_progress() {
    if (progress_) progress_->clear();
  }

  const Status& status() const { return status_; }
  const FaultSummary& summary() const { return summary_; }
  const std::vector<PlotPoint>& plot_points() const { return points_; }
  uint64_t plot_points_offered() const { return points_offered_; }

  // The names of every distinct address seen, for the recording, and where they came from.
  std::vector<StoredSymbol> resolve_all() { return symbols_.name_all(summary_, stacks_); }
  std::vector<BinarySource> symbol_sources() const { return symbols_.binary_sources(); }

  // The top code locations, or with --stacks the top call paths.
  std::vector<LocationCount> top_locations(size_t n, bool stacks) {
    std::vector<LocationCount> v;
    for (auto& [loc, c] : symbols_.top_locations(summary_, stacks_, n, stacks))
      v.push_back({std::move(loc), c});
    print_symbol_sources(symbols_.binary_sources());
    return v;
  }

 private:
  std::string_view comm_of(uint32_t tid) const {
    auto it = comms_.find(tid);
    return it == comms_.end() ? std::string_view("?") : std::string_view(it->second);
  }

  void add_plot_point(const PlotPoint& p) {
    ++points_offered_;
    if (points_.size() < kMaxPlotPoints) {
      points_.push_back(p);
      return;
    }
    std::uniform_int_distribution<uint64_t> pick(0, points_offered_ - 1);
    uint64_t j = pick(rng_);
    if (j < kMaxPlotPoints) points_[j] = p;
  }

  FaultEventWriter* events_;
  RecordingWriter* recording_;
  bool symbol_field_;  // --symbols
  bool plot_;          // points are kept for the end-of-run plot (not with --no-plot)
  Status status_;
  FaultSummary summary_;
  std::map<uint32_t, std::string> comms_;
  std::map<uint32_t, FaultStack> stacks_;  // --stacks: by id
  // Every name of the run, from one symbolizer: --events fields, the recording, the summary.
  FaultRunSymbols symbols_;
  std::vector<PlotPoint> points_;
  uint64_t points_offered_ = 0;
  std::mt19937_64 rng_{0x6b73636f7065ull};
  std::optional<ProgressLine> progress_;  // stderr a terminal
  std::FILE* sizes_out_ = nullptr;        // KSCOPE_FAULTS_SIZES
  const FaultTracer* tracer_ = nullptr;
  uint64_t started_ns_ = 0;
};

Result<int> run_faults(const FaultsOptions& o) {
  KSCOPE_TRY(validate_plot_size(o.rows, o.cols));
  KSCOPE_ASSIGN_OR_RETURN(EventFormat format, parse_event_format(o.format));
  if (!o.stacks.empty() && o.stacks != "dwarf" && o.stacks != "fp")
    return usage_error("--stacks takes dwarf (the default) or fp: --stacks[=dwarf|fp]");
  if (o.symbols && o.events_path.empty())
    return usage_error("--symbols adds a field to --events: give --events FILE|-");
  if (o.duration_s < 0) return usage_error("--duration must be positive");
  if (o.ringbuf_mb < 1 || o.ringbuf_mb > 1024 || (o.ringbuf_mb & (o.ringbuf_mb - 1)) != 0)
    return usage_error("--ringbuf-mb must be a power of two between 1 and 1024");
  int target_kinds = !o.pids.empty() + !o.tids.empty() + !o.command.empty();
  if (target_kinds != 1)
    return usage_error("give one of -p PID[,PID...], -t TID[,TID...] or -- COMMAND [ARGS...]");
  if (!o.tids.empty() && o.follow_children.value_or(false))
    return usage_error("-t traces only the threads given: --follow-children does not apply");

  FaultTraceOptions topts;
  if (!o.pids.empty()) {
    KSCOPE_ASSIGN_OR_RETURN(topts.pids, proc::parse_pid_list(o.pids));
  }
  if (!o.tids.empty()) {
    KSCOPE_ASSIGN_OR_RETURN(auto tids, proc::parse_pid_list(o.tids));
    KSCOPE_ASSIGN_OR_RETURN(auto threads, resolve_thread_targets(tids));
    for (const auto& t : threads) topts.threads.emplace_back(t.tgid, t.tid);
  }
  topts.command = o.command;
  // kscope never shares a stream with the command it runs: with --events - the command's stdout
  // goes to stderr (as perf record -o - does), and the summary and plot always go to stderr.
  topts.command_stdout_to_stderr = !o.command.empty() && o.events_path == "-";
  topts.follow_children = o.follow_children.value_or(!o.command.empty());
  if (o.duration_s > 0) topts.duration_s = o.duration_s;
  topts.ringbuf_bytes = o.ringbuf_mb << 20;
  topts.verbosity = global_options().verbose;
  topts.stacks = o.stacks.empty()      ? FaultStackMode::kOff
                 : o.stacks == "dwarf" ? FaultStackMode::kDwarf
                                       : FaultStackMode::kFramePointers;

  // One symbolizer for the run, sharing its open files with the unwinder: one open per file.
  SymbolizerOptions symbolizer = symbolizer_options();
  symbolizer.open_files = std::make_shared<OpenFiles>();
  topts.open_files = symbolizer.open_files;
  topts.unwind_debug_dirs = symbolizer.debug_search.debug_dirs;

  KSCOPE_ASSIGN_OR_RETURN(auto tracer, FaultTracer::create(topts));
  if (topts.command_stdout_to_stderr)
    std::fprintf(stderr,
                 "kscope: --events - has stdout: %s's stdout goes to stderr (as with perf record "
                 "-o -)\n",
                 o.command[0].c_str());

  // Outputs are opened before tracing starts so a bad path fails early.
  std::FILE* events_file = nullptr;
  bool events_to_stdout = o.events_path == "-";
  if (events_to_stdout) {
    events_file = stdout;
  } else if (!o.events_path.empty()) {
    auto fd = create_output_file(o.events_path, 0600);
    if (!fd)
      return make_error(fmt::format("cannot write --events file {}", o.events_path),
                        fd.error().sys_errno);
    events_file = ::fdopen(fd->release(), "w");
    if (!events_file) return errno_error("fdopen");
  }
  std::optional<FaultEventWriter> events;
  if (events_file) {
    events.emplace(events_file, format, o.symbols, !o.stacks.empty());
    events->write_header();
  }
  std::optional<RecordingWriter> recording;
  if (!o.output_path.empty()) {
    std::vector<uint32_t> pids(topts.pids.begin(), topts.pids.end());
    for (auto [tgid, tid] : topts.threads) pids.push_back(static_cast<uint32_t>(tgid));
    KSCOPE_ASSIGN_OR_RETURN(auto writer,
                            RecordingWriter::create(o.output_path, make_recording_meta(pids),
                                                    {.fault_stacks = !o.stacks.empty()}));
    recording.emplace(std::move(writer));
  }

  FaultCollector collector(events ? &*events : nullptr, recording ? &*recording : nullptr,
                           o.symbols, !o.no_plot, std::move(symbolizer));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> sizes(nullptr, std::fclose);
  if (const char* path = std::getenv("KSCOPE_FAULTS_SIZES"); path && *path) {
    sizes.reset(std::fopen(path, "we"));
    if (!sizes) return make_error(fmt::format("KSCOPE_FAULTS_SIZES: cannot write {}", path), errno);
    collector.set_sizes_output(sizes.get(), tracer.get());
  }
  // Progress only where it cannot mix into anything: stderr a terminal, no COMMAND writing to
  // it, and no --events stream on the same terminal.
  if (isatty(STDERR_FILENO) && o.command.empty() && !(events_to_stdout && isatty(STDOUT_FILENO)))
    collector.enable_progress();
  volatile sig_atomic_t* stop = install_stop_handlers();
  auto traced = tracer->run(collector, stop);
  collector.clear_progress();
  KSCOPE_ASSIGN_OR_RETURN(auto outcome, std::move(traced));
  tracer.reset();  // detach before the (possibly slow) rendering

  Status output_status = collector.status();
  if (events) {
    auto st = events->flush();
    if (output_status) output_status = st;
    events.reset();  // its destructor flushes: before the FILE is closed
    if (events_file != stdout) std::fclose(events_file);
  }
  FaultRunTotals& totals = outcome.totals;
  if (collector.plot_points_offered() > collector.plot_points().size())
    totals.plot_sampled_from = collector.plot_points_offered();
  if (recording) {
    RecordingTrailer trailer;
    trailer.lost_per_cpu = totals.lost_per_cpu;
    trailer.drop_counters["control_records_lost"] = totals.lost_control;
    trailer.drop_counters["failed_entries"] = totals.failed_entries;
    trailer.drop_counters["unmatched_completions"] = totals.unmatched;
    trailer.drop_counters["segment_unknown_mmap_lock_busy"] = totals.vma_busy;
    trailer.drop_counters["stack_walk_own_faults"] = totals.own_reads;
    trailer.drop_counters["mmap_records_lost"] = totals.mmap_records_lost;
    for (auto& [pid, k] : totals.kernel) {
      trailer.kernel_minflt += k.minflt;
      trailer.kernel_majflt += k.majflt;
    }
    uint64_t lost = 0;
    for (auto l : totals.lost_per_cpu) lost += l;
    trailer.faults_recorded = collector.summary().total;
    trailer.faults_seen = collector.summary().total + lost;
    // The names of every address, from this machine and boot, go into the recording.
    Status symbols = recording->add_symbols(collector.resolve_all());
    if (symbols) symbols = recording->add_symbol_sources(collector.symbol_sources());
    Status st = recording->finish(trailer);
    if (!symbols) st = symbols;
    if (output_status) output_status = st;
  }

  // The summary and plot go to stdout with -p; to stderr when the events use stdout, and with a
  // COMMAND, whose own output has stdout (as perf stat, strace and time do).
  std::FILE* report = events_to_stdout || !o.command.empty() ? stderr : stdout;
  std::string text =
      render_fault_summary(collector.summary(), totals,
                           collector.top_locations(static_cast<size_t>(o.top), !o.stacks.empty()));
  std::fputs(text.c_str(), report);
  if (!o.no_plot) {
    auto plot = render_fault_plots(collector.plot_points(), o.rows, o.cols, o.by_segment, o.linear);
    if (!plot) return std::move(plot).error();
    std::fputc('\n', report);
    std::fputs(plot->c_str(), report);
  }
  std::fflush(report);
  if (!output_status) return std::move(output_status).error();
  if (outcome.command_exit) return *outcome.command_exit;
  return 0;
}

}  // namespace

Subcommand setup_faults(CLI::App& parent) {
  auto o = std::make_shared<FaultsOptions>();
  auto* app = parent.add_subcommand(
      "faults",
      "Trace every page fault of a process: address, instruction, access, minor/major, segment, "
      "latency. Streams events, records, prints a summary and a time x address plot.\n"
      "  kscope faults [options] -p PID[,PID...]\n"
      "  kscope faults [options] -t TID[,TID...]\n"
      "  kscope faults [options] -- COMMAND [ARGS...]");
  app->add_option("-p,--pid", o->pids, "Trace these running processes (all their threads)");
  app->add_option("-t,--tid", o->tids, "Trace only these threads (TID[,TID...], as perf -t)");
  app->add_option("--events", o->events_path, "Write one line per fault to FILE ('-' = stdout)");
  app->add_option("--stacks", o->stacks,
                  "Take each fault's call stack: user (dwarf: the native .eh_frame walker, the "
                  "default; fp: frame pointers) and, for kernel-mode faults, kernel")
      ->expected(0, 1)
      ->default_str("dwarf")
      ->option_text("[=dwarf|fp]");
  app->add_flag("--symbols", o->symbols,
                "With --events: add each fault's symbol, function+0xoff (module), resolved while "
                "tracing");
  app->add_option("--format", o->format, "Format of --events: text, csv or jsonl")
      ->check(CLI::IsMember({"text", "csv", "jsonl"}));
  app->add_option("-o,--output", o->output_path,
                  "Save a recording to FILE for 'kscope plot' (written while tracing)");
  add_duration_option(app, o->duration_s,
                      "Stop after SECONDS (default: until the processes exit or Ctrl-C)");
  auto* follow = app->add_flag_callback(
      "--follow-children", [o] { o->follow_children = true; },
      "Also trace processes the targets fork (default: on for COMMAND, off for -p)");
  auto* no_follow = app->add_flag_callback(
      "--no-follow-children", [o] { o->follow_children = false; },
      "Trace only the target processes, not what they fork");
  follow->excludes(no_follow);
  app->add_option("--rows", o->rows, "Plot height in lines (default 30)");
  app->add_option("--cols", o->cols, "Plot width in characters (default 70)");
  app->add_flag("--by-segment", o->by_segment, "One plot per segment that had faults");
  app->add_flag("--linear", o->linear,
                "Plot the raw address range instead of compressing the gaps between ranges");
  app->add_flag("--no-plot", o->no_plot, "Do not draw a plot at the end");
  app->add_option("--top", o->top, "Number of code locations in the summary (default 10)")
      ->check(CLI::Range(1, 1000));
  app->add_option("--ringbuf-mb", o->ringbuf_mb,
                  "Size of the BPF ring buffer in MiB, a power of two (default 16)");
  app->add_option("command", o->command, "COMMAND [ARGS...] to start and trace (after --)");
  app->footer(
      "Fields (--events, CSV header, JSONL keys): "
      "time_ns,pid,tid,comm,addr,ip,access,mode,kind,segment,latency_ns,cpu[,symbol with "
      "--symbols][,stack with --stacks: frames leaf first, ';'-separated]\n"
      "Segments: code [start_code,end_code) | data [start_data,start_brk) | heap [start_brk,brk) "
      "| stack (main thread) | file (other file mappings) | anon (other anonymous) | other "
      "(vdso, no VMA)\n"
      "Streams: with COMMAND the summary and plot go to stderr (stdout is the command's), and "
      "with --events - the command's stdout goes to stderr too; with -p/-t they go to stdout "
      "(stderr with --events -), with a one-line status on stderr when it is a terminal.\n"
      "Exit status: the command's own with COMMAND; 0 on success; 1 on error; 2 on bad usage; "
      "127 command not found.");
  return {app, [o] {
            auto r = run_faults(*o);
            if (!r) return report_error(r.error());
            return *r;
          }};
}

}  // namespace kscope::cli
