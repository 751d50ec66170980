#include "trace/top_tracer.h"

#include <bpf/bpf.h>
#include <fmt/format.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "bpf/libbpf_util.h"
#include "bpf/map_batch.h"
#include "kscope/abi/top.h"
#include "kscope/abi/unwind.h"
#include "model/fault_stacks.h"
#include "top.skel.h"
#include "trace/bpf_unwind_maps.h"
#include "trace/privileges.h"
#include "trace/proc.h"
#include "trace/targets.h"
#include "unwind/table_loader.h"
#include "util/clock.h"
#include "util/file.h"

namespace kscope {

static_assert(sizeof(kscope_top_key) == 16, "kscope_top_key layout changed");
static_assert(sizeof(kscope_top_value) == 56, "kscope_top_value layout changed");
static_assert(sizeof(kscope_top_cpu) == 40, "kscope_top_cpu layout changed");
static_assert(sizeof(kscope_top_process_event) == 40, "kscope_top_process_event layout changed");
static_assert(sizeof(kscope_top_slice_event) == 48, "kscope_top_slice_event layout changed");
static_assert(sizeof(kscope_unwind_row) == 8, "kscope_unwind_row layout changed");
static_assert(sizeof(kscope_unwind_file) == 24, "kscope_unwind_file layout changed");
static_assert(sizeof(kscope_unwind_index_entry) == sizeof(kscope_unwind_row),
              "an index entry is stored as an element of the rows map");
static_assert(sizeof(kscope_unwind_mapping) == 32, "kscope_unwind_mapping layout changed");
static_assert(sizeof(kscope_unwind_process) == 8 + 32 * KSCOPE_UNWIND_MAX_MAPPINGS,
              "kscope_unwind_process layout changed");
static_assert(sizeof(kscope_unwind_stack) == 16 + 8 * KSCOPE_UNWIND_MAX_FRAMES,
              "kscope_unwind_stack layout changed");
static_assert(kStackNone == KSCOPE_STACK_NONE && kStackCollision == KSCOPE_STACK_COLLISION &&
                  kStackError == KSCOPE_STACK_ERROR && kStackUnknown == KSCOPE_STACK_UNKNOWN &&
                  kStackFull == KSCOPE_STACK_FULL,
              "stack id sentinels differ between the ABI and the model");

namespace {
struct SkeletonDeleter {
  void operator()(top_bpf* s) const { top_bpf__destroy(s); }
};
constexpr size_t kMaxStackDepth = 127;
std::string bounded(const char* s, size_t max) { return std::string(s, strnlen(s, max)); }
}  // namespace

struct TopTracer::Impl {
  TopTraceOptions options;
  std::unique_ptr<top_bpf, SkeletonDeleter> skel;
  std::unique_ptr<bpf::RingBuffer> rb;
  std::function<void(const TopProcessEvent&)> process_handler;
  std::function<void(const TopSliceEvent&)> slice_handler;
  uint64_t start_ns = 0;
  uint64_t self_cpu_at_start = 0;  // CLOCK_PROCESS_CPUTIME_ID at start_ns, with exclude_self
  int ncpus = 0;
  std::unique_ptr<BpfUnwindMaps> unwind_maps;  // with --call-graph dwarf
  std::unique_ptr<unwind::TableLoader> tables;
  bpf::PerfEventLinks sampler;  // one cpu-clock event per online CPU
  // The sampler's governor (govern(), on a thread of its own). The kernel limits the time a
  // PMU's NMI handler may take (kernel.perf_cpu_time_max_percent) and lowers
  // perf_event_max_sample_rate when it goes over, but a cpu-clock event is an hrtimer and
  // neither it nor its BPF program is held to that. At -F max (100 kHz) on this VM the timer
  // fired only 9,000-22,000 times a second per CPU (a timer interrupt costs 45-110 us when the
  // guest's timer is emulated), the CPUs did little else, and 2 s of work ran for 12 minutes.
  // So kscope applies the kernel's limit itself, over 0.1 s windows per CPU: the program's own
  // time (KSCOPE_TOP_SAMPLER_NS) over the limit doubles the period until it fits
  // (sampler_weight_for). And the timer is checked while a task runs (sampler_timer_check, from
  // KSCOPE_TOP_SAMPLER_BUSY_RUNS/_NS: the runs with no context switch since the one before, and
  // the time between them): one that runs fewer than half the times asked, two windows in a
  // row, has its interrupts saturating the CPU, the time between its runs is what one costs,
  // and the rate is lowered until rate x cost fits the limit too. sample_weight keeps samples
  // in requested periods. Interrupt time below saturation is not visible from inside the guest
  // (no IRQ time accounting here): a rate the timer keeps up with is kept.
  uint32_t requested_hz = 0;
  uint64_t base_period_ns = 0;  // NSEC_PER_SEC / requested_hz, as the kernel computes it
  uint64_t weight = 1;          // the period now, in base periods
  double sampler_limit = 0;     // fraction of a CPU; 0: no limit (the sysctl at 0 or 100)
  uint64_t governed_at_ns = 0;
  // Per CPU, at governed_at_ns: the program's own time, its busy runs and the time between them.
  std::vector<uint64_t> governed_ns, governed_busy_runs, governed_busy_ns;
  std::vector<int> short_windows;        // per CPU: windows in a row the timer lagged
  std::vector<SamplerLowering> lowered;  // under lowered_mutex (the governor thread appends)
  mutable std::mutex lowered_mutex;
  static constexpr uint64_t kGovernWindowNs = 100'000'000;
  // The governor runs on its own thread, so a poll loop busy elsewhere (a large binary's unwind
  // table takes seconds) cannot delay it, at SCHED_FIFO when allowed: a CPU saturated by timer
  // interrupts leaves ordinary threads almost nothing. The thread is started, and at its
  // priority, before the sampler is attached: started after it, on CPUs the timer saturated, it
  // once took 13 s to run its first line, and attaching the next event 8 s.
  std::thread governor;
  std::mutex governor_mutex;
  std::condition_variable governor_wake;
  bool governor_stop = false;
  bool governor_ready = false;  // the thread runs, at its priority
  bool governing = false;       // the sampler is attached: govern it

  void start_governor() {
    if (sampler_limit <= 0) return;
    // Signals go to the main thread, whose poll they interrupt: the governor is created with
    // every signal blocked (a thread inherits its creator's mask).
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    governor = std::thread([this] {
      sched_param sp{};
      sp.sched_priority = 1;
      (void)pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
      std::unique_lock<std::mutex> lock(governor_mutex);
      governor_ready = true;
      governor_wake.notify_all();
      governor_wake.wait(lock, [this] { return governor_stop || governing; });
      // The first call takes the counters the first window starts from.
      while (!governor_stop) {
        govern();
        governor_wake.wait_for(lock, std::chrono::nanoseconds(kGovernWindowNs));
      }
    });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    std::unique_lock<std::mutex> lock(governor_mutex);
    governor_wake.wait_for(lock, std::chrono::seconds(5), [this] { return governor_ready; });
  }
  // The sampler is attached: the governor takes it from here (sampler is not touched by this
  // thread again while the governor runs).
  void start_governing() {
    {
      std::lock_guard<std::mutex> lock(governor_mutex);
      governing = true;
    }
    governor_wake.notify_all();
  }
  void stop_governor() {
    {
      std::lock_guard<std::mutex> lock(governor_mutex);
      governor_stop = true;
    }
    governor_wake.notify_all();
    if (governor.joinable()) governor.join();
  }
  ~Impl() { stop_governor(); }

  void govern() {
    if (sampler.fds.empty() || sampler_limit <= 0) return;
    uint64_t now = monotonic_ns();
    if (governed_at_ns && now - governed_at_ns < kGovernWindowNs) return;
    int fd = bpf_map__fd(skel->maps.counters);
    auto own = bpf::read_percpu_u64(fd, KSCOPE_TOP_SAMPLER_NS);
    auto busy_runs = bpf::read_percpu_u64(fd, KSCOPE_TOP_SAMPLER_BUSY_RUNS);
    auto busy_ns = bpf::read_percpu_u64(fd, KSCOPE_TOP_SAMPLER_BUSY_NS);
    if (!own || !busy_runs || !busy_ns || own->size() != busy_runs->size() ||
        own->size() != busy_ns->size())
      return;
    uint64_t window = governed_at_ns ? now - governed_at_ns : 0;
    std::vector<uint64_t> ns_before = std::move(governed_ns),
                          runs_before = std::move(governed_busy_runs),
                          busy_before = std::move(governed_busy_ns);
    governed_ns = *own;
    governed_busy_runs = *busy_runs;
    governed_busy_ns = *busy_ns;
    governed_at_ns = now;
    short_windows.resize(own->size(), 0);
    // The three were kept together, from vectors of one size.
    if (!window || ns_before.size() != own->size()) return;
    double period_ns = static_cast<double>(base_period_ns * weight);
    double worst = 0, worst_delivered = 1, lag_interval_ns = 0;
    int worst_cpu = -1, lag_cpu = -1;
    auto delta = [](uint64_t now_v, uint64_t before) { return now_v - std::min(now_v, before); };
    for (size_t c = 0; c < own->size(); ++c) {
      double busy =
          static_cast<double>(delta((*own)[c], ns_before[c])) / static_cast<double>(window);
      // An idle CPU's timer may fire far less than asked (seen here at 1-2 kHz), which costs
      // nothing, and a CPU that is offline, or whose event is not scheduled, runs nothing:
      // only the runs while a task ran there tell whether the timer keeps up.
      SamplerTimerCheck check =
          sampler_timer_check(delta((*busy_runs)[c], runs_before[c]),
                              delta((*busy_ns)[c], busy_before[c]), period_ns, window);
      // A window not judged (the CPU mostly idle, or between tasks) neither adds nor ends one.
      if (check.judged) short_windows[c] = check.lagging ? short_windows[c] + 1 : 0;
      if (busy > worst) {
        worst = busy;
        worst_cpu = static_cast<int>(c);
      }
      if (short_windows[c] >= 2 && check.delivered < worst_delivered) {
        worst_delivered = check.delivered;
        lag_interval_ns = check.interval_ns;
        lag_cpu = static_cast<int>(c);
      }
    }
    // A CPU saturated by the timer's interrupts spends the window on them: each costs about
    // the time between runs, and the rate costs rate x that.
    double lag_share = lag_cpu >= 0 ? lag_interval_ns / period_ns : 0;
    uint64_t next =
        sampler_weight_for(std::max(worst, lag_share), sampler_limit, weight, requested_hz);
    if (lag_cpu >= 0 && next == weight && weight * 2 <= requested_hz) next = weight * 2;
    if (lag_cpu >= 0) worst_cpu = lag_cpu;
    if (next == weight) return;
    uint64_t period = base_period_ns * next;
    for (int event_fd : sampler.fds)
      if (ioctl(event_fd, PERF_EVENT_IOC_PERIOD, &period) != 0) {
        if (options.verbosity)
          std::fprintf(stderr, "kscope top: cannot lower the sampler's rate: %s\n",
                       std::strerror(errno));
        sampler_limit = 0;  // do not try again every window
        return;
      }
    skel->data->sample_weight = next;
    SamplerLowering l;
    l.at_ns = now - start_ns;
    l.from_hz = static_cast<uint32_t>(requested_hz / weight);
    l.to_hz = static_cast<uint32_t>(requested_hz / next);
    l.cpu = worst_cpu;
    l.share = worst;
    l.delivered = lag_cpu >= 0 ? worst_delivered : 1;
    l.interval_ns = lag_cpu >= 0 ? lag_interval_ns : 0;
    l.limit = sampler_limit;
    l.window_ns = window;
    {
      std::lock_guard<std::mutex> lock(lowered_mutex);
      lowered.push_back(l);
    }
    weight = next;
    // The next window starts at the next call (the counters are read again then).
    governed_at_ns = 0;
    std::fill(short_windows.begin(), short_windows.end(), 0);
  }
  // top_adopt's timer (bpf/top.bpf.c): threads running since before tracing get a running
  // slice. Detached once every CPU has switched (adopt_done()).
  bpf::PerfEventLinks adopter;
  bool adopting = false;
  static constexpr uint64_t kAdoptHz = 100;

  // Every possible CPU has had a context switch since attach: no task can be running there
  // since before tracing any more, so the adoption timer goes.
  void stop_adopting_when_done() {
    if (!adopting) return;
    auto last = bpf::read_percpu_u64(bpf_map__fd(skel->maps.last_switch), 0);
    if (!last) return;
    auto online = bpf::online_cpus();
    if (!online) return;
    for (int cpu : *online)
      if (cpu >= 0 && static_cast<size_t>(cpu) < last->size() && (*last)[cpu] == 0) return;
    adopter = bpf::PerfEventLinks();
    adopting = false;
  }
  std::vector<bpf::Link>
      early;  // bpf/unwind.bpf.h's mmap/munmap/exit programs, with --call-graph dwarf
  // reclaim_user_stacks(): ids unreferenced at the previous call, and the stacks it deleted
  // (frames only, put back if an account refers to them by the next call).
  std::unordered_set<uint32_t> ustacks_unreferenced;
  struct DeletedStack {
    uint64_t hash = 0;
    uint8_t reason = 0;
    std::vector<uint64_t> ips;
  };
  std::unordered_map<uint32_t, DeletedStack> ustacks_deleted;
  std::vector<std::pair<std::string, uint64_t>> phases;  // create()'s steps, ns each
  // reclaim_stacks(): the same for the kernel's stack map, whose entries cannot be put back:
  // the frames of an entry deleted at the last call, and of one an account came to refer to
  // after its delete (kept while referenced).
  std::unordered_set<uint32_t> stacks_unreferenced;
  std::unordered_map<uint32_t, std::vector<uint64_t>> stacks_deleted;
  std::unordered_map<uint32_t, std::vector<uint64_t>> stacks_kept;

  // The frames of `stacks` entry `id`, or nullopt when the bucket is empty.
  std::optional<std::vector<uint64_t>> stack_entry(uint32_t id) {
    std::vector<uint64_t> ips(kMaxStackDepth, 0);
    if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.stacks), &id, ips.data()) != 0)
      return std::nullopt;
    ips.erase(std::find(ips.begin(), ips.end(), 0ull), ips.end());
    return ips;
  }

  void handle(const void* data, size_t size) {
    if (size < sizeof(uint16_t)) return;
    uint16_t type;
    std::memcpy(&type, data, sizeof(type));
    if (type == KSCOPE_TOP_REC_PROCESS && size >= sizeof(kscope_top_process_event)) {
      kscope_top_process_event e;
      std::memcpy(&e, data, sizeof(e));
      if (process_handler)
        process_handler(
            TopProcessEvent{e.pid, e.tid, e.exec != 0, e.time_ns, bounded(e.comm, sizeof(e.comm))});
    } else if (type == KSCOPE_TOP_REC_SLICE && size >= sizeof(kscope_top_slice_event)) {
      kscope_top_slice_event e;
      std::memcpy(&e, data, sizeof(e));
      if (slice_handler)
        slice_handler(TopSliceEvent{e.pid, e.tid, e.cpu,
                                    (e.flags & KSCOPE_TOP_SLICE_VOLUNTARY) != 0, e.start_ns,
                                    e.end_ns, bounded(e.comm, sizeof(e.comm))});
    }
  }

  // Both maps keyed by account are read whole at every sample, in batches (one syscall per
  // 4,096 entries; per key, two syscalls each, a refresh with ~77,000 accounts took seconds).
  // The keys read are kept for forget_threads().
  bpf::MapBatchSupport accounts_batch, samples_batch;
  std::vector<kscope_top_key> account_keys, sample_keys;

  using AccountEntries = std::vector<std::pair<kscope_top_key, kscope_top_value>>;
  Result<AccountEntries> read_account_entries() {
    return bpf::read_map<kscope_top_key, kscope_top_value>(bpf_map__fd(skel->maps.accounts),
                                                           accounts_batch);
  }
  void add_accounts(TopSample& out, const AccountEntries& entries) {
    account_keys.clear();
    account_keys.reserve(entries.size());
    newest.clear();
    for (const auto& [k, v] : entries) {
      add(out, k, v);
      account_keys.push_back(k);
      auto [it, fresh] = newest.try_emplace(k.tid, v.last_out_ns, k);
      if (!fresh && v.last_out_ns > it->second.first) it->second = {v.last_out_ns, k};
    }
    // Values of accounts folded while activity reached them (fold_accounts): still live.
    for (const auto& [k, v] : carried) out.accounts[k] += v;
  }
  // Per thread, as the last sample read them: its account of the latest switch-out, where its
  // next off-CPU interval and run-queue wait will be counted (never folded).
  std::unordered_map<uint32_t, std::pair<uint64_t, kscope_top_key>> newest;
  // Accounts fold_accounts() deleted from the kernel's maps after activity reached them since
  // the sample that found them idle: what they held is added to every sample until they are
  // folded again (rare: the thread ran at that stack in the moment between the two).
  TopAccounts carried;
  uint64_t folds = 0, fold_carries = 0, fold_newest_kept = 0;

  static void add(TopSample& out, const kscope_top_key& k, const kscope_top_value& v) {
    TopValues& dst = out.accounts[TopAccountKey{k.pid, k.tid, k.kstack, k.ustack}];
    TopValues add;
    add.slice_ns = v.slice_ns;
    add.runq_wait_ns = v.runq_wait_ns;
    add.switches = v.switches;
    add.voluntary = v.voluntary;
    add.involuntary = v.involuntary;
    add.offcpu_ns = v.offcpu_ns;
    dst += add;
  }

  Status read_samples(TopSample& out) {
    sample_keys.clear();
    if (!options.sample_hz) return {};
    KSCOPE_ASSIGN_OR_RETURN(auto entries,
                            (bpf::read_map<kscope_top_key, uint64_t>(
                                bpf_map__fd(skel->maps.oncpu_samples), samples_batch)));
    sample_keys.reserve(entries.size());
    for (const auto& [k, n] : entries) {
      sample_keys.push_back(k);
      if (n) out.accounts[TopAccountKey{k.pid, k.tid, k.kstack, k.ustack}].oncpu_samples += n;
    }
    return {};
  }

  Result<std::vector<kscope_top_cpu>> read_cpu_state() {
    std::vector<kscope_top_cpu> cpus(static_cast<size_t>(ncpus));
    uint32_t zero = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.cpu_state), &zero, cpus.data()) != 0)
      return make_error("reading the per-CPU slice state failed", errno);
    return cpus;
  }
  // No tracked slice began or ended between two readings of the CPUs' state.
  static bool same_slices(const std::vector<kscope_top_cpu>& a,
                          const std::vector<kscope_top_cpu>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].tracked != b[i].tracked) return false;
      if (a[i].tracked && (a[i].tid != b[i].tid || a[i].since_ns != b[i].since_ns)) return false;
    }
    return true;
  }
  // Readings of the accounts per table at most (each is one pass over the accounts map).
  static constexpr uint32_t kSampleReads = 4;
  static void add_running(TopSample& out, const std::vector<kscope_top_cpu>& cpus, uint64_t now) {
    for (const auto& c : cpus) {
      if (!c.tracked || c.since_ns == 0 || c.since_ns > now) continue;
      TopValues& dst = out.accounts[TopAccountKey{c.pid, c.tid, c.kstack, c.ustack}];
      TopValues add;
      add.slice_ns = now - c.since_ns;
      add.runq_wait_ns = c.pending_wait_ns;
      add.switches = c.switched_in ? 1u : 0u;
      dst += add;
    }
  }

  Status read_counters(TopCounters& c) {
    int fd = bpf_map__fd(skel->maps.counters);
    auto sum = [&](uint32_t idx) -> Result<uint64_t> {
      KSCOPE_ASSIGN_OR_RETURN(auto values, bpf::read_percpu_u64(fd, idx));
      uint64_t s = 0;
      for (uint64_t v : values) s += v;
      return s;
    };
    KSCOPE_ASSIGN_OR_RETURN(c.switches_total, sum(KSCOPE_TOP_SWITCHES));
    KSCOPE_ASSIGN_OR_RETURN(c.tracked_switches, sum(KSCOPE_TOP_TRACKED_SWITCHES));
    KSCOPE_ASSIGN_OR_RETURN(c.kstack_collisions, sum(KSCOPE_TOP_KSTACK_COLLISION));
    KSCOPE_ASSIGN_OR_RETURN(c.ustack_collisions, sum(KSCOPE_TOP_USTACK_COLLISION));
    KSCOPE_ASSIGN_OR_RETURN(c.kstack_errors, sum(KSCOPE_TOP_KSTACK_ERROR));
    KSCOPE_ASSIGN_OR_RETURN(c.ustack_errors, sum(KSCOPE_TOP_USTACK_ERROR));
    KSCOPE_ASSIGN_OR_RETURN(c.accounts_full, sum(KSCOPE_TOP_ACCOUNTS_FULL));
    KSCOPE_ASSIGN_OR_RETURN(c.accounts_full_ns, sum(KSCOPE_TOP_ACCOUNTS_FULL_NS));
    KSCOPE_ASSIGN_OR_RETURN(c.storage_failures, sum(KSCOPE_TOP_STORAGE_FAIL));
    KSCOPE_ASSIGN_OR_RETURN(c.slices_lost, sum(KSCOPE_TOP_SLICES_LOST));
    KSCOPE_ASSIGN_OR_RETURN(c.events_lost, sum(KSCOPE_TOP_EVENTS_LOST));
    KSCOPE_ASSIGN_OR_RETURN(c.samples, sum(KSCOPE_TOP_SAMPLES));
    KSCOPE_ASSIGN_OR_RETURN(c.samples_full, sum(KSCOPE_TOP_SAMPLES_FULL));
    KSCOPE_ASSIGN_OR_RETURN(c.ustacks_full, sum(KSCOPE_TOP_USTACK_FULL));
    KSCOPE_ASSIGN_OR_RETURN(c.sampler_ns, sum(KSCOPE_TOP_SAMPLER_NS));
    // Runs the kernel skipped because the program was already active on that CPU: a switch or
    // wakeup not seen at all.
    for (bpf_program* prog : {skel->progs.top_sched_switch, skel->progs.top_sched_wakeup,
                              skel->progs.top_sched_wakeup_new, skel->progs.top_sample}) {
      if (!bpf_program__autoload(prog)) continue;
      bpf_prog_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0)
        (prog == skel->progs.top_sample ? c.samples_missed : c.prog_misses) +=
            info.recursion_misses;
    }
    return {};
  }
};

TopTracer::TopTracer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TopTracer::~TopTracer() = default;

Result<std::unique_ptr<TopTracer>> TopTracer::create(const TopTraceOptions& options) {
  for (pid_t pid : options.pids)
    if (pid <= 0) return usage_error(fmt::format("invalid PID {}", pid));
  // Kernel threads run on CPUs too: top measures them.
  KSCOPE_TRY(check_process_targets(options.pids, "-t", /*kernel_threads_ok=*/true));
  if (options.comm.size() > 15)
    return usage_error(fmt::format(
        "--comm '{}' is longer than 15 characters; the kernel keeps only the first 15 of a "
        "thread's name, so nothing could match",
        options.comm));
  auto privileges = check_bpf_privileges();
  if (!privileges.sufficient) return privilege_error("top", privileges);

  auto impl = std::make_unique<Impl>();
  impl->options = options;
  uint64_t phase_start = monotonic_ns();
  auto phase_done = [&](const char* what) {
    uint64_t now = monotonic_ns();
    impl->phases.emplace_back(what, now - phase_start);
    phase_start = now;
  };
  bpf::install_libbpf_logger(options.verbosity);
  impl->skel.reset(top_bpf__open());
  if (!impl->skel) return bpf::libbpf_error("opening the top BPF object failed", errno);
  auto* skel = impl->skel.get();
  skel->rodata->filter_pids = !options.pids.empty();
  skel->rodata->filter_tids = !options.threads.empty();
  skel->rodata->filter_comm = !options.comm.empty();
  std::memset(const_cast<char*>(skel->rodata->comm_filter), 0, sizeof(skel->rodata->comm_filter));
  std::memcpy(const_cast<char*>(skel->rodata->comm_filter), options.comm.data(),
              std::min(options.comm.size(), sizeof(skel->rodata->comm_filter) - 1));
  skel->rodata->include_idle = options.include_idle;
  skel->rodata->exclude_tgid = options.exclude_self ? static_cast<uint32_t>(::getpid()) : 0;
  skel->rodata->collect_kstack = options.kernel_stacks;
  skel->rodata->collect_ustack = options.user_stacks;
  bool dwarf = options.user_stacks && options.dwarf_unwind;
  skel->rodata->ustack_dwarf = dwarf;
  // Walk timing for bench/unwind_cost.sh (docs/unwinding.md): off unless asked.
  skel->rodata->kscope_unwind_timing = dwarf && std::getenv("KSCOPE_UNWIND_TIMING") != nullptr;
  // Without the native walk its maps shrink to one entry each.
  KSCOPE_ASSIGN_OR_RETURN(uint32_t unwind_rows, unwind_rows_capacity(options.unwind_rows));
  for (auto [map, size] :
       {std::pair{skel->maps.unwind_rows, dwarf ? unwind_rows : 1u},
        std::pair{skel->maps.unwind_files, dwarf ? options.unwind_files : 1u},
        std::pair{skel->maps.unwind_procs, dwarf ? options.unwind_processes : 1u},
        std::pair{skel->maps.ustacks, dwarf ? options.max_user_stacks : 1u}}) {
    if (int err = bpf_map__set_max_entries(map, size))
      return bpf::libbpf_error("sizing the unwinder's maps failed", err);
  }
  skel->rodata->kscope_unwind_early_on = dwarf;
  KSCOPE_TRY(
      configure_unwind_early(skel->obj, dwarf, options.unwind_files, options.unwind_processes));
  skel->rodata->record_slices = options.record_slices;
  skel->rodata->wakeup_bytes = std::max<uint64_t>(options.ringbuf_bytes / 8, 4096);
  if (int err = bpf_map__set_max_entries(skel->maps.accounts, options.max_accounts))
    return bpf::libbpf_error("sizing the accounts map failed", err);
  // The sampler: its samples map as large as the accounts map; without it, not loaded.
  if (int err = bpf_map__set_max_entries(skel->maps.oncpu_samples,
                                         options.sample_hz ? options.max_accounts : 1u))
    return bpf::libbpf_error("sizing the samples map failed", err);
  if (!options.sample_hz) bpf_program__set_autoload(skel->progs.top_sample, false);
  if (int err = bpf_map__set_max_entries(skel->maps.stacks, options.max_stacks))
    return bpf::libbpf_error("sizing the stack map failed", err);
  if (int err = bpf_map__set_max_entries(skel->maps.events, options.ringbuf_bytes))
    return bpf::libbpf_error("sizing the ring buffer failed", err);
  if (int err = top_bpf__load(skel)) return bpf::load_error("top", err);
  phase_done("BPF load and verification");

  if (dwarf) {
    impl->unwind_maps = std::make_unique<BpfUnwindMaps>(
        bpf_map__fd(skel->maps.unwind_rows), bpf_map__fd(skel->maps.unwind_files),
        bpf_map__fd(skel->maps.unwind_procs), bpf_map__fd(skel->maps.unwind_inodes));
    impl->tables = std::make_unique<unwind::TableLoader>(*impl->unwind_maps, unwind_rows,
                                                         options.unwind_files, options.open_files);
    if (!options.unwind_debug_dirs.empty()) impl->tables->set_debug_dirs(options.unwind_debug_dirs);
  }
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return bpf::libbpf_error("cannot count the possible CPUs", ncpus);
  impl->ncpus = ncpus;

  int filter_fd = bpf_map__fd(skel->maps.filter_tgids);
  for (pid_t pid : options.pids) {
    uint32_t key = static_cast<uint32_t>(pid);
    uint8_t value = 1;
    if (bpf_map_update_elem(filter_fd, &key, &value, BPF_ANY) != 0)
      return make_error("adding the process to the BPF filter failed", errno);
  }
  int tid_filter_fd = bpf_map__fd(skel->maps.filter_tid_set);
  for (const ThreadTarget& t : options.threads) {
    uint32_t key = static_cast<uint32_t>(t.tid);
    uint8_t value = 1;
    if (bpf_map_update_elem(tid_filter_fd, &key, &value, BPF_ANY) != 0)
      return make_error("adding the thread to the BPF filter failed", errno);
  }
  Impl* raw = impl.get();
  KSCOPE_ASSIGN_OR_RETURN(
      impl->rb, bpf::RingBuffer::open(bpf_map__fd(skel->maps.events),
                                      [raw](const void* d, size_t n) { raw->handle(d, n); }));
  phase_done("maps and ring buffer");
  // Measuring starts when the switch program is live: a context switch between the start time
  // and its attachment would be unseen, and a task running since then would be charged from the
  // start time for a slice that began later (under load the attachments take 50-350 ms). The
  // program ignores every switch until start_ns is set, right after it is attached.
  skel->bss->start_ns = 0;
  bpf_program__set_autoattach(skel->progs.top_sched_switch, false);
  skel->links.top_sched_switch = bpf_program__attach(skel->progs.top_sched_switch);
  if (!skel->links.top_sched_switch)
    return make_error("attaching the scheduler tracepoints failed", errno,
                      "run 'kscope doctor' to check tp_btf/sched_switch and sched_wakeup");
  impl->start_ns = monotonic_ns();
  if (options.exclude_self) impl->self_cpu_at_start = process_cpu_ns();
  skel->bss->start_ns = impl->start_ns;
  if (int err = top_bpf__attach(skel)) {
    return make_error("attaching the scheduler tracepoints failed", -err,
                      "run 'kscope doctor' to check tp_btf/sched_switch and sched_wakeup");
  }
  if (dwarf) {
    // Without it a library mapped after execve is found once its mmap record is read.
    if (auto links = attach_unwind_early(skel->obj)) {
      impl->early = std::move(*links);
      report_tracefs_mount("kscope top");
    } else if (options.verbosity > 0)
      std::fprintf(stderr, "kscope top: %s\n", links.error().describe().c_str());
  }
  // After the switch program, so a CPU without a switch since is one whose task ran before.
  // Before the sampler, so it is not attached on CPUs a too-fast sampler saturates.
  KSCOPE_ASSIGN_OR_RETURN(
      impl->adopter, bpf::attach_sw_event_all_cpus(skel->progs.top_adopt, PERF_COUNT_SW_CPU_CLOCK,
                                                   "cpu-clock", Impl::kAdoptHz));
  impl->adopting = true;
  if (options.sample_hz) {
    // By period (the kernel turns a cpu-clock frequency into this same fixed period), so the
    // governor's PERF_EVENT_IOC_PERIOD means nanoseconds whatever the kernel version.
    impl->requested_hz = options.sample_hz;
    impl->base_period_ns = 1'000'000'000ull / options.sample_hz;
    impl->sampler_limit = options.sampler_max_percent > 0 && options.sampler_max_percent < 100
                              ? options.sampler_max_percent / 100.0
                              : 0;
    impl->start_governor();
    KSCOPE_ASSIGN_OR_RETURN(impl->sampler, bpf::attach_sw_event_all_cpus(
                                               skel->progs.top_sample, PERF_COUNT_SW_CPU_CLOCK,
                                               "cpu-clock", 0, impl->base_period_ns));
    impl->start_governing();
  }
  phase_done("attach");
  // Exited between the check of the targets and now: there is nothing to measure. The same
  // words as kscope faults in the same situation (and as the check itself for a zombie).
  for (pid_t pid : options.pids)
    if (process_has_exited(pid)) return make_error(fmt::format("process {} has exited", pid));
  return std::unique_ptr<TopTracer>(new TopTracer(std::move(impl)));
}

Result<TopSample> TopTracer::sample() {
  Impl& s = *impl_;
  TopSample out;
  s.stop_adopting_when_done();
  KSCOPE_TRY(s.read_counters(out.counters));
  KSCOPE_TRY(s.read_samples(out));
  // Accounts before the running slices, so a slice that ends in between is never counted twice.
  // But such a slice would be in neither (its account read before it ended, its CPU read after):
  // this table would lack its time so far and the next have it. The CPUs are read before the
  // accounts too; when a tracked slice began or ended on any of them meanwhile, the reading is
  // repeated (a switch-out adds to the account before it changes the CPU's state). A spinner
  // preempted every few ms made a 250 ms table 16 ms short and the next 16 ms long.
  // A repeat starts from the last reading of the CPUs: what changed before it does not matter,
  // the accounts are read again after it.
  Impl::AccountEntries accounts;
  KSCOPE_ASSIGN_OR_RETURN(auto cpus, s.read_cpu_state());
  for (uint32_t attempt = 1;; ++attempt) {
    std::vector<kscope_top_cpu> before = std::move(cpus);
    KSCOPE_ASSIGN_OR_RETURN(accounts, s.read_account_entries());
    out.time_ns = monotonic_ns();
    KSCOPE_ASSIGN_OR_RETURN(cpus, s.read_cpu_state());
    bool settled = Impl::same_slices(before, cpus);
    if (settled || attempt == Impl::kSampleReads) {
      out.unsettled = !settled;
      break;
    }
    ++out.rereads;
  }
  s.add_accounts(out, accounts);
  Impl::add_running(out, cpus, out.time_ns);
  // kscope itself, not traced: its exact CPU time since tracing started, from its own clock.
  if (s.options.exclude_self) {
    uint64_t now = process_cpu_ns();
    out.self_cpu_ns = now > s.self_cpu_at_start ? now - s.self_cpu_at_start : 0;
  }
  return out;
}

std::vector<uint64_t> TopTracer::stack(int32_t id) {
  if (id < 0) return {};
  uint32_t key = static_cast<uint32_t>(id);
  if (auto ips = impl_->stack_entry(key)) return std::move(*ips);
  // Reclaimed (reclaim_stacks) while an account came to refer to it: the frames kept.
  if (auto it = impl_->stacks_deleted.find(key); it != impl_->stacks_deleted.end())
    return it->second;
  if (auto it = impl_->stacks_kept.find(key); it != impl_->stacks_kept.end()) return it->second;
  return {};
}

const char* unwind_reason_name(uint8_t reason) { return unwind_reason_text(reason); }

bool TopTracer::native_unwind() const { return impl_->tables != nullptr; }

UserStack TopTracer::user_stack(int32_t id) {
  UserStack out;
  if (!impl_->tables) {
    out.ips = stack(id);
    return out;
  }
  out.native = true;
  if (id < 0) return out;
  auto value = std::make_unique<kscope_unwind_stack>();
  uint32_t key = static_cast<uint32_t>(id);
  if (bpf_map_lookup_elem(bpf_map__fd(impl_->skel->maps.ustacks), &key, value.get()) != 0) {
    // Reclaimed at the last reclaim_user_stacks() while an account came to refer to it: the
    // frames kept until the entry is put back.
    auto kept = impl_->ustacks_deleted.find(key);
    if (kept != impl_->ustacks_deleted.end()) {
      out.ips = kept->second.ips;
      out.reason = kept->second.reason;
    }
    return out;
  }
  uint32_t len = std::min<uint32_t>(value->len, KSCOPE_UNWIND_MAX_FRAMES);
  out.ips.assign(value->ips, value->ips + len);
  out.reason = value->reason < KSCOPE_UNWIND_REASON_MAX
                   ? value->reason
                   : static_cast<uint8_t>(KSCOPE_UNWIND_BUDGET);
  return out;
}

Status TopTracer::load_unwind_tables(uint32_t pid, const std::vector<Mapping>& mappings) {
  if (!impl_->tables) return {};
  std::vector<unwind::ExecMapping> exec;
  for (const Mapping& m : mappings) {
    if (!m.executable()) continue;
    exec.push_back({m.start, m.end, m.offset, m.inode, m.dev_major, m.dev_minor, m.path});
  }
  return impl_->tables->load_process(pid, exec);
}

void TopTracer::forget_unwind_process(uint32_t pid) {
  if (impl_->tables) impl_->tables->forget_process(pid);
}

UnwindSummary TopTracer::unwind_report() {
  UnwindSummary r;
  if (!impl_->tables) return r;
  int fd = bpf_map__fd(impl_->skel->maps.unwind_counters);
  auto sum = [&](uint32_t idx) -> uint64_t {
    auto v = bpf::read_percpu_u64(fd, idx);
    uint64_t s = 0;
    if (v)
      for (uint64_t x : *v) s += x;
    return s;
  };
  r.walks = sum(KSCOPE_UNWIND_WALKS);
  for (uint32_t i = 0; i < KSCOPE_UNWIND_REASON_MAX; ++i)
    if (uint64_t n = sum(KSCOPE_UNWIND_ENDED + i))
      r.ended.emplace_back(unwind_reason_name(static_cast<uint8_t>(i)), n);
  r.fp_frames = sum(KSCOPE_UNWIND_FP_FRAMES);
  r.early = read_unwind_early_counts(fd);
  const auto& st = impl_->tables->stats();
  r.files = st.files;
  r.rows = st.rows;
  r.rows_capacity = st.rows_capacity;
  r.files_no_table = st.files_no_table;
  r.files_no_room = st.files_no_room;
  r.mappings_dropped = st.mappings_dropped;
  r.table_bytes = st.table_bytes();
  r.files_debug_frame = st.files_debug_frame;
  r.debug_files = st.debug_files;
  r.files_freed = st.files_freed;
  r.rows_freed = st.rows_freed;
  if (impl_->skel->rodata->kscope_unwind_timing) {
    int tfd = bpf_map__fd(impl_->skel->maps.unwind_walk_ns);
    r.walk_ns_bucket = KSCOPE_UNWIND_TIMING_NS;
    for (uint32_t b = 0; b < KSCOPE_UNWIND_TIMING_BUCKETS; ++b) {
      auto v = bpf::read_percpu_u64(tfd, b);
      uint64_t n = 0;
      if (v)
        for (uint64_t x : *v) n += x;
      r.walk_ns_histogram.push_back(n);
    }
  }
  return r;
}

Status TopTracer::poll(int timeout_ms, uint64_t budget_ns) {
  KSCOPE_TRY(impl_->rb->poll(timeout_ms, budget_ns));
  return {};
}

void TopTracer::on_process(std::function<void(const TopProcessEvent&)> handler) {
  impl_->process_handler = std::move(handler);
}
void TopTracer::on_slice(std::function<void(const TopSliceEvent&)> handler) {
  impl_->slice_handler = std::move(handler);
}

void TopTracer::forget_threads(const std::vector<uint32_t>& tids) {
  if (tids.empty()) return;
  Impl& s = *impl_;
  std::unordered_set<uint32_t> dead(tids.begin(), tids.end());
  // Their carried values were in the sample the caller retired them from.
  std::erase_if(s.carried, [&](const auto& kv) { return dead.count(kv.first.tid) != 0; });
  // Both maps keyed by account: the switch accounts and the sampler's counts. A dead thread's
  // sample counts left behind would be read again at every refresh (and retired again). The
  // keys are those the last sample() read, deleted in batches; an entry made after that read
  // (a thread's last switch-out racing its exit) is read by the next sample and retired then.
  for (auto [map, keys, support] :
       {std::tuple{s.skel->maps.accounts, &s.account_keys, &s.accounts_batch},
        std::tuple{s.skel->maps.oncpu_samples, &s.sample_keys, &s.samples_batch}}) {
    std::vector<kscope_top_key> doomed;
    for (const auto& k : *keys)
      if (dead.count(k.tid)) doomed.push_back(k);
    if (doomed.empty()) continue;
    std::erase_if(*keys, [&](const kscope_top_key& k) { return dead.count(k.tid) != 0; });
    if (auto n = bpf::delete_keys(bpf_map__fd(map), doomed, *support); !n && s.options.verbosity)
      std::fprintf(stderr, "kscope top: %s\n", n.error().describe().c_str());
  }
}

TopTracer::FoldResult TopTracer::fold_accounts(
    const std::vector<std::pair<TopAccountKey, TopValues>>& idle) {
  Impl& s = *impl_;
  FoldResult r;
  int accounts_fd = bpf_map__fd(s.skel->maps.accounts);
  int samples_fd = bpf_map__fd(s.skel->maps.oncpu_samples);
  std::unordered_set<TopAccountKey, TopAccountKeyHash> deleted;
  for (const auto& [key, seen] : idle) {
    if (key.tid == 0) continue;  // the idle tasks: one account per stack, never gone
    kscope_top_key k{key.pid, key.tid, key.kstack, key.ustack};
    if (auto it = s.newest.find(key.tid);
        it != s.newest.end() && std::memcmp(&it->second.second, &k, sizeof(k)) == 0) {
      ++s.fold_newest_kept;
      continue;
    }
    // Read and deleted in one step: what a switch-out or a sample added since `seen` was read
    // is in the value returned. (An add by a program that found the entry just before the
    // delete and writes after it is lost: the window is a few instructions, against an account
    // idle for the whole fold period.)
    kscope_top_value value{};
    uint64_t samples = 0;
    bool in_accounts = bpf_map_lookup_and_delete_elem(accounts_fd, &k, &value) == 0;
    bool in_samples =
        s.options.sample_hz && bpf_map_lookup_and_delete_elem(samples_fd, &k, &samples) == 0;
    auto c = s.carried.find(key);
    // Nothing in the kernel's maps and nothing carried: nothing to fold. A carried account the
    // thread has not used again since (its kernel entry is gone) is folded like the others:
    // otherwise it would stay in every sample until the thread exits.
    if (!in_accounts && !in_samples && c == s.carried.end()) continue;
    deleted.insert(key);
    TopSample one;
    if (in_accounts) Impl::add(one, k, value);
    TopValues total = one.accounts[key];
    total.oncpu_samples += samples;
    if (c != s.carried.end()) {
      total += c->second;
      s.carried.erase(c);
    }
    ++s.folds;
    if (total == seen) {
      r.folded.emplace_back(key, total);
    } else {
      s.carried[key] = total;
      ++s.fold_carries;
    }
  }
  if (!deleted.empty()) {
    auto gone = [&](const kscope_top_key& k) {
      return deleted.count(TopAccountKey{k.pid, k.tid, k.kstack, k.ustack}) != 0;
    };
    std::erase_if(s.account_keys, gone);
    std::erase_if(s.sample_keys, gone);
  }
  r.folds = s.folds;
  r.carried_now = s.carried.size();
  r.carries = s.fold_carries;
  r.newest_kept = s.fold_newest_kept;
  return r;
}

void TopTracer::forget_user_stacks(const std::vector<int32_t>& ids) {
  // Native walks are in ustacks; frame-pointer user stacks share the stack map with the kernel's.
  int fd = impl_->tables ? bpf_map__fd(impl_->skel->maps.ustacks)
                         : bpf_map__fd(impl_->skel->maps.stacks);
  for (int32_t id : ids) {
    if (id < 0) continue;
    uint32_t key = static_cast<uint32_t>(id);
    bpf_map_delete_elem(fd, &key);
  }
}

TopTracer::UserStackReclaim TopTracer::reclaim_user_stacks(
    const std::unordered_set<int32_t>& in_use) {
  UserStackReclaim r;
  Impl& s = *impl_;
  if (!s.tables) return r;
  int fd = bpf_map__fd(s.skel->maps.ustacks);
  auto value = std::make_unique<kscope_unwind_stack>();
  // Put back what the previous call deleted and an account refers to now (the walk that made
  // that account found the entry just before it was deleted). A walk of the same stack since
  // then stored it again under the same id (EEXIST); another stack under the same id (a 31-bit
  // hash collision in that window) keeps it, and the account shows that stack's frames.
  for (auto& [id, kept] : s.ustacks_deleted) {
    if (!in_use.count(static_cast<int32_t>(id))) continue;
    std::memset(value.get(), 0, sizeof(*value));
    value->hash = kept.hash;
    value->len = static_cast<uint32_t>(kept.ips.size());
    value->reason = kept.reason;
    std::copy(kept.ips.begin(), kept.ips.end(), value->ips);
    if (bpf_map_update_elem(fd, &id, value.get(), BPF_NOEXIST) == 0) ++r.restored;
  }
  s.ustacks_deleted.clear();
  std::vector<uint32_t> ids = bpf::map_keys<uint32_t>(fd);
  r.stored = ids.size();
  std::unordered_set<uint32_t> unreferenced;
  for (uint32_t id : ids) {
    if (in_use.count(static_cast<int32_t>(id))) continue;
    if (!s.ustacks_unreferenced.count(id)) {
      unreferenced.insert(id);  // deleted at the next call if still unreferenced then
      continue;
    }
    if (bpf_map_lookup_elem(fd, &id, value.get()) != 0) continue;
    if (bpf_map_delete_elem(fd, &id) != 0) continue;
    uint32_t len = std::min<uint32_t>(value->len, KSCOPE_UNWIND_MAX_FRAMES);
    s.ustacks_deleted[id] = Impl::DeletedStack{value->hash, value->reason,
                                               std::vector<uint64_t>(value->ips, value->ips + len)};
    r.deleted_ids.push_back(static_cast<int32_t>(id));
  }
  r.deleted = r.deleted_ids.size();
  s.ustacks_unreferenced = std::move(unreferenced);
  return r;
}

TopTracer::StackReclaim TopTracer::reclaim_stacks(const std::unordered_set<int32_t>& in_use,
                                                  const std::unordered_set<int32_t>& keep) {
  StackReclaim r;
  Impl& s = *impl_;
  auto used = [&](uint32_t id) { return in_use.count(static_cast<int32_t>(id)) != 0; };
  // Deleted at the last call and referenced now. With the bucket still empty, no walk has
  // stored anything under the id since the delete: the account was made by a walk that found
  // the entry just before it, and the frames stay kept while referenced. With the same stack
  // in the bucket, a walk stored it again: nothing to do. With another stack there, either
  // that stack took the freed bucket and the accounts are its own (the usual case), or a walk
  // also raced the delete and its account now shows that stack: the two cannot be told apart,
  // so `reused` counts both, an upper bound of the second.
  for (auto& [id, ips] : s.stacks_deleted) {
    if (!used(id)) continue;
    auto now = s.stack_entry(id);
    if (!now) {
      s.stacks_kept[id] = std::move(ips);
      ++r.kept;
    } else if (*now != ips) {
      ++r.reused;
      r.dropped_ids.push_back(static_cast<int32_t>(id));
    }
  }
  s.stacks_deleted.clear();
  for (auto it = s.stacks_kept.begin(); it != s.stacks_kept.end();) {
    if (!used(it->first)) {
      it = s.stacks_kept.erase(it);  // no account refers to it any more
      continue;
    }
    auto now = s.stack_entry(it->first);
    if (!now) {
      ++it;
      continue;
    }
    if (*now != it->second) {
      ++r.reused;  // kept for a racing account, then taken by another stack
      r.dropped_ids.push_back(static_cast<int32_t>(it->first));
    }
    it = s.stacks_kept.erase(it);  // the bucket is taken again: the map is the truth
  }
  int fd = bpf_map__fd(s.skel->maps.stacks);
  std::vector<uint32_t> ids = bpf::map_keys<uint32_t>(fd);
  r.stored = ids.size();
  std::unordered_set<uint32_t> unreferenced;
  for (uint32_t id : ids) {
    if (used(id) || keep.count(static_cast<int32_t>(id))) continue;
    if (!s.stacks_unreferenced.count(id)) {
      unreferenced.insert(id);  // deleted at the next call if still unreferenced then
      continue;
    }
    auto ips = s.stack_entry(id);
    if (!ips || bpf_map_delete_elem(fd, &id) != 0) continue;
    s.stacks_deleted[id] = std::move(*ips);
    r.dropped_ids.push_back(static_cast<int32_t>(id));
    ++r.deleted;
  }
  s.stacks_unreferenced = std::move(unreferenced);
  return r;
}

std::pair<size_t, size_t> TopTracer::stack_entries() {
  int fd = bpf_map__fd(impl_->skel->maps.stacks);
  return {bpf::map_keys<uint32_t>(fd).size(), impl_->options.max_stacks};
}

std::pair<size_t, size_t> TopTracer::user_stack_entries() {
  if (!impl_->tables) return {0, 0};
  int fd = bpf_map__fd(impl_->skel->maps.ustacks);
  return {bpf::map_keys<uint32_t>(fd).size(), impl_->options.max_user_stacks};
}

TopTracer::Diagnostics TopTracer::diagnostics() {
  auto sum = [&](uint32_t idx) -> uint64_t {
    auto v = bpf::read_percpu_u64(bpf_map__fd(impl_->skel->maps.counters), idx);
    uint64_t s = 0;
    if (v)
      for (uint64_t x : *v) s += x;
    return s;
  };
  return {sum(KSCOPE_TOP_DIAG_NO_SWITCHIN), sum(KSCOPE_TOP_DIAG_DOUBLE_SWITCHIN),
          sum(KSCOPE_TOP_DIAG_OFFCPU_DATED), sum(KSCOPE_TOP_DIAG_WOKEN_RUNNING)};
}

uint64_t TopTracer::start_ns() const { return impl_->start_ns; }
const std::vector<std::pair<std::string, uint64_t>>& TopTracer::startup_phases() const {
  return impl_->phases;
}
uint32_t TopTracer::sample_hz() const { return impl_->options.sample_hz; }
std::vector<SamplerLowering> TopTracer::sampler_lowered() const {
  std::lock_guard<std::mutex> lock(impl_->lowered_mutex);
  return impl_->lowered;
}

Result<uint32_t> perf_cpu_time_max_percent() {
  auto text = read_file("/proc/sys/kernel/perf_cpu_time_max_percent", 64);
  if (!text) return make_error("cannot read /proc/sys/kernel/perf_cpu_time_max_percent");
  char* end = nullptr;
  unsigned long v = std::strtoul(text->c_str(), &end, 10);
  if (end == text->c_str() || v > 100)
    return make_error("malformed /proc/sys/kernel/perf_cpu_time_max_percent");
  return static_cast<uint32_t>(v);
}

Result<uint32_t> perf_max_sample_rate() {
  auto text = read_file("/proc/sys/kernel/perf_event_max_sample_rate", 64);
  if (!text) return make_error("cannot read /proc/sys/kernel/perf_event_max_sample_rate");
  char* end = nullptr;
  unsigned long v = std::strtoul(text->c_str(), &end, 10);
  if (end == text->c_str() || v == 0 || v > 10'000'000)
    return make_error("malformed /proc/sys/kernel/perf_event_max_sample_rate");
  return static_cast<uint32_t>(v);
}

Result<uint32_t> parse_sample_rate(const std::string& text) {
  KSCOPE_ASSIGN_OR_RETURN(uint32_t max, perf_max_sample_rate());
  if (text == "max") return max;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = text.empty() ? 0 : std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text[0] == '-' || *end != 0 || errno == ERANGE || v == 0)
    return usage_error(
        fmt::format("-F '{}': expected a sampling rate in Hz (1 to {}) or 'max'", text, max));
  if (v > max)
    return usage_error(fmt::format(
        "-F {}: above the kernel's limit of {} Hz (/proc/sys/kernel/perf_event_max_sample_rate); "
        "use -F max",
        v, max));
  return static_cast<uint32_t>(v);
}
int TopTracer::ncpus() const { return impl_->ncpus; }

}  // namespace kscope
