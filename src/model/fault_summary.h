// Aggregates over a stream of faults: counts by kind/access/segment/mode, latency percentiles,
// faults per code location, and the kernel-counter reconciliation. Bounded memory: the location
// table grows with distinct instruction addresses (code size), not with the number of faults.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/fault_record.h"
#include "model/latency_histogram.h"
#include "model/unwind_early_counts.h"

namespace kscope {

struct FaultLocationKey {
  uint32_t pid = 0;
  uint64_t ip = 0;
  bool kernel = false;
  bool operator==(const FaultLocationKey&) const = default;
};
struct FaultLocationKeyHash {
  size_t operator()(const FaultLocationKey& k) const {
    return std::hash<uint64_t>()(k.ip * 0x9E3779B97F4A7C15ull ^ k.pid ^
                                 (k.kernel ? 1ull << 63 : 0));
  }
};

// What the kernel's own counters say, per process, over the traced interval.
struct KernelFaultCounts {
  uint64_t minflt = 0;
  uint64_t majflt = 0;
  bool exact =
      true;  // false when a thread's final count could not be read (e.g. a lost exit record)
};

struct FaultSummary {
  uint64_t total = 0;
  std::array<uint64_t, 2> by_kind{};
  std::array<uint64_t, 3> by_access{};
  std::array<uint64_t, kSegmentCount> by_segment{};
  std::array<uint64_t, 2> by_mode{};
  uint64_t first_ns = UINT64_MAX;
  uint64_t last_ns = 0;
  LatencyHistogram latency;
  std::unordered_map<FaultLocationKey, uint64_t, FaultLocationKeyHash> by_location;
  std::map<uint32_t, uint64_t> by_pid;
  std::unordered_map<uint32_t, uint64_t> by_stack;  // FaultRecord::stack (!= 0) -> faults

  void add(const FaultRecord& r);
  // The n locations with the most faults, most first (ties by ip for determinism).
  std::vector<std::pair<FaultLocationKey, uint64_t>> top_locations(size_t n) const;
};

// Everything the end-of-run report shows besides the per-fault data.
struct FaultRunTotals {
  double duration_s = 0;                         // wall time traced
  std::map<uint32_t, KernelFaultCounts> kernel;  // per traced process
  std::map<uint32_t, std::string> process_names;
  std::map<uint32_t, uint64_t> seen_by_pid;  // faults kscope recorded per process
  std::vector<uint64_t> lost_per_cpu;        // fault records lost because the ring buffer was full
  uint64_t lost_control = 0;                 // task/fork/exit records lost
  uint64_t failed_entries = 0;               // faults that never completed (SIGSEGV, spurious)
  uint64_t unmatched = 0;                    // completions without an entry (not recorded)
  uint64_t bounds_full = 0;        // threads whose reconciliation bounds came from /proc only
  uint64_t vma_busy = 0;           // segment unknown: mmap_lock contended
  uint64_t own_reads = 0;          // faults taken by the stack walk's own reads (not the program's)
  uint64_t mmap_records_lost = 0;  // perf mmap records lost (libraries may not resolve)
  uint64_t plot_sampled_from = 0;  // >0: the plot shows a uniform sample of this many
  // kscope faults --stacks: "dwarf" or "fp" (empty: no stacks), and per fault how its user and
  // kernel stacks ended (model/fault_stacks.h statuses -> faults).
  std::string stack_walker;
  std::map<uint8_t, uint64_t> user_stack_status;
  std::map<uint8_t, uint64_t> kernel_stack_status;
  uint64_t stacks_distinct = 0;  // distinct stacks
  // The native walker's tables: files loaded, rows, bytes, files without a table or room.
  uint64_t unwind_files = 0, unwind_rows = 0, unwind_rows_capacity = 0, unwind_table_bytes = 0;
  uint64_t unwind_files_no_table = 0, unwind_files_no_room = 0, unwind_mappings_dropped = 0;
  UnwindEarlyCounts unwind_early;  // mappings noted in BPF at execve/mmap
};

}  // namespace kscope
