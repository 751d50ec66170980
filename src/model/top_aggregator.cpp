#include "model/top_aggregator.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

namespace kscope {

namespace {

struct Group {
  TopRow row;
  TopValues cur;
  TopValues prev;
  uint64_t oncpu = 0;  // scaled over the interval
  // The account with the most on-CPU time in the interval gives the group's stacks.
  std::map<TopAccountKey, uint64_t> members_oncpu;
  std::map<TopAccountKey, TopValues> members_cur;
  std::map<TopAccountKey, TopValues> members_prev;
};

std::string group_id(TopGroupBy by, const TopAccountKey& k, const std::string& comm) {
  switch (by) {
    case TopGroupBy::kStack:
      return fmt::format("s:{}:{}:{}:{}", k.pid, k.tid, k.kstack, k.ustack);
    case TopGroupBy::kTid:
      return fmt::format("t:{}", k.tid);
    case TopGroupBy::kPid:
      return fmt::format("p:{}", k.pid);
    case TopGroupBy::kComm:
      return "c:" + comm;
  }
  return {};
}

}  // namespace

void sort_top_rows(std::vector<TopRow>& rows, TopSortKey sort) {
  auto metric = [sort](const TopRow& r) -> uint64_t {
    switch (sort) {
      case TopSortKey::kOnCpu:
        return r.values.oncpu_ns;
      case TopSortKey::kSwitches:
        return r.values.switches;
      case TopSortKey::kVoluntary:
        return r.values.voluntary;
      case TopSortKey::kInvoluntary:
        return r.values.involuntary;
      case TopSortKey::kAvgSlice:
        return r.avg_slice_ns();
      case TopSortKey::kRunqWait:
        return r.values.runq_wait_ns;
      case TopSortKey::kOffCpu:
        return r.values.offcpu_ns;
      case TopSortKey::kSlice:
        return r.values.slice_ns;
      case TopSortKey::kPid:
      case TopSortKey::kComm:
        return 0;
    }
    return 0;
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const TopRow& a, const TopRow& b) {
    if (sort == TopSortKey::kPid) {
      if (a.pid != b.pid) return a.pid < b.pid;
      if (a.tid != b.tid) return a.tid < b.tid;
    } else if (sort == TopSortKey::kComm) {
      if (a.comm != b.comm) return a.comm < b.comm;
    } else {
      uint64_t ma = metric(a), mb = metric(b);
      if (ma != mb) return ma > mb;
    }
    if (a.values.oncpu_ns != b.values.oncpu_ns) return a.values.oncpu_ns > b.values.oncpu_ns;
    return std::tie(a.pid, a.tid, a.kstack, a.ustack) < std::tie(b.pid, b.tid, b.kstack, b.ustack);
  });
}

TopTable build_top_table(const TopSample* prev, const TopSample& cur, uint64_t start_ns,
                         TopGroupBy group_by, TopSortKey sort, const CommLookup& comm_of,
                         uint32_t hide_pid) {
  TopTable table;
  table.hidden_pid = hide_pid;
  table.group_by = group_by;
  table.sort = sort;
  table.end_time_ns = cur.time_ns;
  uint64_t begin = prev ? prev->time_ns : start_ns;
  table.interval_ns = cur.time_ns > begin ? cur.time_ns - begin : 0;
  table.counters = prev ? cur.counters.minus(prev->counters) : cur.counters;
  table.switches_all = table.counters.switches_total;

  std::map<std::string, Group> groups;
  std::map<uint32_t, std::string> comm_cache;  // by tid (thread names) / pid (process names)
  auto comm_for = [&](const TopAccountKey& k) -> std::string {
    uint32_t who = group_by == TopGroupBy::kPid ? k.pid : k.tid;
    auto it = comm_cache.find(who);
    if (it != comm_cache.end()) return it->second;
    std::string c = comm_of ? comm_of(k.pid, who) : std::string();
    comm_cache.emplace(who, c);
    return c;
  };
  auto group_of = [&](const TopAccountKey& k) -> Group& {
    std::string comm = comm_for(k);
    std::string id = group_id(group_by, k, comm);
    auto [it, inserted] = groups.try_emplace(id);
    Group& g = it->second;
    if (inserted) {
      g.row.id = id;
      g.row.comm = comm;
      g.row.pid = group_by == TopGroupBy::kComm ? 0 : k.pid;
      g.row.tid = (group_by == TopGroupBy::kStack || group_by == TopGroupBy::kTid) ? k.tid : 0;
      g.row.kstack = k.kstack;
      g.row.ustack = k.ustack;
      g.row.stack_pid = k.pid;
    }
    return g;
  };
  auto hidden = [hide_pid](const TopAccountKey& k) { return hide_pid != 0 && k.pid == hide_pid; };
  auto visit = [&](const TopSample& s, bool is_cur) {
    for (const auto& [k, raw] : s.accounts) {
      if (hidden(k)) continue;
      TopValues v = raw;
      v.oncpu_ns = 0;  // set below, from the samples
      Group& g = group_of(k);
      if (is_cur) {
        g.cur += v;
        if (group_by != TopGroupBy::kStack) g.members_cur[k] += v;
      } else {
        g.prev += v;
        if (group_by != TopGroupBy::kStack) g.members_prev[k] += v;
      }
    }
  };
  visit(cur, true);
  if (prev) visit(*prev, false);

  // On-CPU time by stack: per thread, its exact on-CPU time in the interval (the growth of the
  // sum of its slices: exact even when its running slice moved between accounts) split by the
  // samples its stacks got in the interval.
  struct Thread {
    uint32_t pid = 0;
    uint64_t cur = 0, prev = 0;
    std::map<TopAccountKey, uint64_t> samples;
  };
  std::map<uint32_t, Thread> threads;
  for (const auto& [k, v] : cur.accounts) {
    Thread& t = threads[k.tid];
    t.pid = k.pid;
    t.cur += v.slice_ns;
    if (v.oncpu_samples) t.samples[k] += v.oncpu_samples;
  }
  if (prev)
    for (const auto& [k, v] : prev->accounts) {
      auto it = threads.find(k.tid);
      if (it == threads.end()) continue;
      it->second.prev += v.slice_ns;
      auto s = it->second.samples.find(k);
      if (s != it->second.samples.end())
        s->second = s->second > v.oncpu_samples ? s->second - v.oncpu_samples : 0;
    }
  // kscope itself when its threads are not traced (TopSample::self_cpu_ns): its own clock.
  if (hide_pid && cur.self_cpu_ns) {
    uint64_t before = prev ? prev->self_cpu_ns : 0;
    table.hidden_oncpu_ns += cur.self_cpu_ns > before ? cur.self_cpu_ns - before : 0;
  }
  for (const auto& [tid, t] : threads) {
    uint64_t total = t.cur > t.prev ? t.cur - t.prev : 0;
    if (hidden(TopAccountKey{t.pid, tid})) {
      table.hidden_oncpu_ns += total;
      continue;
    }
    for (const auto& [k, ns] : split_thread_oncpu(total, t.samples, t.pid, tid)) {
      Group& g = group_of(k);
      g.oncpu += ns;
      if (group_by != TopGroupBy::kStack) g.members_oncpu[k] += ns;
    }
  }

  for (auto& [id, g] : groups) {
    g.row.values = g.cur.minus(g.prev);
    g.row.values.oncpu_ns = g.oncpu;
    if (g.row.values.empty()) continue;
    if (group_by != TopGroupBy::kStack) {
      // The stack where the group spent the most CPU (sampled); without samples, known stacks
      // with activity win over the placeholder of a slice running since before tracing (no
      // stack yet); among equals, the most slice time.
      const TopAccountKey* best = nullptr;
      std::tuple<uint64_t, bool, uint64_t> best_rank{0, false, 0};
      for (const auto& [k, v] : g.members_cur) {
        auto p = g.members_prev.find(k);
        uint64_t d = v.minus(p == g.members_prev.end() ? TopValues{} : p->second).slice_ns;
        auto o = g.members_oncpu.find(k);
        uint64_t on = o == g.members_oncpu.end() ? 0 : o->second;
        std::tuple<uint64_t, bool, uint64_t> rank{on, k.kstack != kStackUnknown && d > 0, d};
        if (!best || rank > best_rank) {
          best = &k;
          best_rank = rank;
        }
      }
      if (best) {
        g.row.kstack = best->kstack;
        g.row.ustack = best->ustack;
        g.row.stack_pid = best->pid;
      }
    }
    table.total += g.row.values;
    table.rows.push_back(std::move(g.row));
  }
  sort_top_rows(table.rows, sort);
  return table;
}

}  // namespace kscope

namespace kscope {

TopTable build_group_stack_table(const TopSample* prev, const TopSample& cur, uint64_t start_ns,
                                 const TopRow& row, TopGroupBy row_group_by, TopSortKey sort,
                                 const CommLookup& comm_of) {
  std::map<uint32_t, bool> comm_match;  // by tid
  auto member = [&](const TopAccountKey& k) {
    switch (row_group_by) {
      case TopGroupBy::kStack:
        return k.pid == row.pid && k.tid == row.tid && k.kstack == row.kstack &&
               k.ustack == row.ustack;
      case TopGroupBy::kTid:
        return k.tid == row.tid;
      case TopGroupBy::kPid:
        return k.pid == row.pid;
      case TopGroupBy::kComm: {
        auto [it, inserted] = comm_match.try_emplace(k.tid, false);
        if (inserted) it->second = comm_of && comm_of(k.pid, k.tid) == row.comm;
        return it->second;
      }
    }
    return false;
  };
  auto only_members = [&](const TopSample& s) {
    TopSample out;
    out.time_ns = s.time_ns;
    out.counters = s.counters;
    for (const auto& [k, v] : s.accounts)
      if (member(k)) out.accounts.emplace(k, v);
    return out;
  };
  TopSample cur_members = only_members(cur);
  std::optional<TopSample> prev_members;
  if (prev) prev_members = only_members(*prev);
  return build_top_table(prev_members ? &*prev_members : nullptr, cur_members, start_ns,
                         TopGroupBy::kStack, sort, comm_of);
}

}  // namespace kscope
