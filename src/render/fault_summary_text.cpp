#include "render/fault_summary_text.h"

#include <fmt/format.h>

#include <numeric>

#include "model/fault_stacks.h"

namespace kscope {

namespace {

std::string pct(uint64_t part, uint64_t whole) {
  if (whole == 0) return "0%";
  return fmt::format("{:.1f}%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

// --stacks: how many faults have a whole user stack, why the others do not, and the walker's
// table memory.
void render_stack_totals(std::back_insert_iterator<fmt::memory_buffer> out, const FaultSummary& s,
                         const FaultRunTotals& t) {
  uint64_t with = 0;
  for (const auto& [status, n] : t.user_stack_status) with += n;
  auto count_of = [&](uint8_t status) {
    auto it = t.user_stack_status.find(status);
    return it == t.user_stack_status.end() ? uint64_t{0} : it->second;
  };
  if (t.stack_walker == "dwarf") {
    fmt::format_to(
        out, "  stacks:      {} distinct (native walker); complete user stacks: {} of {} ({})\n",
        format_count(t.stacks_distinct), format_count(count_of(kStackStatusComplete)),
        format_count(with), pct(count_of(kStackStatusComplete), with));
  } else {
    fmt::format_to(out,
                   "  stacks:      {} distinct (frame pointers: where a stack ends is not known)\n",
                   format_count(t.stacks_distinct));
  }
  std::string why;
  for (const auto& [status, n] : t.user_stack_status) {
    if (status == kStackStatusComplete || status == kStackStatusFramePointers ||
        status == kStackStatusNone)
      continue;
    std::string word = stack_status_lost(status)
                           ? fmt::format("lost ({})", stack_lost_reason(status))
                           : unwind_reason_text(status);
    why += fmt::format("{}{} {}", why.empty() ? "" : ", ", word, format_count(n));
  }
  if (!why.empty()) fmt::format_to(out, "               user stacks not whole: {}\n", why);
  uint64_t klost = 0;
  for (const auto& [status, n] : t.kernel_stack_status)
    if (stack_status_lost(status)) klost += n;
  if (klost > 0)
    fmt::format_to(out, "               kernel stacks lost (of kernel-mode faults): {}\n",
                   format_count(klost));
  if (t.stack_walker == "dwarf")
    fmt::format_to(
        out,
        "               unwind tables: {} files, {} rows ({:.1f} MiB; capacity {} rows); {} "
        "files without a table, {} without room\n",
        format_count(t.unwind_files), format_count(t.unwind_rows),
        static_cast<double>(t.unwind_table_bytes) / (1 << 20), format_count(t.unwind_rows_capacity),
        format_count(t.unwind_files_no_table), format_count(t.unwind_files_no_room));
  if (t.stack_walker == "dwarf")
    fmt::format_to(out, "               early mappings: {}\n", describe(t.unwind_early));
  (void)s;
}

}  // namespace

std::string render_fault_summary(const FaultSummary& s, const FaultRunTotals& totals,
                                 const std::vector<LocationCount>& top) {
  fmt::memory_buffer b;
  auto out = std::back_inserter(b);
  double rate = totals.duration_s > 0 ? static_cast<double>(s.total) / totals.duration_s : 0;
  fmt::format_to(out, "kscope faults: {} faults recorded in {:.3f} s ({} faults/s), {} process{}\n",
                 format_count(s.total), totals.duration_s,
                 format_count(static_cast<uint64_t>(rate)), totals.kernel.size(),
                 totals.kernel.size() == 1 ? "" : "es");
  if (s.total > 0) {
    fmt::format_to(out, "  by kind:     minor {} ({})  major {} ({})\n", format_count(s.by_kind[0]),
                   pct(s.by_kind[0], s.total), format_count(s.by_kind[1]),
                   pct(s.by_kind[1], s.total));
    fmt::format_to(out, "  by access:   read {}  write {}  exec {}\n", format_count(s.by_access[0]),
                   format_count(s.by_access[1]), format_count(s.by_access[2]));
    fmt::format_to(out, "  by segment: ");
    for (int i = 0; i < kSegmentCount; ++i)
      fmt::format_to(out, " {} {}", to_string(static_cast<Segment>(i)),
                     format_count(s.by_segment[static_cast<size_t>(i)]));
    fmt::format_to(out, "\n  by mode:     user {}  kernel {}\n", format_count(s.by_mode[0]),
                   format_count(s.by_mode[1]));
    const auto& h = s.latency;
    if (h.count() > 0) {
      fmt::format_to(out,
                     "  latency:     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (fault entry to "
                     "resolution)\n",
                     format_duration_ns(h.percentile(0.5)), format_duration_ns(h.percentile(0.9)),
                     format_duration_ns(h.percentile(0.99)),
                     format_duration_ns(h.percentile(0.999)), format_duration_ns(h.max()));
    }
  }

  fmt::format_to(out, "kernel counters (minflt+majflt of the traced threads over the trace):\n");
  uint64_t unseen_total = 0;
  bool all_exact = true;
  for (const auto& [pid, k] : totals.kernel) {
    all_exact = all_exact && k.exact;
    uint64_t kernel_total = k.minflt + k.majflt;
    uint64_t seen = 0;
    if (auto it = totals.seen_by_pid.find(pid); it != totals.seen_by_pid.end()) seen = it->second;
    std::string name = "?";
    if (auto it = totals.process_names.find(pid);
        it != totals.process_names.end() && !it->second.empty())
      name = it->second;
    uint64_t unseen = kernel_total > seen ? kernel_total - seen : 0;
    unseen_total += unseen;
    fmt::format_to(out, "  pid {} ({}): kernel {} (minflt {}, majflt {}), seen individually {}",
                   pid, name, format_count(kernel_total), format_count(k.minflt),
                   format_count(k.majflt), format_count(seen));
    if (seen > kernel_total)
      fmt::format_to(out, ", {} more than the kernel's delta", format_count(seen - kernel_total));
    else
      fmt::format_to(out, ", not seen individually {}", format_count(unseen));
    if (!k.exact) fmt::format_to(out, " (approximate: a thread's final counters were not read)");
    fmt::format_to(out, "\n");
  }
  if (unseen_total > 0) {
    // Only what fires no per-fault event is blamed on get_user_pages(): records kscope lost
    // and completions whose entry it missed are named as such.
    uint64_t lost_faults =
        std::accumulate(totals.lost_per_cpu.begin(), totals.lost_per_cpu.end(), uint64_t{0});
    uint64_t known = lost_faults + totals.unmatched;
    if (known > 0)
      fmt::format_to(out,
                     "  of the faults not seen individually, up to {} are fault records lost "
                     "(ring buffer full) and {} faults\n  that completed without a traced entry "
                     "(in flight when tracing started);",
                     format_count(lost_faults), format_count(totals.unmatched));
    if (known < unseen_total)
      fmt::format_to(out,
                     "{}  {} faults not seen individually were taken through get_user_pages() "
                     "(MAP_POPULATE, mlock,\n  process_vm_readv, ...): the kernel counts them but "
                     "fires no per-fault event.\n",
                     known > 0 ? "\n" : "", known > 0 ? "the other" : "the");
    else
      fmt::format_to(out, "\n");
    if (!all_exact)
      fmt::format_to(out,
                     "  (a process's count is approximate where marked: its exact bounds were "
                     "not available)\n");
  }

  if (!totals.stack_walker.empty()) render_stack_totals(out, s, totals);
  if (!top.empty() && !totals.stack_walker.empty()) {
    fmt::format_to(out, "top call paths (root -> leaf):\n  {:>12} {:>6}  {}\n", "FAULTS", "%",
                   "CALL PATH");
    for (const auto& l : top)
      fmt::format_to(out, "  {:>12} {:>6}  {}\n", format_count(l.count), pct(l.count, s.total),
                     l.location);
  } else if (!top.empty()) {
    fmt::format_to(out, "top faulting code locations:\n  {:>12} {:>6}  {}\n", "FAULTS", "%",
                   "LOCATION");
    for (const auto& l : top)
      fmt::format_to(out, "  {:>12} {:>6}  {}\n", format_count(l.count), pct(l.count, s.total),
                     l.location);
  }

  uint64_t lost =
      std::accumulate(totals.lost_per_cpu.begin(), totals.lost_per_cpu.end(), uint64_t{0});
  fmt::format_to(out, "lost records: {}", format_count(lost));
  if (lost > 0) {
    fmt::format_to(out, " (ring buffer full; per CPU:");
    for (size_t i = 0; i < totals.lost_per_cpu.size(); ++i)
      if (totals.lost_per_cpu[i]) fmt::format_to(out, " cpu{}={}", i, totals.lost_per_cpu[i]);
    fmt::format_to(out, "; try a larger --ringbuf-mb)");
  }
  fmt::format_to(out, "; control records lost: {}", format_count(totals.lost_control));
  fmt::format_to(out, "\n");
  if (totals.failed_entries || totals.unmatched)
    fmt::format_to(out,
                   "not recorded: {} faults that never completed (invalid access or spurious), "
                   "{} completions without a fault entry\n",
                   format_count(totals.failed_entries), format_count(totals.unmatched));
  if (totals.vma_busy)
    fmt::format_to(out,
                   "segment unknown: {} faults (mmap_lock was busy when their VMA was looked "
                   "up; recorded with segment 'unknown')\n",
                   format_count(totals.vma_busy));
  if (totals.own_reads)
    fmt::format_to(out,
                   "stack walk: {} of its reads faulted (a frame pointer into memory not yet "
                   "faulted in; not the program's faults, not recorded; those stacks end there)\n",
                   format_count(totals.own_reads));
  if (totals.mmap_records_lost)
    fmt::format_to(out, "mmap records lost: {} (libraries mapped then may show as addresses)\n",
                   format_count(totals.mmap_records_lost));
  if (totals.plot_sampled_from > 0)
    fmt::format_to(out, "plot: drawn from a uniform sample of the {} faults\n",
                   format_count(totals.plot_sampled_from));
  return fmt::to_string(b);
}

}  // namespace kscope
