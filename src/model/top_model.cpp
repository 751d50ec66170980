#include "model/top_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>

namespace kscope {

namespace {
uint64_t sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
}  // namespace

TopValues& TopValues::operator+=(const TopValues& o) {
  oncpu_ns += o.oncpu_ns;
  runq_wait_ns += o.runq_wait_ns;
  switches += o.switches;
  voluntary += o.voluntary;
  involuntary += o.involuntary;
  slice_ns += o.slice_ns;
  offcpu_ns += o.offcpu_ns;
  oncpu_samples += o.oncpu_samples;
  return *this;
}

TopValues TopValues::minus(const TopValues& o) const {
  TopValues r;
  r.oncpu_ns = sat_sub(oncpu_ns, o.oncpu_ns);
  r.runq_wait_ns = sat_sub(runq_wait_ns, o.runq_wait_ns);
  r.switches = sat_sub(switches, o.switches);
  r.voluntary = sat_sub(voluntary, o.voluntary);
  r.involuntary = sat_sub(involuntary, o.involuntary);
  r.slice_ns = sat_sub(slice_ns, o.slice_ns);
  r.offcpu_ns = sat_sub(offcpu_ns, o.offcpu_ns);
  r.oncpu_samples = sat_sub(oncpu_samples, o.oncpu_samples);
  return r;
}

TopCounters TopCounters::minus(const TopCounters& o) const {
  TopCounters r;
  r.switches_total = sat_sub(switches_total, o.switches_total);
  r.tracked_switches = sat_sub(tracked_switches, o.tracked_switches);
  r.kstack_collisions = sat_sub(kstack_collisions, o.kstack_collisions);
  r.ustack_collisions = sat_sub(ustack_collisions, o.ustack_collisions);
  r.kstack_errors = sat_sub(kstack_errors, o.kstack_errors);
  r.ustack_errors = sat_sub(ustack_errors, o.ustack_errors);
  r.accounts_full = sat_sub(accounts_full, o.accounts_full);
  r.accounts_full_ns = sat_sub(accounts_full_ns, o.accounts_full_ns);
  r.storage_failures = sat_sub(storage_failures, o.storage_failures);
  r.slices_lost = sat_sub(slices_lost, o.slices_lost);
  r.events_lost = sat_sub(events_lost, o.events_lost);
  r.prog_misses = sat_sub(prog_misses, o.prog_misses);
  r.samples = sat_sub(samples, o.samples);
  r.samples_full = sat_sub(samples_full, o.samples_full);
  r.ustacks_full = sat_sub(ustacks_full, o.ustacks_full);
  r.samples_missed = sat_sub(samples_missed, o.samples_missed);
  r.sampler_ns = sat_sub(sampler_ns, o.sampler_ns);
  return r;
}

std::map<TopAccountKey, uint64_t> split_thread_oncpu(
    uint64_t total_ns, const std::map<TopAccountKey, uint64_t>& samples, uint32_t pid,
    uint32_t tid) {
  std::map<TopAccountKey, uint64_t> out;
  if (total_ns == 0) return out;
  unsigned __int128 n = 0;
  for (const auto& [k, c] : samples) n += c;
  if (n == 0) {
    out[TopAccountKey{pid, tid, kStackNotSampled, kStackNotSampled}] = total_ns;
    return out;
  }
  // Floor shares, then the remainder one ns at a time to the largest fractional parts (ties:
  // key order), so the parts add up to total_ns exactly.
  std::vector<std::pair<unsigned __int128, TopAccountKey>> rems;
  uint64_t given = 0;
  for (const auto& [k, c] : samples) {
    if (!c) continue;
    unsigned __int128 prod = static_cast<unsigned __int128>(total_ns) * c;
    uint64_t part = static_cast<uint64_t>(prod / n);
    out[k] = part;
    given += part;
    rems.emplace_back(prod % n, k);
  }
  std::stable_sort(rems.begin(), rems.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = 0; given < total_ns && i < rems.size(); ++i, ++given) ++out[rems[i].second];
  return out;
}

void scale_oncpu(TopAccounts& accounts) {
  struct Thread {
    uint32_t pid = 0;
    uint64_t total = 0;
    std::map<TopAccountKey, uint64_t> samples;
  };
  std::map<uint32_t, Thread> threads;
  for (auto& [k, v] : accounts) {
    Thread& t = threads[k.tid];
    t.pid = k.pid;
    t.total += v.slice_ns;
    if (v.oncpu_samples) t.samples[k] += v.oncpu_samples;
    v.oncpu_ns = 0;
  }
  for (const auto& [tid, t] : threads)
    for (const auto& [k, ns] : split_thread_oncpu(t.total, t.samples, t.pid, tid))
      accounts[k].oncpu_ns += ns;
}

const char* to_string(TopGroupBy g) {
  switch (g) {
    case TopGroupBy::kStack:
      return "stack";
    case TopGroupBy::kTid:
      return "tid";
    case TopGroupBy::kPid:
      return "pid";
    case TopGroupBy::kComm:
      return "comm";
  }
  return "stack";
}

std::optional<TopGroupBy> parse_group_by(const std::string& s) {
  if (s == "stack") return TopGroupBy::kStack;
  if (s == "tid") return TopGroupBy::kTid;
  if (s == "pid") return TopGroupBy::kPid;
  if (s == "comm") return TopGroupBy::kComm;
  return std::nullopt;
}

const char* to_string(TopSortKey k) {
  switch (k) {
    case TopSortKey::kOnCpu:
      return "ON-CPU";
    case TopSortKey::kSwitches:
      return "SWITCHES";
    case TopSortKey::kVoluntary:
      return "VOL";
    case TopSortKey::kInvoluntary:
      return "INVOL";
    case TopSortKey::kAvgSlice:
      return "AVG SLICE";
    case TopSortKey::kRunqWait:
      return "RUNQ WAIT";
    case TopSortKey::kPid:
      return "PID";
    case TopSortKey::kComm:
      return "COMM";
    case TopSortKey::kOffCpu:
      return "OFF-CPU";
    case TopSortKey::kSlice:
      return "SLICE";
  }
  return "ON-CPU";
}

TopGroupBy next_group_by(TopGroupBy g, bool stacks) {
  switch (g) {
    case TopGroupBy::kStack:
      return TopGroupBy::kTid;
    case TopGroupBy::kTid:
      return TopGroupBy::kPid;
    case TopGroupBy::kPid:
      return TopGroupBy::kComm;
    case TopGroupBy::kComm:
      return stacks ? TopGroupBy::kStack : TopGroupBy::kTid;
  }
  return TopGroupBy::kTid;
}

namespace {
constexpr std::pair<TopSortKey, const char*> kSortNames[] = {
    {TopSortKey::kOnCpu, "oncpu"},
    {TopSortKey::kSwitches, "switches"},
    {TopSortKey::kVoluntary, "vol"},
    {TopSortKey::kInvoluntary, "invol"},
    {TopSortKey::kAvgSlice, "avg-slice"},
    {TopSortKey::kRunqWait, "runq"},
    {TopSortKey::kPid, "pid"},
    {TopSortKey::kComm, "comm"},
    {TopSortKey::kOffCpu, "offcpu"},
    {TopSortKey::kSlice, "slice"},
};
}  // namespace

std::optional<TopSortKey> parse_sort_key(const std::string& s) {
  for (const auto& [k, name] : kSortNames)
    if (s == name) return k;
  return std::nullopt;
}

const char* sort_key_name(TopSortKey k) {
  for (const auto& [key, name] : kSortNames)
    if (key == k) return name;
  return "oncpu";
}

TopSortKey next_sort_key(TopSortKey k) {
  return k == TopSortKey::kSlice ? TopSortKey::kOnCpu
                                 : static_cast<TopSortKey>(static_cast<uint8_t>(k) + 1);
}

std::string TopFrameView::display() const {
  std::string s = inlined  ? symbol + " (inlined)"
                  : offset ? fmt::format("{}+{:#x}", symbol, offset)
                           : symbol;
  if (!module.empty() && resolved) s += fmt::format(" [{}]", module);
  return s;
}

uint64_t sampler_weight_for(double share, double limit, uint64_t weight, uint32_t requested_hz) {
  if (limit <= 0 || share <= limit || weight == 0) return weight;
  uint64_t next = weight;
  double at = share;
  while (at > limit && next * 2 <= requested_hz) {
    next *= 2;
    at /= 2;
  }
  return next;
}

SamplerTimerCheck sampler_timer_check(uint64_t busy_runs, uint64_t busy_ns, double period_ns,
                                      uint64_t window_ns) {
  constexpr uint64_t kMinRuns = 10;
  constexpr double kMaxInterruptNs = 1'000'000;
  SamplerTimerCheck c;
  if (busy_runs < kMinRuns || busy_ns < window_ns / 10 || period_ns <= 0) return c;
  c.interval_ns = static_cast<double>(busy_ns) / static_cast<double>(busy_runs);
  if (c.interval_ns > kMaxInterruptNs) return c;
  c.judged = true;
  c.delivered = std::min(1.0, period_ns / c.interval_ns);
  c.lagging = c.delivered < 0.5;
  return c;
}

std::string sampler_rate_text(uint32_t sample_hz, const std::vector<SamplerLowering>& lowered) {
  std::string out = fmt::format("sampled at {} Hz", sample_hz);
  if (lowered.empty()) return out;
  const SamplerLowering& first = lowered.front();
  const SamplerLowering& last = lowered.back();
  std::string why = first.delivered < 0.5
                        ? fmt::format(
                              "the timer ran {:.0f}% of the times asked on CPU {}, every {:.0f} us "
                              "while a task ran there: its interrupts saturated the CPU",
                              first.delivered * 100, first.cpu, first.interval_ns / 1000)
                        : fmt::format(
                              "the sampler's own time reached {:.0f}% of CPU {}, over the kernel's "
                              "perf_cpu_time_max_percent of {:.0f}%",
                              first.share * 100, first.cpu, first.limit * 100);
  return out +
         fmt::format(", lowered to {} Hz from {:.1f} s ({}; samples count in periods of {} Hz)",
                     last.to_hz, static_cast<double>(first.at_ns) / 1e9, why, sample_hz);
}

std::vector<std::string> lost_items(const TopCounters& c) {
  std::vector<std::string> items;
  auto add = [&](uint64_t n, std::string_view what) {
    if (n) items.push_back(fmt::format("{} {}", what, format_count(n)));
  };
  add(c.kstack_collisions, "kernel stack collisions");
  add(c.ustack_collisions, "user stack collisions");
  if (c.accounts_full)
    items.push_back(fmt::format("accounts map full {} ({} on-CPU unaccounted)",
                                format_count(c.accounts_full),
                                format_duration_ns(c.accounts_full_ns)));
  add(c.storage_failures, "task-storage failures");
  add(c.slices_lost, "slice records lost");
  add(c.events_lost, "process events lost");
  add(c.prog_misses, "scheduler events skipped (BPF recursion)");
  add(c.samples_full, "samples not counted (samples map full)");
  add(c.ustacks_full, "user stacks lost (user stack map full)");
  add(c.samples_missed, "timer samples skipped (a BPF program was running)");
  return items;
}

std::vector<std::pair<TopAccountKey, TopValues>> idle_accounts(const TopAccounts& base,
                                                               const TopAccounts& now) {
  std::vector<std::pair<TopAccountKey, TopValues>> idle;
  for (const auto& [k, v] : now) {
    if (k.tid == 0) continue;
    auto it = base.find(k);
    if (it != base.end() && it->second == v) idle.emplace_back(k, v);
  }
  return idle;
}

void drop_folded(const std::vector<std::pair<TopAccountKey, TopValues>>& folded, TopSample& sample,
                 TopSample* before) {
  for (const auto& [k, v] : folded) {
    sample.accounts.erase(k);
    if (before) before->accounts.erase(k);
  }
}

}  // namespace kscope
