// Loads bpf/top.bpf.c and reads its accounts: kscope top's kernel side. Everything the kernel
// measured comes out as a TopSample (cumulative since attach, running slices included).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "model/process_info.h"
#include "model/top_model.h"
#include "trace/targets.h"
#include "util/result.h"

namespace kscope {

class OpenFiles;  // symbols/open_files.h

struct TopTraceOptions {
  std::vector<pid_t> pids;            // -p: only these processes (empty: all)
  std::vector<ThreadTarget> threads;  // -t: only these threads (empty: all)
  std::string comm;                   // --comm: only threads with this name (empty: all)
  bool include_idle = false;          // --idle
  bool exclude_self = false;          // kscope's own process is not traced (hidden from tables)
  bool kernel_stacks = true;          // false with --user-only
  bool user_stacks = true;            // false with --kernel-only
  // --call-graph dwarf (kscope top's default): user stacks walked in BPF with .eh_frame tables
  // (bpf/unwind.bpf.h); false (--call-graph fp): bpf_get_stackid's frame-pointer walk.
  bool dwarf_unwind = false;
  uint32_t unwind_rows = 1u << 21;  // rows map capacity (8 bytes per row in the kernel's map)
  uint32_t unwind_files = 8192;
  uint32_t unwind_processes = 8192;
  // Roots of separate debug files (.debug_frame of files without .eh_frame); empty: the default.
  std::vector<std::string> unwind_debug_dirs;
  // The run's open files, shared with its symbolizer (symbols/open_files.h) so the unwinder
  // and the symbolizer open each file once; null = the unwinder's own.
  std::shared_ptr<OpenFiles> open_files;
  bool record_slices = false;  // stream every on-CPU slice (for recordings)
  // The cpu-clock sampler (on-CPU time by stack): samples per second per CPU, 0 = off (no stacks).
  uint32_t sample_hz = 999;
  // The most of one CPU the sampler's own BPF time may take, in percent (the kernel's
  // perf_cpu_time_max_percent, read by the CLI); over it the rate is halved until it holds.
  // 0 or 100: no limit, as for the kernel.
  uint32_t sampler_max_percent = 25;
  uint32_t max_accounts = 65536;
  uint32_t max_stacks = 16384;
  // Capacity of the native walk's user stack map (`ustacks`; entries are allocated when used,
  // ~1 KiB each). Unreferenced entries are reclaimed (reclaim_user_stacks), so it must hold the
  // stacks live accounts and sample counts refer to: sized like the accounts map by default
  // (docs/RELIABILITY.md has the measured fill).
  uint32_t max_user_stacks = 65536;
  uint32_t ringbuf_bytes = 8u << 20;
  int verbosity = 0;
};

// A thread the kernel saw for the first time, or a process that called exec.
struct TopProcessEvent {
  uint32_t pid = 0;
  uint32_t tid = 0;
  bool exec = false;
  uint64_t time_ns = 0;  // CLOCK_MONOTONIC
  std::string comm;      // the thread's name
};

// One on-CPU slice of a traced thread (only with record_slices).
struct TopSliceEvent {
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint32_t cpu = 0;
  bool voluntary = false;
  uint64_t start_ns = 0;  // CLOCK_MONOTONIC
  uint64_t end_ns = 0;
  std::string comm;
};

// A user stack as walked: its frames and, for the native walk, why it ended.
struct UserStack {
  std::vector<uint64_t> ips;  // ips[0] = where the thread was, then return addresses
  bool native = false;        // walked by the .eh_frame unwinder (else frame pointers)
  uint8_t reason = 0;         // kscope_unwind_reason (0: complete) when native
};

// The kernel's limit on perf sampling rates (/proc/sys/kernel/perf_event_max_sample_rate).
Result<uint32_t> perf_max_sample_rate();
// The kernel's limit on the CPU share of perf sample handling, in percent
// (/proc/sys/kernel/perf_cpu_time_max_percent; 0 and 100 mean no limit).
Result<uint32_t> perf_cpu_time_max_percent();
// Parses -F: a rate in Hz (1 .. the kernel's limit) or "max".
Result<uint32_t> parse_sample_rate(const std::string& text);

// "no table", "depth limit", ...: the words for a kscope_unwind_reason.
const char* unwind_reason_name(uint8_t reason);

class TopTracer {
 public:
  // Checks targets and privileges, loads and attaches. Measuring starts here.
  static Result<std::unique_ptr<TopTracer>> create(const TopTraceOptions& options);
  ~TopTracer();

  // Everything measured so far. Accounts are read before the running slices so a slice that
  // ends in between is counted later, never twice.
  Result<TopSample> sample();

  // The addresses of a stack id from the accounts (leaf first), or the frames kept of an entry
  // reclaim_stacks() deleted; empty when it was evicted.
  std::vector<uint64_t> stack(int32_t id);

  // A user stack id of the accounts: native walks carry their outcome.
  UserStack user_stack(int32_t id);
  bool native_unwind() const;
  // Loads the unwind tables of a process's executable mappings (no-op with frame pointers).
  Status load_unwind_tables(uint32_t pid, const std::vector<Mapping>& mappings);
  void forget_unwind_process(uint32_t pid);
  UnwindSummary unwind_report();

  // Waits up to timeout_ms for process/slice events and hands them to the handlers; with
  // budget_ns > 0, stops handling after that long (the rest waits for the next call).
  Status poll(int timeout_ms, uint64_t budget_ns = 0);
  void on_process(std::function<void(const TopProcessEvent&)> handler);
  void on_slice(std::function<void(const TopSliceEvent&)> handler);

  // Removes the accounts of threads that exited (after a sample() showed their last values),
  // so the maps stay bounded on long runs.
  void forget_threads(const std::vector<uint32_t>& tids);
  // Folds accounts of living threads that have been idle out of the kernel's maps (switch
  // accounts and sample counts), so the maps hold the stacks threads use now, not every stack
  // they ever used: `idle` are keys with the values the last sample() showed for them, unchanged
  // over the caller's fold period. Each is read and deleted in one step. Folded: it held exactly
  // those values, and the caller moves them out of its samples (to the whole-run store, if it
  // keeps one); when the same stack is used again, the account starts from zero. Carried: it
  // held more (the thread used that stack again meanwhile): sample() adds what it held from now
  // on, so for the caller nothing changed. Never folded: a thread's newest account (where its
  // next off-CPU interval and run-queue wait will be added, by its last switch-out time) and
  // the idle tasks'.
  struct FoldResult {
    std::vector<std::pair<TopAccountKey, TopValues>> folded;
    // Since tracing started: accounts deleted, those carried, newest accounts left alone.
    uint64_t folds = 0, carries = 0, newest_kept = 0;
    size_t carried_now = 0;  // held in user space now
  };
  FoldResult fold_accounts(const std::vector<std::pair<TopAccountKey, TopValues>>& idle);

  // Deletes user stacks (by id) that no account refers to any more, the stacks of exited
  // processes, so the stack maps do not fill up with processes that came and went.
  void forget_user_stacks(const std::vector<int32_t>& ids);

  // Reclaims entries of the native walk's user stack map (`ustacks`) that no account refers to;
  // `in_use` holds every user stack id a sample read just before refers to (accounts, sample
  // counts, running slices). Ids are content-addressed (31 bits of the frames' hash), so the
  // same stack walked again gets the same id. An entry is deleted only when it was unreferenced
  // at the previous call too (a stack stored just before its account was created is referenced
  // by then), and its frames are kept until the next call: a walk that found the entry just
  // before the delete may create an account with the id after it, and then the entry is put
  // back (restored) at the next call; user_stack() reads the kept copy meanwhile. No-op with
  // --call-graph fp. Returns the ids deleted (cached frames of them must go: after the next
  // call, another stack could take the id).
  struct UserStackReclaim {
    size_t stored = 0;    // entries in the map before this call
    size_t deleted = 0;   // reclaimed now
    size_t restored = 0;  // deleted at the previous call, referenced since: put back
    std::vector<int32_t> deleted_ids;
  };
  UserStackReclaim reclaim_user_stacks(const std::unordered_set<int32_t>& in_use);
  // Reclaims entries of the kernel's stack map (`stacks`: kernel stacks, and user stacks with
  // --call-graph fp) that nothing refers to. `in_use` holds every id a sample read just before
  // refers to (kernel stacks, and frame-pointer user stacks); `keep` ids are never deleted here
  // (frame-pointer user stacks: forget_user_stacks() deletes them when their process exits).
  // An id is a bucket (the frames' hash modulo the map's size): the same stack walked again
  // gets the same id, and another stack of the same bucket collides (counted) while it is
  // taken. As for user stacks, an entry is deleted only when unreferenced at two calls in a
  // row, and its frames are kept until the next call. The kernel refuses updates of this map
  // type from user space, so an entry cannot be put back: when a walk found the entry just
  // before the delete and an account refers to the id by the next call, the frames stay kept
  // (stack() reads them) for as long as an account refers to the id, unless the bucket holds
  // the same stack again (a walk stored it anew). An id deleted at the previous call that is
  // referenced and holds another stack now is counted as `reused`: usually a new stack took
  // the freed bucket (its accounts are its own), but a walk may also have raced the delete, and
  // its account then shows the newer stack; the two cannot be told apart, so `reused` is an
  // upper bound of that loss. Returns the ids whose cached frames must go.
  struct StackReclaim {
    size_t stored = 0;   // entries in the map before this call
    size_t deleted = 0;  // reclaimed now
    size_t kept = 0;     // deleted at the previous call, referenced since, bucket empty: kept
    size_t reused = 0;   // deleted or kept, referenced, another stack in the bucket now
    std::vector<int32_t> dropped_ids;
  };
  StackReclaim reclaim_stacks(const std::unordered_set<int32_t>& in_use,
                              const std::unordered_set<int32_t>& keep);
  // Entries in `stacks` now and its capacity.
  std::pair<size_t, size_t> stack_entries();
  // Entries in `ustacks` now and its capacity (0, 0 with --call-graph fp).
  std::pair<size_t, size_t> user_stack_entries();

  // Consistency diagnostics from the kernel side (for -v).
  struct Diagnostics {
    uint64_t untraced_switch_ins = 0;  // schedule-ins (schedstat) no sched_switch event showed
    uint64_t double_switch_ins = 0;    // switch-ins while a slice was open
    uint64_t offcpu_dated = 0;   // off-CPU intervals ended by an untraced switch-in, dated by the
                                 // next slice's CPU time
    uint64_t woken_running = 0;  // wakeups of a thread running since before tracing started
  };
  Diagnostics diagnostics();

  uint64_t start_ns() const;  // CLOCK_MONOTONIC when measuring started
  // How long each step of create() took (for -v): "BPF load" (open, size, verify), "attach", ...
  const std::vector<std::pair<std::string, uint64_t>>& startup_phases() const;
  uint32_t sample_hz() const;  // the sampler's requested rate, 0 without it
  // Each time the sampler's rate was lowered because its own time went over the limit.
  std::vector<SamplerLowering> sampler_lowered() const;
  int ncpus() const;

  struct Impl;

 private:
  explicit TopTracer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kscope
