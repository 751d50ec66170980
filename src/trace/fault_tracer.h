// Traces every page fault of a set of processes with bpf/faults.bpf.c and hands decoded records
// to a FaultSink. Owns the BPF objects, the traced command, and the kernel-counter
// reconciliation.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/fault_record.h"
#include "model/fault_stacks.h"
#include "model/fault_summary.h"
#include "model/process_info.h"
#include "util/result.h"

namespace kscope {

class OpenFiles;

// Receives what the tracer sees, in ring-buffer order.
class FaultSink {
 public:
  virtual ~FaultSink() = default;
  virtual void on_fault(const FaultRecord& r) = 0;
  virtual void on_thread(const ThreadInfo& t) = 0;
  virtual void on_mappings(const MappingSnapshot& m) = 0;
  // kscope faults --stacks: a stack seen for the first time, before any fault that refers to it.
  virtual void on_stack(const FaultStack& stack) { (void)stack; }
  virtual void on_fork(const ForkEvent& fork) = 0;
  // exit.group_dead: the last live thread of its process (computed in the kernel program).
  virtual void on_exit(const ExitEvent& exit) = 0;
  // Tracing is armed for these processes (for COMMAND: it is about to exec).
  virtual void on_started(const std::vector<pid_t>& pids) { (void)pids; }
  // About once a second while tracing: flush outputs (and show progress). `lost` = fault
  // records lost so far (ring buffer full). An error stops tracing.
  virtual Status on_tick(uint64_t lost) {
    (void)lost;
    return {};
  }
};

// kscope faults --stacks[=dwarf|fp]: which user-stack walker, if any.
enum class FaultStackMode { kOff, kDwarf, kFramePointers };

struct FaultTraceOptions {
  std::vector<pid_t> pids;  // -p
  // -t: these threads only, each with its process (tgid); resolved by trace/targets.h.
  std::vector<std::pair<pid_t, pid_t>> threads;  // (tgid, tid)
  std::vector<std::string> command;              // -- COMMAND ARGS
  bool command_stdout_to_stderr = false;         // kscope's data uses stdout (--events -)
  bool follow_children = false;
  std::optional<double> duration_s;
  uint32_t ringbuf_bytes = 16u << 20;
  int verbosity = 0;
  FaultStackMode stacks = FaultStackMode::kOff;
  uint32_t max_stacks = 65536;      // distinct user stacks, and kernel (or fp) stacks, kept in BPF
  uint32_t unwind_rows = 1u << 21;  // the native walker's rows map (8 bytes per row)
  uint32_t unwind_files = 8192;
  uint32_t unwind_processes = 8192;
  // Where the unwinder looks for separate debug files (.debug_frame of files without
  // .eh_frame): the symbolizer's roots; empty = /usr/lib/debug.
  std::vector<std::string> unwind_debug_dirs;
  // The run's open files, shared with its symbolizer (symbols/open_files.h) so the unwinder
  // and the symbolizer open each file once; null = the unwinder's own.
  std::shared_ptr<OpenFiles> open_files;
};

struct FaultTraceOutcome {
  FaultRunTotals totals;
  std::optional<int> command_exit;  // the command's exit status (shell convention)
  std::string stop_reason;          // "process exited", "duration", "signal"
};

class FaultTracer {
 public:
  // Validates targets and privileges, loads and attaches the BPF programs, starts COMMAND at
  // its gate. Nothing is traced until run().
  static Result<std::unique_ptr<FaultTracer>> create(const FaultTraceOptions& options);
  ~FaultTracer();

  // Traces until the targets exit, the duration passes, or *stop becomes non-zero.
  Result<FaultTraceOutcome> run(FaultSink& sink, volatile sig_atomic_t* stop);

  // What the tracer holds per process, thread and stack (KSCOPE_FAULTS_SIZES, a diagnostic for
  // the soak and the churn test: none of it may grow with threads that came and went).
  struct Sizes {
    size_t processes = 0;          // traced processes known (live and exited)
    size_t processes_open = 0;     // of them, with a pidfd still open (not yet seen to exit)
    size_t thread_counters = 0;    // per-thread counters kept: before/after arming, final
    size_t exits_seen = 0;         // per-thread exit records kept for the end of the run
    size_t threads_folded = 0;     // exited threads born while traced, summed per process
    size_t mapping_records = 0;    // perf mmap records kept after each process's last maps read
    size_t held = 0;               // records waiting to be passed on in time order
    size_t stacks = 0;             // distinct (process, user stack, kernel stack) of the run
    std::string describe() const;  // "processes=N processes_open=N ..."
  };
  Sizes sizes() const;

  struct Impl;

 private:
  explicit FaultTracer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kscope
