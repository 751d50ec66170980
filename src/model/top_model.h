// kscope top's model: cumulative per-account values read from the kernel (TopSample), grouped
// and differenced into the table one refresh shows (TopTable). No libbpf here.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/unwind_early_counts.h"
#include "util/units.h"

namespace kscope {

// Stack ids that are not ids of the kernel's stack map (include/kscope/abi/top.h).
inline constexpr int32_t kStackNone = -1;       // not collected
inline constexpr int32_t kStackCollision = -2;  // lost to a stack-map collision
inline constexpr int32_t kStackError = -3;      // could not be read
inline constexpr int32_t kStackUnknown = -4;    // running since before tracing started
// The on-CPU time of a thread the sampler never caught running (model only, not a kernel id).
inline constexpr int32_t kStackNotSampled = -5;
// A native user stack walked but not stored: the kernel's user stack map was full (lost).
inline constexpr int32_t kStackFull = -6;

// One account: a thread and the kernel+user stack it had when switched out.
struct TopAccountKey {
  uint32_t pid = 0;  // thread group id
  uint32_t tid = 0;
  int32_t kstack = kStackNone;
  int32_t ustack = kStackNone;
  bool operator==(const TopAccountKey&) const = default;
  auto operator<=>(const TopAccountKey&) const = default;
};
struct TopAccountKeyHash {
  size_t operator()(const TopAccountKey& k) const {
    uint64_t a = (uint64_t{k.pid} << 32) | k.tid;
    uint64_t b =
        (uint64_t{static_cast<uint32_t>(k.kstack)} << 32) | static_cast<uint32_t>(k.ustack);
    return std::hash<uint64_t>{}(a * 0x9E3779B97F4A7C15ull ^ b);
  }
};

// What the kernel measured for an account (a thread and its stack at switch-out or at a sample)
// and, after scale_oncpu(), the on-CPU time by stack.
struct TopValues {
  // On-CPU time. In a TopSample (raw kernel values) 0; after scale_oncpu() the thread's exact
  // on-CPU total (sum of its slice_ns) split over its stacks by their share of its samples. A
  // thread row's sum is its exact total.
  uint64_t oncpu_ns = 0;
  uint64_t runq_wait_ns = 0;  // run-queue wait of the off-CPU intervals begun at this stack
  uint64_t switches = 0;      // schedule-ins
  uint64_t voluntary = 0;
  uint64_t involuntary = 0;
  uint64_t slice_ns = 0;       // CPU time of the slices that ended at this stack (kernel counters)
  uint64_t offcpu_ns = 0;      // switch-out at this stack to the next switch-in (ended intervals)
  uint64_t oncpu_samples = 0;  // cpu-clock samples with this stack
  uint64_t blocked_ns() const { return offcpu_ns > runq_wait_ns ? offcpu_ns - runq_wait_ns : 0; }
  TopValues& operator+=(const TopValues& o);
  // Saturating difference (an account can shrink when an in-progress slice ends up in another
  // account of the same thread).
  TopValues minus(const TopValues& o) const;
  bool empty() const {
    return !oncpu_ns && !runq_wait_ns && !switches && !voluntary && !involuntary && !slice_ns &&
           !offcpu_ns && !oncpu_samples;
  }
  bool operator==(const TopValues&) const = default;
};

// Drops and totals counted in the kernel (sums over CPUs), cumulative since tracing started.
struct TopCounters {
  uint64_t switches_total = 0;    // every context switch on every CPU
  uint64_t tracked_switches = 0;  // switch-outs of tracked tasks
  uint64_t kstack_collisions = 0;
  uint64_t ustack_collisions = 0;
  uint64_t kstack_errors = 0;
  uint64_t ustack_errors = 0;
  uint64_t accounts_full = 0;  // slices not accounted because the map was full
  uint64_t accounts_full_ns = 0;
  uint64_t storage_failures = 0;
  uint64_t slices_lost = 0;   // slice records lost (recording)
  uint64_t events_lost = 0;   // process events lost
  uint64_t prog_misses = 0;   // program runs the kernel skipped (recursion protection)
  uint64_t samples = 0;       // cpu-clock samples of tracked threads
  uint64_t samples_full = 0;  // of them, not counted: the samples map was full
  uint64_t ustacks_full = 0;  // native user stacks not stored: the user stack map was full
  // Timer samples the kernel skipped because a BPF program was already running on the CPU (often
  // another tool's): fewer samples, totals still exact, so not part of lost(); reported.
  uint64_t samples_missed = 0;
  uint64_t sampler_ns = 0;  // time spent in the sampler's BPF program, all CPUs
  // Everything that made a number less than exact, for the "lost" field.
  uint64_t lost() const {
    return kstack_collisions + ustack_collisions + accounts_full + storage_failures + slices_lost +
           events_lost + prog_misses + samples_full + ustacks_full;
  }
  TopCounters minus(const TopCounters& o) const;
};

// The causes behind TopCounters::lost(), one item per non-zero cause, in one wording for the
// batch text and the live screen: "kernel stack collisions 3".
std::vector<std::string> lost_items(const TopCounters& c);

// Everything read from the kernel at one moment: cumulative values since tracing started, with
// the slices still running at that moment included.
using TopAccounts = std::unordered_map<TopAccountKey, TopValues, TopAccountKeyHash>;
struct TopSample {
  uint64_t time_ns = 0;  // CLOCK_MONOTONIC
  TopAccounts accounts;  // raw: oncpu_ns 0, the samples in oncpu_samples
  TopCounters counters;
  // The accounts and the running slices were read again because a slice began or ended
  // between them (TopTracer::sample), and whether the last reading still saw one (then that
  // slice's time so far may show in the next table instead: the totals stay exact).
  uint32_t rereads = 0;
  bool unsettled = false;
  // kscope's own CPU time (CLOCK_PROCESS_CPUTIME_ID, exact: the sum of its threads'
  // sum_exec_runtime) when this sample was taken; its threads are not traced when it hides
  // itself, and the tables' "kscope itself hidden" figure is the growth of this. 0: not read.
  uint64_t self_cpu_ns = 0;
};

// The accounts of `now` that have the same values in `base` (idle from one to the other), with
// those values; the idle tasks' (tid 0) are left out.
std::vector<std::pair<TopAccountKey, TopValues>> idle_accounts(const TopAccounts& base,
                                                               const TopAccounts& now);
// Folded accounts (deleted from the kernel's maps: TopTracer::fold_accounts) leave `sample`,
// the next baseline, and `before`, the one before it (kept to regroup the last interval), so the
// interval tables built from them stay the same and an account used again starts from zero.
void drop_folded(const std::vector<std::pair<TopAccountKey, TopValues>>& folded, TopSample& sample,
                 TopSample* before);

// Sets oncpu_ns of every account: per thread, its exact on-CPU total (the sum of its slice_ns)
// split over its accounts in proportion to their oncpu_samples (largest remainders, so the parts
// add up to the total exactly). A thread with CPU time but no sample keeps the time on the
// account {pid, tid, kStackNotSampled, kStackNotSampled}, added when missing.
void scale_oncpu(TopAccounts& accounts);
// The same over an interval: per thread, `total_ns` split by `samples` (key -> samples in the
// interval); returns key -> on-CPU ns.
std::map<TopAccountKey, uint64_t> split_thread_oncpu(
    uint64_t total_ns, const std::map<TopAccountKey, uint64_t>& samples, uint32_t pid,
    uint32_t tid);

enum class TopGroupBy : uint8_t { kStack, kTid, kPid, kComm };
enum class TopSortKey : uint8_t {
  kOnCpu,  // default
  kSwitches,
  kVoluntary,
  kInvoluntary,
  kAvgSlice,
  kRunqWait,
  kPid,
  kComm,
  kOffCpu,
  kSlice,
};
const char* to_string(TopGroupBy g);  // "stack", "tid", "pid", "comm"
std::optional<TopGroupBy> parse_group_by(const std::string& s);
const char* to_string(TopSortKey k);  // the column title: "ON-CPU", "SWITCHES", ...
// stack -> tid -> pid -> comm -> stack; without stacks (--no-stacks) stack is skipped.
TopGroupBy next_group_by(TopGroupBy g, bool stacks = true);
TopSortKey next_sort_key(TopSortKey k);
// --sort's names: "oncpu", "switches", "vol", "invol", "avg-slice", "runq", "pid", "comm",
// "offcpu", "slice".
std::optional<TopSortKey> parse_sort_key(const std::string& s);
const char* sort_key_name(TopSortKey k);

// One row of the table: a group's values over the interval. With --by stack a row is one
// account; with --by tid/pid/comm, kstack/ustack/stack_pid are those of the group's account
// with the most on-CPU time (tid is 0 for pid and comm groups).
struct TopRow {
  uint32_t pid = 0;
  uint32_t tid = 0;
  std::string comm;
  TopValues values;
  int32_t kstack = kStackNone;
  int32_t ustack = kStackNone;
  uint32_t stack_pid = 0;  // process whose address space the user stack belongs to
  // A stable identity for UI selection/expansion across refreshes.
  std::string id;
  // CPU per switch-out: the slices that ended here (per thread: its on-CPU time) / switch-outs.
  uint64_t avg_slice_ns() const {
    uint64_t n = values.voluntary + values.involuntary;
    return n ? values.slice_ns / n : values.slice_ns;
  }
};

// What the native user-stack unwinder (--call-graph dwarf) did since tracing started.
struct UnwindSummary {
  uint64_t walks = 0;
  std::vector<std::pair<std::string, uint64_t>> ended;  // outcome ("complete", "depth limit"...)
  uint64_t fp_frames = 0;                               // frames crossed with frame pointers
  size_t files = 0, rows = 0, rows_capacity = 0;        // tables loaded
  size_t files_no_table = 0, files_no_room = 0, mappings_dropped = 0;
  uint64_t table_bytes = 0;
  size_t files_debug_frame = 0, debug_files = 0;  // tables from .debug_frame, separate files
  size_t files_freed = 0, rows_freed = 0;         // tables of files no longer mapped, rows reused
  // The kernel's map of walked stacks (`ustacks`): entries after the last reclaim pass, its
  // capacity, entries no account referred to deleted since the start, and entries put back
  // because an account came to refer to them as they were deleted.
  size_t stacks_stored = 0, stacks_capacity = 0;
  uint64_t stacks_reclaimed = 0, stacks_restored = 0;
  UnwindEarlyCounts early;  // mappings noted in BPF at execve/mmap
  // KSCOPE_UNWIND_TIMING=1 only: walks per 25 ns bucket (KSCOPE_UNWIND_TIMING_NS), else empty.
  std::vector<uint64_t> walk_ns_histogram;
  uint64_t walk_ns_bucket = 25;
};

// The sampler's rate was lowered: its own time on one CPU went over the kernel's limit for perf
// sample handling (kernel.perf_cpu_time_max_percent), which the kernel applies to a PMU's NMI
// handler but not to a cpu-clock event's BPF program. Samples then count in periods of the
// requested rate (one taken at half the rate counts 2), so shares by stack stay unbiased.
struct SamplerLowering {
  uint64_t at_ns = 0;  // since measuring started
  uint32_t from_hz = 0, to_hz = 0;
  int cpu = -1;            // the CPU whose share went over (or whose timer lagged)
  double share = 0;        // the sampler's own time's share of its CPU over the window measured
  double delivered = 1;    // runs of the timer on that CPU while a task ran there, over those
                           // the rate asked for in that time (< 0.5: it lagged two windows in a
                           // row, interrupts saturating the CPU)
  double interval_ns = 0;  // then: the mean time between its runs, what an interrupt cost
  double limit = 0;        // the limit (fraction of a CPU)
  uint64_t window_ns = 0;  // the window the share was measured over
};
// The sampler's period in requested periods after a window in which its own time took `share`
// of one CPU: `weight` while share <= limit (or limit <= 0); else doubled until the share the
// rate would then take (it scales with the rate) is at most the limit, never below 1 Hz.
uint64_t sampler_weight_for(double share, double limit, uint64_t weight, uint32_t requested_hz);
// The cpu-clock timer on one CPU over one of the governor's windows, judged only while a task
// ran there: `busy_runs` runs of the sampler with no context switch on that CPU since the run
// before, `busy_ns` the time between those runs and the ones before them. An idle CPU's timer
// fires far less than asked at no cost, so idle time says nothing. A timer that runs fewer than
// half the times its period asks for while a task runs cannot keep up: its interrupts saturate
// the CPU, and the time between runs is what one costs. Not judged: less than a tenth of the
// window, or fewer than 10 runs, measured so; and a time between runs over 1 ms (no interrupt
// costs that: the CPU was not running, or the rate is low enough that it cannot saturate).
struct SamplerTimerCheck {
  bool judged = false;
  bool lagging = false;
  double delivered = 1;    // runs over those the period asks for in busy_ns (at most 1)
  double interval_ns = 0;  // busy_ns / busy_runs
};
SamplerTimerCheck sampler_timer_check(uint64_t busy_runs, uint64_t busy_ns, double period_ns,
                                      uint64_t window_ns);
// "sampled at 999 Hz", or "sampled at 100000 Hz, lowered to 12500 Hz (...)".
std::string sampler_rate_text(uint32_t sample_hz, const std::vector<SamplerLowering>& lowered);

struct TopTable {
  uint64_t interval_ns = 0;  // wall time covered
  uint64_t end_time_ns = 0;  // CLOCK_MONOTONIC at the sample
  TopGroupBy group_by = TopGroupBy::kStack;
  TopSortKey sort = TopSortKey::kOnCpu;
  std::vector<TopRow> rows;   // ranked, all of them (the view truncates)
  TopValues total;            // over all rows
  TopCounters counters;       // over the interval
  uint64_t switches_all = 0;  // all context switches on all CPUs in the interval
  double cpu_busy = -1;       // fraction of all CPUs busy (from /proc/stat), -1 unknown
  int ncpus = 0;
  std::optional<UnwindSummary> unwind;           // with the native unwinder
  uint32_t sample_hz = 0;                        // the cpu-clock sampler's rate, 0 without it
  std::vector<SamplerLowering> sampler_lowered;  // the governor's lowerings, oldest first
  bool stacks = true;                            // false with --no-stacks: nothing is by stack
  // kscope's own process, left out of the rows and totals (shown with --show-self); 0: none.
  uint32_t hidden_pid = 0;
  uint64_t hidden_oncpu_ns = 0;  // its exact on-CPU time in the interval
  // What is traced, for the header: "all tasks", "PIDs 42,43", "TIDs 7", "comm make".
  std::string scope;
  // The live screen before the first interval has ended: no numbers yet (interval_ns is the
  // interval under way), never "nothing ran".
  bool first_pending = false;
  // Processes whose unwind tables (--call-graph dwarf) are still being loaded: until then their
  // user stacks end with "[incomplete: no table]".
  size_t tables_pending = 0;
};

// One frame of a displayed stack, already symbolized.
struct TopFrameView {
  uint64_t addr = 0;
  std::string symbol;  // function, or module+0xoff when unresolved
  uint64_t offset = 0;
  std::string module;
  std::string module_path;  // full path of a user binary; empty for kernel frames
  bool kernel = false;
  bool resolved = false;
  bool inlined = false;  // a function inlined into the next frame (shares its address)
  bool marker = false;   // not a frame: "[incomplete: REASON]" ends a stack the walk cut short
  std::string display() const;  // "function+0xoff [module]", "function (inlined) [module]"
};
struct TopStackView {
  std::vector<TopFrameView> kernel;  // leaf first
  std::vector<TopFrameView> user;    // leaf first
  std::string note;                  // e.g. "[stack lost: map collision]"; empty when none
};

}  // namespace kscope
