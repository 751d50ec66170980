#include "render/top_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace kscope {

namespace {

std::string header_line(const TopTable& t) {
  std::string busy = t.cpu_busy >= 0 ? fmt::format("{:.1f}%", t.cpu_busy * 100) : "?";
  return fmt::format(
             "kscope top: interval {}, {} context switches on {} CPUs, CPU busy {}, grouped by {}, "
             "sorted by {}, lost {}",
             format_duration_ns(t.interval_ns), t.switches_all, t.ncpus, busy,
             to_string(t.group_by), to_string(t.sort), t.counters.lost()) +
         (t.hidden_pid ? fmt::format(", kscope itself hidden (pid {}, on-CPU {}; --show-self)",
                                     t.hidden_pid, format_duration_ns(t.hidden_oncpu_ns))
                       : std::string());
}

// How the numbers of a row came about: what a reader must know to trust them.
std::string sources_line(const TopTable& t) {
  if (!t.stacks || !t.sample_hz)
    return "kscope top: no stacks sampled (--no-stacks): on-CPU, switches, run-queue wait and "
           "off-CPU time are exact per thread";
  return fmt::format(
      "kscope top: on-CPU by stack: {} ({} samples), scaled to exact per-thread totals; off-CPU: "
      "exact, by switch-out stack; SLICE: CPU time of the slices that ended at the stack",
      sampler_rate_text(t.sample_hz, t.sampler_lowered), t.counters.samples);
}

// "[incomplete: REASON]" markers the native unwinder ends an unfinished stack with.
std::string incomplete_reason(const TopStackView& s) {
  for (const auto& f : s.user)
    if (f.marker) {
      std::string r = f.symbol;
      const std::string prefix = "[incomplete: ";
      if (r.rfind(prefix, 0) == 0 && r.size() > prefix.size() + 1)
        return r.substr(prefix.size(), r.size() - prefix.size() - 1);
      return r;
    }
  return {};
}

void print_frames(std::string& out, const char* label, const std::vector<TopFrameView>& frames) {
  bool first = true;
  for (const auto& f : frames) {
    out += fmt::format("        {:<8}{}\n", first ? label : "", f.display());
    first = false;
  }
}

nlohmann::json frames_json(const std::vector<TopFrameView>& frames) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& f : frames) {
    if (f.marker) {  // the end of a stack the unwinder could not finish: not an address
      a.push_back({{"symbol", f.symbol}, {"marker", true}, {"resolved", false}});
      continue;
    }
    a.push_back({{"addr", fmt::format("{:#x}", f.addr)},
                 {"symbol", f.symbol},
                 {"offset", f.offset},
                 {"module", f.module},
                 {"resolved", f.resolved}});
  }
  return a;
}

}  // namespace

std::string top_lost_breakdown(const TopCounters& c) {
  std::string s;
  for (const auto& item : lost_items(c)) s += (s.empty() ? "" : ", ") + item;
  return s;
}

std::string render_top_text(const TopTable& t, size_t max_rows, const StackProvider& stacks) {
  std::string out = header_line(t) + "\n" + sources_line(t) + "\n";
  if (t.counters.lost()) out += "kscope top: lost: " + top_lost_breakdown(t.counters) + "\n";
  out += fmt::format(
      "{:>4} {:>7} {:>7} {:<16} {:>9} {:>6} {:>7} {:>9} {:>10} {:>8} {:>7} {:>7} {:>9}\n", "RANK",
      "PID", "TID", "COMM", "ON-CPU", "%CPU", "SAMPLES", "OFF-CPU", "RUNQ WAIT", "SWITCHES", "VOL",
      "INVOL", "SLICE");
  size_t n = std::min(max_rows, t.rows.size());
  for (size_t i = 0; i < n; ++i) {
    const TopRow& r = t.rows[i];
    double pct = t.interval_ns ? 100.0 * static_cast<double>(r.values.oncpu_ns) /
                                     static_cast<double>(t.interval_ns)
                               : 0.0;
    std::string pid = t.group_by == TopGroupBy::kComm ? "-" : std::to_string(r.pid);
    std::string tid = (t.group_by == TopGroupBy::kStack || t.group_by == TopGroupBy::kTid)
                          ? std::to_string(r.tid)
                          : "-";
    out += fmt::format(
        "{:>4} {:>7} {:>7} {:<16} {:>9} {:>6.1f} {:>7} {:>9} {:>10} {:>8} {:>7} {:>7} {:>9}\n",
        i + 1, pid, tid, r.comm.substr(0, 16), format_duration_ns(r.values.oncpu_ns), pct,
        r.values.oncpu_samples, format_duration_ns(r.values.offcpu_ns),
        format_duration_ns(r.values.runq_wait_ns), r.values.switches, r.values.voluntary,
        r.values.involuntary, format_duration_ns(r.values.slice_ns));
    if (!t.stacks) continue;
    TopStackView stack = stacks(r);
    if (!stack.note.empty()) out += "        " + stack.note + "\n";
    print_frames(out, "kernel:", stack.kernel);
    print_frames(out, "user:", stack.user);
  }
  if (t.rows.size() > n) out += fmt::format("({} more rows; -n to show more)\n", t.rows.size() - n);
  return out;
}

std::string render_top_json(const TopTable& t, size_t max_rows, const StackProvider& stacks) {
  nlohmann::json j;
  j["interval_ns"] = t.interval_ns;
  // The interval is [end - interval_ns, end] on CLOCK_MONOTONIC (what clock_gettime and perf
  // timestamps use), to line it up with other measurements.
  j["end_monotonic_ns"] = t.end_time_ns;
  j["group_by"] = to_string(t.group_by);
  j["lost"] = t.counters.lost();
  j["drops"] = {{"kernel_stack_collisions", t.counters.kstack_collisions},
                {"user_stack_collisions", t.counters.ustack_collisions},
                {"kernel_stack_errors", t.counters.kstack_errors},
                {"user_stack_errors", t.counters.ustack_errors},
                {"accounts_full", t.counters.accounts_full},
                {"accounts_full_ns", t.counters.accounts_full_ns},
                {"task_storage_failures", t.counters.storage_failures},
                {"slice_records_lost", t.counters.slices_lost},
                {"process_events_lost", t.counters.events_lost},
                {"bpf_program_misses", t.counters.prog_misses},
                {"samples_not_counted", t.counters.samples_full},
                {"user_stacks_lost_map_full", t.counters.ustacks_full},
                {"samples_skipped", t.counters.samples_missed}};
  j["oncpu_by_stack"] =
      t.sample_hz && t.stacks
          ? nlohmann::json{{"method", "sampled, scaled to exact per-thread totals"},
                           {"sample_hz", t.sample_hz},
                           {"sample_hz_now", t.sampler_lowered.empty()
                                                 ? t.sample_hz
                                                 : t.sampler_lowered.back().to_hz},
                           {"samples", t.counters.samples},
                           {"sampler_own_ns", t.counters.sampler_ns}}
          : nlohmann::json{{"method", "none (--no-stacks)"}};
  if (t.sample_hz && t.stacks) {
    nlohmann::json lowered = nlohmann::json::array();
    for (const SamplerLowering& l : t.sampler_lowered)
      lowered.push_back({{"at_ns", l.at_ns},
                         {"from_hz", l.from_hz},
                         {"to_hz", l.to_hz},
                         {"cpu", l.cpu},
                         {"share", l.share},
                         {"delivered", l.delivered},
                         {"interval_ns", l.interval_ns},
                         {"limit", l.limit},
                         {"window_ns", l.window_ns}});
    j["oncpu_by_stack"]["sampler_lowered"] = std::move(lowered);
  }
  j["offcpu_by_stack"] = t.stacks ? "exact, by switch-out stack" : "none (--no-stacks)";
  if (t.hidden_pid) j["hidden_self"] = {{"pid", t.hidden_pid}, {"oncpu_ns", t.hidden_oncpu_ns}};
  if (t.unwind) {
    const UnwindSummary& u = *t.unwind;
    nlohmann::json ended = nlohmann::json::object();
    for (const auto& [why, n] : u.ended) ended[why] = n;
    j["unwind"] = {{"call_graph", "dwarf"},
                   {"walks_since_start", u.walks},
                   {"walks_ended", ended},
                   {"frame_pointer_frames", u.fp_frames},
                   {"table_files", u.files},
                   {"table_rows", u.rows},
                   {"table_rows_capacity", u.rows_capacity},
                   {"table_bytes", u.table_bytes},
                   {"files_without_table", u.files_no_table},
                   {"files_without_room", u.files_no_room},
                   {"mappings_dropped", u.mappings_dropped},
                   {"files_from_debug_frame", u.files_debug_frame},
                   {"separate_debug_files", u.debug_files},
                   {"files_freed", u.files_freed},
                   {"rows_freed", u.rows_freed},
                   {"user_stacks_stored", u.stacks_stored},
                   {"user_stacks_capacity", u.stacks_capacity},
                   {"user_stacks_reclaimed", u.stacks_reclaimed},
                   {"user_stacks_restored", u.stacks_restored},
                   {"early_mappings",
                    {{"noted", u.early.noted},
                     {"not_noted", u.early.dropped},
                     {"removed", u.early.removed},
                     {"lookups_found", u.early.found},
                     {"lookups_missed", u.early.missed}}}};
    if (!u.walk_ns_histogram.empty()) {
      // KSCOPE_UNWIND_TIMING=1: quantiles as the upper bound of their 25 ns bucket.
      uint64_t walks = 0;
      for (uint64_t n : u.walk_ns_histogram) walks += n;
      auto quantile = [&](double q) -> uint64_t {
        uint64_t need = static_cast<uint64_t>(q * static_cast<double>(walks)), seen = 0;
        for (size_t b = 0; b < u.walk_ns_histogram.size(); ++b)
          if ((seen += u.walk_ns_histogram[b]) > need) return (b + 1) * u.walk_ns_bucket;
        return u.walk_ns_histogram.size() * u.walk_ns_bucket;
      };
      j["unwind"]["walk_ns"] = {{"timed_walks", walks},
                                {"median", walks ? quantile(0.5) : 0},
                                {"p90", walks ? quantile(0.9) : 0},
                                {"bucket_ns", u.walk_ns_bucket},
                                {"histogram", u.walk_ns_histogram}};
    }
  }
  j["switches_all_cpus"] = t.switches_all;
  j["ncpus"] = t.ncpus;
  if (t.cpu_busy >= 0) j["cpu_busy"] = t.cpu_busy;
  nlohmann::json tasks = nlohmann::json::array();
  size_t n = std::min(max_rows, t.rows.size());
  for (size_t i = 0; i < n; ++i) {
    const TopRow& r = t.rows[i];
    TopStackView stack = t.stacks ? stacks(r) : TopStackView{};
    nlohmann::json row = {{"rank", i + 1},
                          {"pid", r.pid},
                          {"tid", r.tid},
                          {"comm", r.comm},
                          {"switches", r.values.switches},
                          {"voluntary", r.values.voluntary},
                          {"involuntary", r.values.involuntary},
                          {"oncpu_ns", r.values.oncpu_ns},
                          {"runq_wait_ns", r.values.runq_wait_ns},
                          {"offcpu_ns", r.values.offcpu_ns}};
    if (t.group_by == TopGroupBy::kStack) {
      std::string why = incomplete_reason(stack);
      row["oncpu_samples"] = r.values.oncpu_samples;
      row["slice_ns"] = r.values.slice_ns;
      row["kernel_stack"] = frames_json(stack.kernel);
      row["user_stack"] = frames_json(stack.user);
      row["completeness"] =
          why.empty() && stack.note.empty()
              ? nlohmann::json{{"complete", true}}
              : nlohmann::json{{"complete", false}, {"reason", why.empty() ? stack.note : why}};
    } else if (t.stacks) {  // --no-stacks: no stack fields at all
      // The group's stack with the most sampled on-CPU time.
      row["kernel_stack"] = frames_json(stack.kernel);
      row["user_stack"] = frames_json(stack.user);
    }
    if (!stack.note.empty()) row["stack_note"] = stack.note;
    tasks.push_back(std::move(row));
  }
  j["tasks"] = std::move(tasks);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace kscope
