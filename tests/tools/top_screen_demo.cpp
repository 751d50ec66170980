// The interactive `kscope top` screen fed with synthetic tables, a new one every 200 ms: for
// looking at the screen without root or BPF, and for tests/unit/top_screen_tmux_test.cpp, which
// drives it through tmux. Values are deterministic functions of the refresh number, so the
// ranking is stable: "postgres" (pid 2001) leads, "nginx" follows.
//
//   top_screen_demo [--interval-ms N]      q quits with status 0
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "model/top_model.h"
#include "render/top_screen.h"

namespace {

using kscope::TopGroupBy;
using kscope::TopRow;
using kscope::TopSortKey;
using kscope::TopStackView;
using kscope::TopTable;
using kscope::TopValues;

volatile std::sig_atomic_t g_interrupted = 0;

struct Account {
  uint32_t pid, tid;
  const char* comm;
  int32_t kstack, ustack;
  double oncpu_ms;    // per second
  uint64_t switches;  // per second
  double voluntary_share;
  double runq_ms;
};

// A small "server": ranked by on-CPU time, postgres > nginx > java > ...
const std::vector<Account> kAccounts = {
    {2001, 2001, "postgres", 3, 11, 610, 900, 0.30, 40},
    {2001, 2007, "postgres", 1, 10, 95, 400, 0.95, 8},
    {1500, 1500, "nginx", 2, 12, 420, 2600, 0.90, 21},
    {1500, 1502, "nginx", 2, 12, 120, 800, 0.90, 6},
    {3100, 3122, "java", 1, 10, 260, 1200, 0.85, 33},
    {3100, 3123, "java", kscope::kStackCollision, 13, 90, 300, 0.60, 12},
    {812, 812, "sshd", 2, 12, 18, 40, 1.0, 0.5},
    {97, 97, "kworker/1:2", 4, kscope::kStackNone, 11, 150, 1.0, 0.2},
    {15, 15, "ksoftirqd/1", 4, kscope::kStackNone, 7, 90, 1.0, 0.1},
    {4242, 4242, "python3", 3, 14, 55, 60, 0.20, 9},
    {4242, 4250, "python3", 1, 10, 4, 30, 1.0, 0.3},
    {1, 1, "systemd", 2, 12, 1.5, 6, 1.0, 0.05},
};

TopValues values_at(const Account& a, uint64_t tick, double seconds) {
  // Jitter of +-5 %: visible movement, ranking unchanged.
  double wobble = 1.0 + 0.05 * std::sin(static_cast<double>(tick) * 0.7 + a.tid);
  TopValues v;
  v.oncpu_ns = static_cast<uint64_t>(a.oncpu_ms * 1e6 * seconds * wobble);
  v.switches = static_cast<uint64_t>(static_cast<double>(a.switches) * seconds * wobble) + 1;
  v.voluntary = static_cast<uint64_t>(static_cast<double>(v.switches) * a.voluntary_share);
  v.involuntary = v.switches - v.voluntary;
  v.runq_wait_ns = static_cast<uint64_t>(a.runq_ms * 1e6 * seconds * wobble);
  return v;
}

bool sorts_before(const TopRow& a, const TopRow& b, TopSortKey key) {
  auto desc = [&](uint64_t x, uint64_t y) { return x != y ? x > y : a.id < b.id; };
  switch (key) {
    case TopSortKey::kOnCpu:
      return desc(a.values.oncpu_ns, b.values.oncpu_ns);
    case TopSortKey::kSwitches:
      return desc(a.values.switches, b.values.switches);
    case TopSortKey::kVoluntary:
      return desc(a.values.voluntary, b.values.voluntary);
    case TopSortKey::kInvoluntary:
      return desc(a.values.involuntary, b.values.involuntary);
    case TopSortKey::kAvgSlice:
      return desc(a.avg_slice_ns(), b.avg_slice_ns());
    case TopSortKey::kRunqWait:
      return desc(a.values.runq_wait_ns, b.values.runq_wait_ns);
    case TopSortKey::kPid:
      return std::tie(a.pid, a.tid, a.id) < std::tie(b.pid, b.tid, b.id);
    case TopSortKey::kComm:
      return std::tie(a.comm, a.id) < std::tie(b.comm, b.id);
  }
  return false;
}

TopTable make_table(uint64_t tick, uint64_t interval_ns, TopGroupBy group_by, TopSortKey sort) {
  TopTable table;
  table.interval_ns = interval_ns;
  table.end_time_ns = tick * interval_ns;
  table.group_by = group_by;
  table.sort = sort;
  table.ncpus = 4;
  const double seconds = static_cast<double>(interval_ns) / 1e9;
  std::map<std::string, TopRow> groups;
  std::map<std::string, uint64_t> best_oncpu;
  for (const auto& a : kAccounts) {
    TopValues v = values_at(a, tick, seconds);
    std::string id;
    switch (group_by) {
      case TopGroupBy::kStack:
        id = fmt::format("s:{}:{}:{}", a.tid, a.kstack, a.ustack);
        break;
      case TopGroupBy::kTid:
        id = fmt::format("t:{}", a.tid);
        break;
      case TopGroupBy::kPid:
        id = fmt::format("p:{}", a.pid);
        break;
      case TopGroupBy::kComm:
        id = fmt::format("c:{}", a.comm);
        break;
    }
    TopRow& row = groups[id];
    row.id = id;
    row.comm = a.comm;
    row.values += v;
    if (v.oncpu_ns >= best_oncpu[id]) {
      // The group shows the stack of its busiest account, like the model does.
      best_oncpu[id] = v.oncpu_ns;
      row.pid = a.pid;
      row.tid = group_by == TopGroupBy::kStack || group_by == TopGroupBy::kTid ? a.tid : 0;
      row.kstack = a.kstack;
      row.ustack = a.ustack;
      row.stack_pid = a.pid;
    }
    table.total += v;
  }
  for (auto& [id, row] : groups) table.rows.push_back(std::move(row));
  std::sort(table.rows.begin(), table.rows.end(),
            [&](const TopRow& a, const TopRow& b) { return sorts_before(a, b, sort); });
  table.switches_all = table.total.switches + 37;
  table.cpu_busy =
      static_cast<double>(table.total.oncpu_ns) / (static_cast<double>(interval_ns) * table.ncpus);
  // Some drops, so the header's LOST field and breakdown are on show.
  table.counters.switches_total = table.switches_all;
  table.counters.kstack_collisions = 2;
  table.counters.accounts_full = 1;
  table.counters.accounts_full_ns = 1'250'000;
  return table;
}

kscope::TopFrameView frame(const char* symbol, uint64_t offset, const char* module, bool kernel) {
  kscope::TopFrameView f;
  f.symbol = symbol;
  f.offset = offset;
  f.module = module;
  f.kernel = kernel;
  f.resolved = true;
  f.addr = (kernel ? 0xffffffff81000000ull : 0x7f0000000000ull) + offset;
  return f;
}

TopStackView synthetic_stack(const TopRow& row) {
  TopStackView s;
  switch (row.kstack) {
    case 1:
      s.kernel = {frame("__schedule", 0x2c4, "kernel", true),
                  frame("schedule", 0x5e, "kernel", true),
                  frame("futex_wait_queue", 0x62, "kernel", true),
                  frame("futex_wait", 0x175, "kernel", true),
                  frame("do_futex", 0x106, "kernel", true),
                  frame("do_syscall_64", 0x5c, "kernel", true)};
      break;
    case 2:
      s.kernel = {frame("__schedule", 0x2c4, "kernel", true),
                  frame("schedule", 0x5e, "kernel", true),
                  frame("schedule_hrtimeout_range", 0xb1, "kernel", true),
                  frame("do_epoll_wait", 0x4b6, "kernel", true),
                  frame("do_syscall_64", 0x5c, "kernel", true)};
      break;
    case 3:
      s.kernel = {frame("__schedule", 0x2c4, "kernel", true),
                  frame("preempt_schedule_irq", 0x3a, "kernel", true),
                  frame("irqentry_exit", 0x31, "kernel", true)};
      break;
    case 4:
      s.kernel = {
          frame("__schedule", 0x2c4, "kernel", true), frame("schedule", 0x5e, "kernel", true),
          frame("worker_thread", 0xc3, "kernel", true), frame("kthread", 0xe8, "kernel", true)};
      break;
    case kscope::kStackCollision:
      s.note = "[kernel stack lost: map collision]";
      break;
    default:
      break;
  }
  switch (row.ustack) {
    case 10:
      s.user = {frame("pthread_cond_wait", 0x1ad, "libc.so.6", false),
                frame("worker_loop", 0x33, "/usr/bin/demo-server", false),
                frame("start_thread", 0x94, "libc.so.6", false)};
      break;
    case 11:
      s.user = {frame("ExecScan", 0x91, "/usr/lib/postgresql/bin/postgres", false),
                frame("standard_ExecutorRun", 0x12e, "/usr/lib/postgresql/bin/postgres", false),
                frame("main", 0x2f1, "/usr/lib/postgresql/bin/postgres", false)};
      break;
    case 12:
      s.user = {frame("epoll_wait", 0x5e, "libc.so.6", false),
                frame("ngx_process_events", 0x1b2, "/usr/sbin/nginx", false)};
      break;
    case 13:
      s.user = {frame("Interpreter", 0x6a0, "libjvm.so", false)};
      break;
    case 14:
      s.user = {frame("_PyEval_EvalFrameDefault", 0x3c1, "libpython3.so", false)};
      break;
    default:
      break;
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int interval_ms = 200;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--interval-ms") == 0 && i + 1 < argc) {
      interval_ms = std::max(10, std::atoi(argv[++i]));
    } else {
      fmt::print(stderr, "usage: top_screen_demo [--interval-ms N]\n");
      return 2;
    }
  }
  std::signal(SIGINT, [](int) { g_interrupted = 1; });
  std::signal(SIGTERM, [](int) { g_interrupted = 1; });

  // The demo starts in the stack grouping (tests/unit/top_screen_tmux_test.cpp walks from there).
  kscope::TopUiState initial;
  initial.group_by = TopGroupBy::kStack;
  auto screen = kscope::TopScreen::create(initial);
  if (!screen) {
    fmt::print(stderr, "top_screen_demo: {}\n", screen.error().describe());
    return 1;
  }
  using Clock = std::chrono::steady_clock;
  const auto interval = std::chrono::milliseconds(interval_ms);
  const uint64_t interval_ns = static_cast<uint64_t>(interval_ms) * 1'000'000;
  uint64_t tick = 1;
  auto table_now = [&] {
    const auto& st = (*screen)->state();
    return make_table(tick, interval_ns, st.group_by, st.sort);
  };
  TopTable table = table_now();
  (*screen)->draw(table, synthetic_stack);
  auto next = Clock::now() + interval;
  while (!g_interrupted) {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
    auto event = (*screen)->handle_input(static_cast<int>(std::max<int64_t>(0, wait.count())));
    if (event == kscope::TopEvent::kQuit) break;
    bool redraw = event != kscope::TopEvent::kNone;
    if (event == kscope::TopEvent::kRegroup) table = table_now();
    if (Clock::now() >= next || event == kscope::TopEvent::kRefresh) {
      next += interval;
      if (!(*screen)->state().paused) {
        ++tick;
        table = table_now();
        redraw = true;
      }
    }
    if (redraw) (*screen)->draw(table, synthetic_stack);
  }
  return 0;
}
