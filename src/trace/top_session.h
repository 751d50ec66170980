// One `kscope top` run: the tracer, the samples, names, symbolized stacks, the whole-run
// profile (for --folded and recordings). Shared by the batch output and the live screen.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "model/recording.h"
#include "model/stack_profile.h"
#include "model/top_model.h"
#include "model/top_source.h"
#include "symbols/symbolizer.h"
#include "trace/top_tracer.h"
#include "util/result.h"

namespace kscope {

struct TopSessionOptions {
  TopTraceOptions trace;
  bool keep_whole_run = false;  // keep the values of exited threads for the whole-run profile
  // false (--once): no refresh() comes, so poll() retires exited threads (keeping what the
  // whole-run table needs of them) and drops exited processes about once a second.
  bool refreshes = true;
  std::string recording_path;  // -o
  RecordingMeta meta;          // for the recording
  SymbolizerOptions symbols;   // debug directories, debuginfod, JIT maps, kallsyms
  // A process left out of every table (kscope's own unless --show-self), 0: none. When it is
  // kscope itself, it is not traced at all; the tables show its CPU time from its own clock.
  uint32_t hide_pid = 0;
  // What is traced, for the headers ("all tasks", "PIDs 42").
  std::string scope;
  // --call-graph dwarf: the unwind tables of processes found while measuring (new processes,
  // execs, and every process when tracing all tasks) are loaded from poll(), ~50 ms of work at a
  // time, never at once: a churning machine would hold the first table back for a minute. User
  // stacks walked before a process's tables are in end with "[incomplete: process tables not
  // loaded yet]". true: the targets' (-p, -t) tables too (the live screen shows at once and says
  // what is loading); false (batch output): create() loads the targets' tables, so when it
  // returns their stacks are complete.
  bool defer_tables = false;
  // Accounts of living threads unchanged for this long are folded out of the kernel's maps
  // (TopTracer::fold_accounts; whole-run values kept in the retired store); 0: never.
  uint64_t fold_idle_ns = 30'000'000'000;
};

// The fold period: `configured`, or KSCOPE_TOP_FOLD_SECONDS when set (whole seconds, 0 = never
// fold, at most 86400: a knob for tests and the soak).
Result<uint64_t> top_fold_idle_ns(uint64_t configured);

// Where kscope top's own time went (for -v and bench/symbols_top_first_screen.sh): the steps of
// start-up, and the per-process work done while measuring.
struct TopTimings {
  std::vector<std::pair<std::string, uint64_t>> startup;  // step, ns (in order)
  uint64_t first_table_ns = 0;  // tracing start to the first table's sample (0: none yet)
  uint64_t process_events = 0, process_events_ns = 0;  // new threads/execs handled, time in them
  uint64_t table_loads = 0, table_loads_ns = 0;        // processes whose unwind tables were loaded
  uint64_t mapping_reads = 0, mapping_reads_ns = 0;    // /proc/PID/maps reads
  uint64_t samples = 0, samples_ns = 0;                // reads of the kernel's maps
  uint64_t sample_rereads = 0, samples_unsettled = 0;  // TopSample::rereads, ::unsettled
  uint64_t prunes = 0, prunes_ns = 0;                  // exited threads found and dropped
};

struct TopSummary {
  StackProfile profile;  // the whole run, value 0 = on-CPU ns
  TopCounters counters;  // the whole run
  std::string recording_note;
  TopTracer::Diagnostics diagnostics;
  uint32_t sample_hz = 0;                        // requested (-F), 0 without the sampler
  std::vector<SamplerLowering> sampler_lowered;  // when the governor lowered it
  std::vector<BinarySource> symbol_sources;      // where each binary's names came from (-v)
};

class TopSession : public TopSource {
 public:
  static Result<std::unique_ptr<TopSession>> create(const TopSessionOptions& options);
  ~TopSession() override;

  uint64_t start_ns() const override;
  int ncpus() const override;
  // Waits up to timeout_ms for kernel events (new processes: their mappings are read at once).
  Status poll(int timeout_ms) override;
  // With -p: every target process has exited.
  bool targets_gone();

  // Samples now; the table of the interval since the previous refresh (or the start).
  Result<TopTable> refresh(TopGroupBy by, TopSortKey sort) override;
  // The last refreshed interval again, grouped/sorted differently (no new sample).
  TopTable regroup(TopGroupBy by, TopSortKey sort) override;
  // Samples now; the table of everything since tracing started.
  Result<TopTable> table_since_start(TopGroupBy by, TopSortKey sort);

  TopTable group_stacks(const TopRow& row, TopGroupBy row_group_by, TopSortKey sort) override;

  // The symbolized stacks of a row (cached).
  TopStackView stack_view(const TopRow& row) override;
  std::string scope() const override;
  size_t tables_pending() const override;

  TopTimings timings() const;

  // What the native unwinder did (empty with --call-graph fp).
  UnwindSummary unwind_report();
  // The kernel's stack map (`stacks`, TopTracer::reclaim_stacks): entries after the last
  // reclaim pass and its capacity, entries deleted since the start, entries an account came to
  // refer to as they were deleted (frames kept), and ids referenced by the next pass that
  // another stack took (an upper bound of accounts showing a newer stack:
  // TopTracer::reclaim_stacks).
  struct KernelStackReport {
    size_t stored = 0, capacity = 0;
    uint64_t reclaimed = 0, kept = 0, reused = 0;
  };
  KernelStackReport kernel_stack_report();
  // Folding of idle accounts (TopTracer::fold_accounts), since tracing started: the period,
  // accounts folded out of the kernel's maps, those of them carried because their thread used
  // them again meanwhile (and carried now), threads' newest accounts left alone.
  struct FoldReport {
    uint64_t idle_ns = 0;
    uint64_t folds = 0, carries = 0, newest_kept = 0;
    size_t carried_now = 0;
  };
  FoldReport fold_report() const;

  // Final sample, whole-run profile, recording trailer. Call once, at the end.
  Result<TopSummary> finish();

  struct Impl;

 private:
  explicit TopSession(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kscope
