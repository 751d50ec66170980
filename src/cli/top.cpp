// kscope top: exact on-CPU time, schedule-ins, voluntary/involuntary switches and run-queue wait
// per task and per kernel+user stack, live (ncurses) or in batch (text/JSON), with folded stacks
// and recordings.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <unordered_map>

#include "cli/commands.h"
#include "export/folded.h"
#include "model/top_aggregator.h"
#include "model/top_profile.h"
#include "render/top_live.h"
#include "render/top_text.h"
#include "trace/proc.h"
#include "trace/top_session.h"
#include "util/clock.h"
#include "util/invoking_user.h"

namespace kscope::cli {

namespace {

struct TopCliOptions {
  std::string pids;
  std::string tids;
  std::string comm;
  int rows = 20;
  double interval_s = 1.0;
  std::string by;  // empty: tid on the live screen, stack in batch output
  std::string sort = "oncpu";
  bool show_self = false;
  bool kernel_only = false;
  bool user_only = false;
  bool no_stacks = false;
  bool once = false;
  double duration_s = 0;
  std::string format = "text";
  std::string folded_path;
  std::string output_path;
  bool idle = false;
  bool batch = false;  // --batch: force batch mode even on a terminal
  uint32_t max_accounts = 65536;
  uint32_t max_stacks = 16384;
  uint32_t max_user_stacks = 0;  // 0: as --max-accounts
  std::string call_graph = "dwarf";
  std::string frequency = "999";  // -F: the on-CPU sampler's rate (Hz or "max")
  std::string value = "oncpu";    // --value: what --folded weighs stacks by
  uint32_t unwind_rows = 1u << 21;
};

// -v: where kscope top's own time went, from start-up to the end.
std::string describe(const TopTimings& t) {
  auto ms = [](uint64_t ns) { return fmt::format("{:.1f} ms", static_cast<double>(ns) / 1e6); };
  std::string out = "start-up: ";
  for (size_t i = 0; i < t.startup.size(); ++i)
    out += fmt::format("{}{} {}", i ? ", " : "", t.startup[i].first, ms(t.startup[i].second));
  return out + fmt::format(
                   "; first table {} after tracing started; {} process events ({}), unwind tables "
                   "of {} processes ({}), {} /proc maps reads ({}), {} reads of the kernel's maps "
                   "({}; {} again because a slice began or ended meanwhile, {} left so), {} prune "
                   "passes ({})",
                   ms(t.first_table_ns), t.process_events, ms(t.process_events_ns), t.table_loads,
                   ms(t.table_loads_ns), t.mapping_reads, ms(t.mapping_reads_ns), t.samples,
                   ms(t.samples_ns), t.sample_rereads, t.samples_unsettled, t.prunes,
                   ms(t.prunes_ns));
}

Result<int> run_top(const TopCliOptions& o) {
  // ---- Validate everything before touching the kernel ----
  TopSessionOptions so;
  if (!o.pids.empty()) {
    auto pids = proc::parse_pid_list(o.pids);
    if (!pids) return usage_error(pids.error().message);
    so.trace.pids = *pids;
  }
  if (!o.tids.empty()) {
    if (!o.pids.empty()) return usage_error("-p and -t exclude each other");
    auto tids = proc::parse_pid_list(o.tids);
    if (!tids) return usage_error(tids.error().message);
    KSCOPE_ASSIGN_OR_RETURN(so.trace.threads,
                            resolve_thread_targets(*tids, /*kernel_threads_ok=*/true));
  }
  so.trace.comm = o.comm;
  so.trace.include_idle = o.idle;
  if (o.kernel_only && o.user_only)
    return usage_error("--kernel-only and --user-only exclude each other");
  so.trace.kernel_stacks = !o.user_only && !o.no_stacks;
  so.trace.user_stacks = !o.kernel_only && !o.no_stacks;
  so.trace.max_accounts = o.max_accounts;
  so.trace.max_stacks = o.max_stacks;
  so.trace.max_user_stacks = o.max_user_stacks ? o.max_user_stacks : o.max_accounts;
  so.trace.dwarf_unwind = o.call_graph == "dwarf";
  so.trace.unwind_rows = o.unwind_rows;
  so.trace.record_slices = !o.output_path.empty();
  if (o.no_stacks) {
    so.trace.sample_hz = 0;  // no stacks, no sampler
  } else {
    KSCOPE_ASSIGN_OR_RETURN(so.trace.sample_hz, parse_sample_rate(o.frequency));
    if (auto limit = perf_cpu_time_max_percent()) so.trace.sampler_max_percent = *limit;
  }
  // Without a recording the ring buffer carries only rare process events: keep it small (its
  // pages are mapped into this process and count in its RSS).
  so.trace.ringbuf_bytes = so.trace.record_slices ? (8u << 20) : (256u << 10);
  so.trace.verbosity = global_options().verbose;
  so.keep_whole_run = !o.folded_path.empty() || !o.output_path.empty();
  so.refreshes = !o.once;
  KSCOPE_ASSIGN_OR_RETURN(so.fold_idle_ns, top_fold_idle_ns(so.fold_idle_ns));
  so.recording_path = o.output_path;
  so.symbols = symbolizer_options();
  so.trace.unwind_debug_dirs = so.symbols.debug_search.debug_dirs;
  {
    std::vector<uint32_t> targets(so.trace.pids.begin(), so.trace.pids.end());
    for (const auto& t : so.trace.threads) targets.push_back(static_cast<uint32_t>(t.tgid));
    so.meta = make_recording_meta(targets);
  }
  KSCOPE_ASSIGN_OR_RETURN(const char* folded_value, top_folded_value(o.value));
  bool interactive = !o.once && !o.batch && isatty(STDOUT_FILENO) && isatty(STDIN_FILENO);
  // The screen lists threads (like top -H) and expands one into its stacks; batch output keeps
  // one row per stack, which carries both the on-CPU and the off-CPU numbers.
  auto group = parse_group_by(o.by.empty() ? (interactive ? "tid" : "stack") : o.by);
  if (!group) return usage_error("--by must be stack, tid, pid or comm");
  // Without stacks there is nothing to group by stack: one row per thread.
  if (o.no_stacks && *group == TopGroupBy::kStack) group = TopGroupBy::kTid;
  auto sort_key = parse_sort_key(o.sort);
  if (!sort_key) return usage_error("--sort: unknown key '" + o.sort + "'");
  // kscope's own threads are hidden when it traces everything, unless asked for (-p, -t and
  // --comm trace only what they name).
  const bool everything = o.pids.empty() && o.tids.empty() && o.comm.empty();
  so.hide_pid = everything && !o.show_self ? static_cast<uint32_t>(::getpid()) : 0;
  if (o.rows < 1) return usage_error("-n must be at least 1");
  if (!(o.interval_s >= 0.05 && o.interval_s <= 3600))
    return usage_error("-d must be between 0.05 and 3600 seconds");
  if (o.duration_s < 0) return usage_error("--duration must be positive");
  if (o.format != "text" && interactive)
    return usage_error("--format json is for batch mode (--once, or stdout not a terminal)");

  // Outputs are opened before tracing, so an unwritable path fails first.
  std::FILE* folded = nullptr;
  if (!o.folded_path.empty()) {
    auto fd = create_output_file(o.folded_path, 0666);
    if (!fd)
      return make_error(fmt::format("cannot write '{}'", o.folded_path), fd.error().sys_errno);
    folded = ::fdopen(fd->release(), "w");
    if (!folded) return errno_error("fdopen");
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> folded_owner(folded,
                                                               folded ? &std::fclose : nullptr);

  so.scope = !o.tids.empty()   ? fmt::format("TIDs {}", o.tids)
             : !o.pids.empty() ? fmt::format("PIDs {}", o.pids)
                               : std::string("all tasks");
  if (!o.comm.empty()) so.scope += fmt::format(" named {}", o.comm);
  // The live screen shows at once and loads unwind tables while it runs (its header says so).
  so.defer_tables = interactive;
  KSCOPE_ASSIGN_OR_RETURN(auto session, TopSession::create(so));
  volatile sig_atomic_t* stop = install_stop_handlers();
  std::fprintf(stderr, "kscope top: measuring %s (Ctrl-C to stop)\n", so.scope.c_str());

  const uint64_t interval_ns = static_cast<uint64_t>(o.interval_s * 1e9);
  const uint64_t start = session->start_ns();
  const StackProvider stacks = [&session](const TopRow& row) { return session->stack_view(row); };
  std::optional<uint64_t> deadline;
  if (o.once)
    deadline = start + static_cast<uint64_t>((o.duration_s > 0 ? o.duration_s : 1.0) * 1e9);
  else if (o.duration_s > 0)
    deadline = start + static_cast<uint64_t>(o.duration_s * 1e9);

  TopSortKey sort = *sort_key;
  TopGroupBy by = *group;
  size_t max_rows = static_cast<size_t>(o.rows);
  std::string stop_reason = "signal";
  uint64_t printed_ns = 0;  // --once: when its table was out (after tracing started), for -v

  if (interactive) {
    KSCOPE_ASSIGN_OR_RETURN(
        int rc, run_top_screen(*session, by, sort, !o.no_stacks, interval_ns, deadline, stop));
    (void)rc;
    stop_reason = "quit";
  } else if (o.once) {
    while (!*stop) {
      uint64_t now = monotonic_ns();
      if (now >= *deadline) {
        stop_reason = "duration";
        break;
      }
      KSCOPE_TRY(
          session->poll(static_cast<int>(std::min<uint64_t>((*deadline - now) / 1000000 + 1, 50))));
      if (session->targets_gone()) {
        stop_reason = "processes exited";
        break;
      }
    }
    KSCOPE_ASSIGN_OR_RETURN(TopTable table, session->table_since_start(by, sort));
    std::string text = o.format == "json" ? render_top_json(table, max_rows, stacks)
                                          : render_top_text(table, max_rows, stacks);
    std::fputs(text.c_str(), stdout);
    printed_ns = monotonic_ns() - start;
    std::fflush(stdout);
  } else {
    // Batch, repeated: one table per interval (like `top -b`), until Ctrl-C, --duration or
    // the processes exit.
    uint64_t next = start + interval_ns;
    while (!*stop) {
      uint64_t now = monotonic_ns();
      if (deadline && now >= *deadline) {
        stop_reason = "duration";
        break;
      }
      if (now >= next) {
        KSCOPE_ASSIGN_OR_RETURN(TopTable table, session->refresh(by, sort));
        std::string text = o.format == "json" ? render_top_json(table, max_rows, stacks)
                                              : render_top_text(table, max_rows, stacks) + "\n";
        if (std::fputs(text.c_str(), stdout) < 0 || std::fflush(stdout) != 0) {
          stop_reason = "output closed";
          break;
        }
        next += interval_ns;
        if (next <= now) next = now + interval_ns;
        if (session->targets_gone()) {
          stop_reason = "processes exited";
          break;
        }
        continue;
      }
      uint64_t wait = std::min(next, deadline.value_or(next)) - now;
      KSCOPE_TRY(session->poll(static_cast<int>(std::min<uint64_t>(wait / 1000000 + 1, 100))));
    }
  }

  KSCOPE_ASSIGN_OR_RETURN(TopSummary summary, session->finish());
  const uint64_t finished_ns = monotonic_ns() - start;
  print_symbol_sources(summary.symbol_sources);
  if (folded) {
    FoldedOptions fo;
    fo.value_index = summary.profile.value_index(folded_value).value_or(0);
    KSCOPE_TRY(write_folded(summary.profile, folded, fo));
  }
  if (!summary.sampler_lowered.empty())
    std::fprintf(stderr, "kscope top: on-CPU by stack %s\n",
                 sampler_rate_text(summary.sample_hz, summary.sampler_lowered).c_str());
  if (summary.counters.lost())
    std::fprintf(stderr, "kscope top: lost over the whole run: %s\n",
                 top_lost_breakdown(summary.counters).c_str());
  if (!o.output_path.empty())
    std::fprintf(stderr, "kscope top: recording written to %s (%s)\n", o.output_path.c_str(),
                 summary.recording_note.c_str());
  if (global_options().verbose) {
    std::fprintf(stderr, "kscope top: stopped: %s\n", stop_reason.c_str());
    std::fprintf(
        stderr, "kscope top: own time: %s; %s%.1f ms: finished\n",
        describe(session->timings()).c_str(),
        printed_ns ? fmt::format("{:.1f} ms: table printed, ", printed_ns / 1e6).c_str() : "",
        static_cast<double>(finished_ns) / 1e6);
    const auto& d = summary.diagnostics;
    std::fprintf(stderr,
                 "kscope top: diagnostics: %llu schedule-ins no sched_switch event showed (counted "
                 "from schedstat; %llu off-CPU intervals they ended were dated by the next "
                 "slice's CPU time), %llu switch-ins while a slice was open (a switch-out no "
                 "event showed), %llu wakeups of a thread running since before tracing\n",
                 static_cast<unsigned long long>(d.untraced_switch_ins),
                 static_cast<unsigned long long>(d.offcpu_dated),
                 static_cast<unsigned long long>(d.double_switch_ins),
                 static_cast<unsigned long long>(d.woken_running));
    auto k = session->kernel_stack_report();
    auto f = session->fold_report();
    auto U = [](uint64_t v) { return static_cast<unsigned long long>(v); };
    std::fprintf(
        stderr,
        "kscope top: stack map: %zu of %zu entries; %llu reclaimed, %llu referenced as "
        "they were reclaimed (frames kept), %llu reused by another stack by the next pass\n"
        "kscope top: accounts folded (idle %llu s): %llu, %llu of them carried (used again as "
        "folded; %zu now), %llu threads' newest left alone\n",
        k.stored, k.capacity, static_cast<unsigned long long>(k.reclaimed),
        static_cast<unsigned long long>(k.kept), static_cast<unsigned long long>(k.reused),
        U(f.idle_ns / 1'000'000'000), U(f.folds), U(f.carries), f.carried_now, U(f.newest_kept));
    if (UnwindSummary u = session->unwind_report(); u.walks > 0 || u.files > 0) {
      std::string ended;
      for (const auto& [why, n] : u.ended)
        ended += fmt::format("{}{} {}", ended.empty() ? "" : ", ", n, why);
      std::fprintf(stderr,
                   "kscope top: user stacks (dwarf): %llu walks: %s; %llu frames via frame "
                   "pointers; tables: %zu files, %zu of %zu rows (%llu bytes), %zu files without "
                   "table, %zu without room, %zu mappings over the per-process limit; %zu "
                   "tables from .debug_frame (%zu in separate debug files); %zu tables of "
                   "unmapped files freed (%zu rows); stacks stored: %zu of %zu (%llu reclaimed, "
                   "%llu put back)\n",
                   static_cast<unsigned long long>(u.walks), ended.c_str(),
                   static_cast<unsigned long long>(u.fp_frames), u.files, u.rows, u.rows_capacity,
                   static_cast<unsigned long long>(u.table_bytes), u.files_no_table,
                   u.files_no_room, u.mappings_dropped, u.files_debug_frame, u.debug_files,
                   u.files_freed, u.rows_freed, u.stacks_stored, u.stacks_capacity,
                   static_cast<unsigned long long>(u.stacks_reclaimed),
                   static_cast<unsigned long long>(u.stacks_restored));
      std::fprintf(stderr, "kscope top: early mappings: %s\n", describe(u.early).c_str());
    }
  }
  return 0;
}

}  // namespace

Subcommand setup_top(CLI::App& parent) {
  auto o = std::make_shared<TopCliOptions>();
  auto* app = parent.add_subcommand(
      "top",
      "Exact on-CPU time, schedule-ins, voluntary/involuntary switches and run-queue wait per "
      "task and per kernel+user stack, measured at every context switch.\n"
      "  kscope top [options]            live screen (stdout a terminal) or a table per interval\n"
      "  kscope top --once [--duration S] [--format json]   measure once, print, exit");
  app->add_option("-p,--pid", o->pids, "Only these processes (PID[,PID...])");
  app->add_option("-t,--tid", o->tids, "Only these threads (TID[,TID...], as perf -t)");
  app->add_option("--comm", o->comm, "Only threads with this name (exact, as in /proc/TID/comm)");
  app->add_option("-n,--rows", o->rows, "Rows to show (default 20)");
  app->add_option("-d,--delay", o->interval_s, "Refresh interval in seconds (default 1)");
  app->add_option("--by", o->by,
                  "Group by tid, pid, comm or stack. Default: tid on the live screen (Enter "
                  "expands a thread into its on-CPU and off-CPU stacks), stack in batch output "
                  "(--once, --batch, stdout not a terminal)")
      ->check(CLI::IsMember({"stack", "tid", "pid", "comm"}));
  app->add_option("--sort", o->sort,
                  "Sort by oncpu (default), offcpu, switches, vol, invol, avg-slice, runq, slice, "
                  "pid or comm; `--by stack --sort switches` is the schedule-count view")
      ->check(CLI::IsMember({"oncpu", "offcpu", "switches", "vol", "invol", "avg-slice", "runq",
                             "slice", "pid", "comm"}));
  app->add_flag(
      "--show-self", o->show_self,
      "Show kscope's own threads (hidden when tracing all tasks; their on-CPU time is then in the "
      "header and JSON's hidden_self)");
  auto* ko = app->add_flag("--kernel-only", o->kernel_only, "Collect and show kernel stacks only");
  auto* uo = app->add_flag("--user-only", o->user_only, "Collect and show user stacks only");
  ko->excludes(uo);
  auto* ns = app->add_flag("--no-stacks", o->no_stacks,
                           "Collect no stacks: per-thread accounting only, the cheapest mode");
  ns->excludes(ko);
  ns->excludes(uo);
  app->add_flag("--once", o->once,
                "Batch mode: measure for --duration (default 1 s), print one table, exit");
  app->add_flag("--batch", o->batch, "Batch output even when stdout is a terminal");
  add_duration_option(
      app, o->duration_s,
      "With --once: how long to measure (default 1 s); otherwise stop after SECONDS");
  app->add_option("--format", o->format, "Batch output format: text (default) or json")
      ->check(CLI::IsMember({"text", "json"}));
  app->add_option("--folded", o->folded_path,
                  "At the end, write folded stacks of the whole run to FILE (value: --value)");
  app->add_option("--value", o->value,
                  "What --folded weighs stacks by: oncpu (default: sampled on-CPU ns), offcpu "
                  "(off-CPU ns by switch-out stack) or switches");
  app->add_option("-o,--output", o->output_path, "Save a recording to FILE for 'kscope report'");
  app->add_flag("--idle", o->idle, "Include the idle tasks (pid 0)");
  app->add_option(
         "--max-accounts", o->max_accounts,
         "Size of the kernel's account table (default 65536; accounts of living threads idle "
         "30 s are folded out, KSCOPE_TOP_FOLD_SECONDS; overflow is counted)")
      ->check(CLI::Range(1024u, 1u << 24));
  app->add_option(
         "--max-stacks", o->max_stacks,
         "Size of the kernel's stack table (default 16384; stacks no account refers to are "
         "reclaimed; collisions are counted)")
      ->check(CLI::Range(1024u, 1u << 22));
  app->add_option("--max-user-stacks", o->max_user_stacks,
                  "Size of the kernel's table of user stacks walked with --call-graph dwarf "
                  "(default: as --max-accounts, 65536; ~1 KiB each when used; stacks no account "
                  "refers to are reclaimed; a full table is counted as lost)")
      ->check(CLI::Range(64u, 1u << 22));
  app->add_option("--call-graph", o->call_graph,
                  "How user stacks are walked: dwarf (default: kscope's walker with .eh_frame "
                  "tables, complete stacks without frame pointers) or fp (the kernel's "
                  "frame-pointer walk, bpf_get_stackid: cheaper, no tables to read, but short or "
                  "wrong stacks in code built without frame pointers)")
      ->check(CLI::IsMember({"dwarf", "fp"}));
  app->add_option("-F,--freq", o->frequency,
                  "On-CPU sampling rate per CPU in Hz (default 999), or 'max' for the kernel's "
                  "limit (/proc/sys/kernel/perf_event_max_sample_rate). Lowered (and said so) "
                  "when its own time or its timer's interrupts exceed perf_cpu_time_max_percent");
  app->add_option("--unwind-rows", o->unwind_rows,
                  "Capacity of the kernel's unwind-table map in rows, 8 bytes each (default "
                  "2097152; files that do not fit are counted and their frames end the stack)")
      ->check(CLI::Range(1024u, 1u << 26));
  app->footer(
      "Columns: SWITCHES = schedule-ins; VOL/INVOL = switch-outs because the task blocked / was "
      "preempted; ON-CPU = exact time on CPU; %CPU = ON-CPU / interval (100 = one CPU); AVG "
      "SLICE = ON-CPU / switch-outs; RUNQ WAIT = time runnable but waiting for a CPU.\n"
      "Live screen: shows once tracing runs; the header names what is traced (PIDs, TIDs, all "
      "tasks) and, with --call-graph dwarf, the unwind tables still loading (stacks walked before "
      "end with [incomplete: no table]). Batch output loads the tables of -p/-t targets before "
      "measuring; every other process's are loaded while measuring, ~50 ms at a time. -v ends "
      "with where kscope's own time went.\n"
      "Keys (live screen): Up/Down select, Enter (or Right) expands the selected thread into its "
      "on-CPU stacks (sampled, scaled: ON-CPU, SAMPLES) and off-CPU stacks (exact: OFF-CPU, "
      "RUNQ, VOL/INVOL), Enter/Left/Esc collapse; s sort column, g grouping (tid, pid, comm, "
      "stack), p pause, / filter by name, q quit.\n"
      "JSON (--once --format json): "
      "{\"interval_ns\",\"end_monotonic_ns\",\"group_by\",\"lost\",\"tasks\":[{\"rank\","
      "\"pid\",\"tid\",\"comm\",\"switches\",\"voluntary\",\"involuntary\",\"oncpu_ns\","
      "\"runq_wait_ns\",\"kernel_stack\":[{\"addr\",\"symbol\",\"offset\",\"module\"}],"
      "\"user_stack\":[...]}]}; with --call-graph dwarf (the default) a user stack the walk could "
      "not finish "
      "ends with {\"symbol\":\"[incomplete: REASON]\",\"marker\":true}, and \"unwind\" counts "
      "the walks by outcome\n"
      "Exit status: 0 on success; 1 on error; 2 on bad usage.");
  return {app, [o] {
            auto r = run_top(*o);
            if (!r) return report_error(r.error());
            return *r;
          }};
}

}  // namespace kscope::cli
