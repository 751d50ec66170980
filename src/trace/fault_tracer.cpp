#include "trace/fault_tracer.h"

#include <bpf/bpf.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <tuple>
#include <variant>

#include "bpf/libbpf_util.h"
#include "faults.skel.h"
#include "kscope/abi/faults.h"
#include "kscope/abi/unwind.h"
#include "model/process_info.h"
#include "symbols/proc_maps.h"
#include "trace/bpf_unwind_maps.h"
#include "trace/command_launcher.h"
#include "trace/mmap_watch.h"
#include "trace/privileges.h"
#include "trace/proc.h"
#include "trace/targets.h"
#include "unwind/needed_libs.h"
#include "unwind/table_loader.h"
#include "util/clock.h"
#include "util/fd.h"

namespace kscope {

static_assert(sizeof(kscope_fault_event) == 56, "kscope_fault_event layout changed");
static_assert(KSCOPE_UNWIND_REASON_MAX == kStackStatusUnwindReasonMax, "unwind reasons changed");
static_assert(sizeof(kscope_task_event) == 40, "kscope_task_event layout changed");
static_assert(sizeof(kscope_fork_event) == 24, "kscope_fork_event layout changed");
static_assert(sizeof(kscope_exit_event) == 40, "kscope_exit_event layout changed");
static_assert(sizeof(kscope_exec_event) == 320, "kscope_exec_event layout changed");

namespace {

struct SkeletonDeleter {
  void operator()(faults_bpf* s) const { faults_bpf__destroy(s); }
};

std::string bounded_string(const char* s, size_t max) { return std::string(s, strnlen(s, max)); }

struct Counts {
  uint64_t minflt = 0;
  uint64_t majflt = 0;
};

struct ProcessState {
  Fd pidfd;
  bool exited = false;
  bool baseline_known = true;    // false for an armed command until its exec record arrives
  bool exec_baseline = false;    // `baseline` is the exec record's (kscope faults -- COMMAND)
  std::set<uint32_t> only_tids;  // -t: the traced threads (empty: all of them)
  // Per thread: /proc read just before tracing was armed (threads that existed then) ...
  std::map<uint32_t, Counts> pre_arm;
  // ... and just after it, or the exec record of an armed command. See reconcile().
  std::map<uint32_t, Counts> baseline;
  std::map<uint32_t, Counts> final;  // per thread, at exit or at the end of tracing
  std::set<uint32_t> exit_seen;      // threads whose final counts came from their exit record
  // Threads born while traced that exited before stopping began: their whole counters (base
  // zero, no end bound possible) summed, so nothing is kept per exited thread (see
  // Impl::fold_exit()).
  Counts exited_born;
  size_t exited_born_threads = 0;
  ExecRanges exec_ranges;  // of the current mappings: the frame-pointer cut
  bool maps_dirty = false;
  uint64_t last_maps_read_ns = 0;
  ProcessMappings mappings;  // /proc reads and the kernel's mmap records
};

// Mapping records kept after a process's last /proc/PID/maps read before it is read again.
constexpr size_t kMapRecordsReread = 256;

Fd open_pidfd(pid_t pid) { return Fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0))); }

}  // namespace

struct FaultTracer::Impl {
  FaultTraceOptions options;
  std::unique_ptr<faults_bpf, SkeletonDeleter> skel;
  bpf::PerfEventLinks minor_links;
  bpf::PerfEventLinks major_links;
  std::optional<LaunchedCommand> command;
  std::map<pid_t, ProcessState> processes;
  std::unique_ptr<bpf::RingBuffer> rb;
  std::unique_ptr<MmapWatcher> mmaps;
  uint64_t start_ns = 0;
  bool stopping = false;  // begin_stopping() was called
  FaultSink* sink = nullptr;
  FaultRunTotals totals;
  uint64_t lost_control_seen = 0;
  int ncpus = 0;                         // possible CPUs (per-CPU map layout)
  std::vector<unsigned char> batch_buf;  // the per-CPU batches map, read by flush_batches()
  // Fault records wait here until no earlier record of the same thread can still arrive: a
  // thread's records sit in the batch of the CPU it faulted on, so after a migration its later
  // records can reach the ring buffer before its earlier ones. Names, forks and exits wait with
  // them, so the sink sees everything in time order: each fault under the name its thread had
  // then, a thread's exit after its last fault. See release_faults().
  struct Held {
    uint64_t time_ns;  // since tracing started
    std::variant<FaultRecord, ThreadInfo, ForkEvent, ExitEvent> item;
  };
  std::vector<Held> held;
  // --stacks: the native walker's tables, and each distinct (process, user stack, kernel stack)
  // of the run with the id the sink knows it by.
  std::unique_ptr<BpfUnwindMaps> unwind_maps;
  std::unique_ptr<unwind::TableLoader> tables;
  bool unwind_load_warned = false;
  std::vector<bpf::Link> early;  // bpf/unwind.bpf.h's mmap/munmap/exit programs (--stacks=dwarf)

  void preload_command_tables() {
    auto program = find_executable(options.command[0]);
    if (!program) return;
    const char* env = std::getenv("LD_LIBRARY_PATH");
    auto t0 = std::chrono::steady_clock::now();
    unwind::NeededFiles needed = unwind::needed_files(*program, env ? env : "");
    size_t loaded = 0;
    for (const std::string& f : needed.files) loaded += tables->preload(f) ? 1 : 0;
    if (options.verbosity > 0) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
      std::fprintf(stderr,
                   "kscope faults: unwind tables of the command loaded before it ran: %zu of %zu "
                   "files (%lld ms)%s%s\n",
                   loaded, needed.files.size(), static_cast<long long>(ms),
                   needed.capped ? "; stopped at the cap (64 files, 2 s)" : "",
                   needed.missing.empty() ? "" : "; libraries not found (loaded when mapped):");
      for (const std::string& m : needed.missing) std::fprintf(stderr, "  %s\n", m.c_str());
    }
  }
  std::map<std::tuple<uint32_t, int32_t, int32_t>, std::pair<uint32_t, FaultStack*>> stack_ids;
  std::vector<std::unique_ptr<FaultStack>> stacks;

  // The frames of a stack_trace map entry (leaf first), empty when it is gone.
  std::vector<uint64_t> trace_frames(int32_t id) {
    std::vector<uint64_t> ips(127, 0);
    uint32_t key = static_cast<uint32_t>(id);
    if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.fault_stacks), &key, ips.data()) != 0) return {};
    ips.erase(std::find(ips.begin(), ips.end(), 0ull), ips.end());
    return ips;
  }

  static uint8_t lost_status(int32_t id) {
    if (id == KSCOPE_FAULT_STACK_COLLISION) return kStackStatusLostCollision;
    if (id == KSCOPE_FAULT_STACK_NONE) return kStackStatusNone;
    return kStackStatusLostError;
  }

  // The run's id of a fault's stacks (0 without --stacks); a new stack is read from the maps
  // (they are written at fault entry, before the record) and handed to the sink once.
  uint32_t stack_of(uint32_t pid, int32_t ustack, int32_t kstack, bool kernel_mode) {
    if (options.stacks == FaultStackMode::kOff) return 0;
    auto [it, inserted] = stack_ids.try_emplace({pid, ustack, kstack});
    FaultStack* st;
    if (inserted) {
      auto s = std::make_unique<FaultStack>();
      s->id = static_cast<uint32_t>(stacks.size() + 1);
      s->pid = pid;
      if (ustack < 0) {
        s->user_status = lost_status(ustack);
      } else if (options.stacks == FaultStackMode::kFramePointers) {
        s->user = trace_frames(ustack);
        s->user_status = s->user.empty() ? kStackStatusLostError : kStackStatusFramePointers;
        // The kernel's frame-pointer walk reads whatever the saved-rbp chain points at: in code
        // built without frame pointers the "return addresses" are data (0x1e8480, string bytes).
        // Never shown as frames: the stack ends at the first one outside every executable
        // mapping of the process, marked as incomplete for that reason.
        auto ps = processes.find(static_cast<pid_t>(pid));
        size_t keep =
            ps == processes.end() ? s->user.size() : ps->second.exec_ranges.frames_to_keep(s->user);
        if (keep < s->user.size()) {
          s->user.resize(keep);
          s->user_status = KSCOPE_UNWIND_NO_MAPPING;
        }
      } else {
        auto v = std::make_unique<kscope_unwind_stack>();
        uint32_t key = static_cast<uint32_t>(ustack);
        if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.ustacks), &key, v.get()) == 0) {
          uint32_t len = std::min<uint32_t>(v->len, KSCOPE_UNWIND_MAX_FRAMES);
          s->user.assign(v->ips, v->ips + len);
          s->user_status = v->reason < KSCOPE_UNWIND_REASON_MAX
                               ? v->reason
                               : static_cast<uint8_t>(KSCOPE_UNWIND_BUDGET);
        } else {
          s->user_status = kStackStatusLostError;
        }
      }
      if (!kernel_mode) {
        s->kernel_status = kStackStatusNone;
      } else if (kstack < 0) {
        s->kernel_status =
            kstack == KSCOPE_FAULT_STACK_NONE ? kStackStatusLostError : lost_status(kstack);
      } else {
        s->kernel = trace_frames(kstack);
        s->kernel_status = s->kernel.empty() ? kStackStatusLostError : kStackStatusPresent;
      }
      st = s.get();
      it->second = {s->id, st};
      stacks.push_back(std::move(s));
      sink->on_stack(*st);
    } else {
      st = it->second.second;
    }
    totals.user_stack_status[st->user_status]++;
    if (kernel_mode) totals.kernel_stack_status[st->kernel_status]++;
    return st->id;
  }

  void load_tables(pid_t pid, const std::vector<Mapping>& mappings) {
    if (!tables) return;
    std::vector<unwind::ExecMapping> exec;
    for (const Mapping& m : mappings) {
      if (!m.executable()) continue;
      exec.push_back({m.start, m.end, m.offset, m.inode, m.dev_major, m.dev_minor, m.path});
    }
    Status st = tables->load_process(static_cast<uint32_t>(pid), exec);
    if (!st && !unwind_load_warned) {
      unwind_load_warned = true;
      std::fprintf(stderr, "kscope faults: unwind tables of process %d not loaded: %s\n", pid,
                   st.error().message.c_str());
    }
  }

  uint64_t rel(uint64_t ts) const { return ts > start_ns ? ts - start_ns : 0; }

  void snapshot_maps(pid_t pid, ProcessState& ps) {
    uint64_t now = monotonic_ns();
    ps.last_maps_read_ns = now;
    ps.maps_dirty = false;
    auto maps = read_proc_maps(pid);
    // An exited process (a zombie until reaped) reads as no mappings at all: that is not a
    // snapshot. Gone, what the mmap records say stands (a command can exit before any read).
    bool read = maps && !maps->empty();
    if (read) ps.mappings.set_snapshot(std::move(*maps), now);
    if (read || ps.mappings.known()) publish_maps(pid, ps, now);
  }

  void publish_maps(pid_t pid, ProcessState& ps, uint64_t now) {
    std::vector<Mapping> current = ps.mappings.current();
    ps.exec_ranges = ExecRanges(current);
    // The walker's tables follow the same mappings (a dlopen arrives as an mmap record).
    load_tables(pid, current);
    sink->on_mappings(MappingSnapshot{static_cast<uint32_t>(pid), rel(now), std::move(current)});
  }

  // Executable mappings the kernel reported (perf mmap records) for the traced processes: a
  // library the loader maps after execve is known even if the process is gone before its
  // /proc/PID/maps could be read. One snapshot per process per call.
  void drain_mmaps() {
    if (!mmaps) return;
    std::set<pid_t> changed;
    mmaps->drain([&](const MmapEvent& e) {
      auto it = processes.find(static_cast<pid_t>(e.pid));
      if (it == processes.end()) return;
      it->second.mappings.add(e);
      // A process that maps and unmaps all the time (dlopen/dlclose) piles up records, which
      // never say what was unmapped: a fresh /proc read replaces them (the main loop's, at most
      // every 100 ms), so at most about kMapRecordsReread are kept, not ProcessMappings' cap.
      if (it->second.mappings.records() >= kMapRecordsReread) it->second.maps_dirty = true;
      changed.insert(it->first);
    });
    uint64_t now = monotonic_ns();
    for (pid_t pid : changed) publish_maps(pid, processes[pid], now);
  }

  // A thread born while traced that exits before stopping began: reconcile() would take its
  // exit record's counters whole (base zero: copy_process() zeroes them; no end bound, which
  // only a fault entry after stopping began sets, and this thread has none: its exit came
  // first). Summed now, so a process that starts and ends threads all the time costs nothing
  // per thread. A later thread reusing the tid is a thread of its own, counted the same way.
  // Threads known when tracing was armed keep their per-thread bounds.
  bool fold_exit(ProcessState& ps, uint32_t tid, Counts c) {
    if (stopping || !thread_wanted(ps, tid) || ps.pre_arm.count(tid) || ps.baseline.count(tid))
      return false;
    ps.exited_born.minflt += c.minflt;
    ps.exited_born.majflt += c.majflt;
    ps.exited_born_threads++;
    return true;
  }

  ProcessState& add_process(pid_t pid) {
    auto [it, inserted] = processes.try_emplace(pid);
    if (inserted) {
      it->second.pidfd = open_pidfd(pid);
      if (!it->second.pidfd) it->second.exited = true;  // already gone (ESRCH)
    }
    return it->second;
  }

  void handle(const void* data, size_t size) {
    if (size < sizeof(uint16_t)) return;
    uint16_t type;
    std::memcpy(&type, data, sizeof(type));
    switch (type) {
      case KSCOPE_REC_FAULT_BATCH: {
        kscope_fault_batch_header h;
        if (size < sizeof(h)) return;
        std::memcpy(&h, data, sizeof(h));
        size_t n = std::min<size_t>(h.count, (size - sizeof(h)) / sizeof(kscope_fault_event));
        const auto* records = static_cast<const unsigned char*>(data) + sizeof(h);
        for (size_t i = 0; i < n; i++)
          handle(records + i * sizeof(kscope_fault_event), sizeof(kscope_fault_event));
        break;
      }
      case KSCOPE_REC_FAULT: {
        if (size < sizeof(kscope_fault_event)) return;
        kscope_fault_event e;
        std::memcpy(&e, data, sizeof(e));
        FaultRecord r;
        r.time_ns = rel(e.ts_ns);
        r.pid = e.pid;
        r.tid = e.tid;
        r.addr = e.addr;
        r.ip = e.ip;
        unsigned access = e.flags & KSCOPE_FAULT_ACCESS_MASK;
        r.access = access == 2 ? Access::kExec : access == 1 ? Access::kWrite : Access::kRead;
        r.mode = (e.flags & KSCOPE_FAULT_KERNEL_MODE) ? FaultMode::kKernel : FaultMode::kUser;
        r.kind = (e.flags & KSCOPE_FAULT_MAJOR) ? FaultKind::kMajor : FaultKind::kMinor;
        unsigned seg = (e.flags & KSCOPE_FAULT_SEGMENT_MASK) >> KSCOPE_FAULT_SEGMENT_SHIFT;
        r.segment = seg < kSegmentCount ? static_cast<Segment>(seg) : Segment::kOther;
        r.latency_ns = e.latency_ns;
        r.cpu = e.cpu;
        r.stack = stack_of(e.pid, e.ustack, e.kstack, r.mode == FaultMode::kKernel);
        totals.seen_by_pid[r.pid]++;
        if (r.mode == FaultMode::kUser) {
          auto it = processes.find(static_cast<pid_t>(r.pid));
          if (it != processes.end() && !it->second.exec_ranges.contains(r.ip))
            it->second.maps_dirty = true;
        }
        held.push_back(Held{r.time_ns, r});
        break;
      }
      case KSCOPE_REC_TASK: {
        if (size < sizeof(kscope_task_event)) return;
        kscope_task_event e;
        std::memcpy(&e, data, sizeof(e));
        std::string comm = bounded_string(e.comm, sizeof(e.comm));
        if (e.pid == e.tid) totals.process_names[e.pid] = comm;
        held.push_back(Held{rel(e.ts_ns), ThreadInfo{e.pid, e.tid, comm}});
        break;
      }
      case KSCOPE_REC_FORK: {
        if (size < sizeof(kscope_fork_event)) return;
        kscope_fork_event e;
        std::memcpy(&e, data, sizeof(e));
        // A child's fault counters start at zero in copy_process(): its baseline is zero.
        auto& ps = add_process(static_cast<pid_t>(e.child_pid));
        held.push_back(Held{rel(e.ts_ns), ForkEvent{rel(e.ts_ns), e.parent_pid, e.child_pid}});
        snapshot_maps(static_cast<pid_t>(e.child_pid), ps);
        break;
      }
      case KSCOPE_REC_EXIT: {
        if (size < sizeof(kscope_exit_event)) return;
        kscope_exit_event e;
        std::memcpy(&e, data, sizeof(e));
        auto& ps = add_process(static_cast<pid_t>(e.pid));
        if (!fold_exit(ps, e.tid, Counts{e.min_flt, e.maj_flt})) {
          ps.final[e.tid] = Counts{e.min_flt, e.maj_flt};
          ps.exit_seen.insert(e.tid);
        }
        held.push_back(Held{rel(e.ts_ns), ExitEvent{rel(e.ts_ns), e.pid, e.tid, e.min_flt,
                                                    e.maj_flt, e.group_dead != 0}});
        break;
      }
      case KSCOPE_REC_EXEC: {
        if (size < sizeof(kscope_exec_event)) return;
        kscope_exec_event e;
        std::memcpy(&e, data, sizeof(e));
        auto& ps = add_process(static_cast<pid_t>(e.pid));
        if (e.armed_now) {
          // Tracing of the command starts here: what it faulted before (in kscope's image
          // between fork and execve, and copying execve's arguments) is not part of the run.
          ps.baseline[e.tid] = Counts{e.min_flt, e.maj_flt};
          ps.baseline_known = true;
          ps.exec_baseline = true;
        }
        std::string comm = bounded_string(e.comm, sizeof(e.comm));
        if (e.pid == e.tid) totals.process_names[e.pid] = comm;
        held.push_back(Held{rel(e.ts_ns), ThreadInfo{e.pid, e.tid, comm}});
        snapshot_maps(static_cast<pid_t>(e.pid), ps);
        break;
      }
      default:
        break;
    }
  }

  // Non-blocking check of the pidfds; returns true when every traced process has exited.
  bool all_exited() {
    std::vector<pollfd> fds;
    std::vector<pid_t> pids;
    for (auto& [pid, ps] : processes) {
      if (ps.exited) continue;
      fds.push_back(pollfd{ps.pidfd.get(), POLLIN, 0});
      pids.push_back(pid);
    }
    if (!fds.empty() && ::poll(fds.data(), fds.size(), 0) > 0) {
      for (size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents & (POLLIN | POLLHUP)) {
          ProcessState& ps = processes[pids[i]];
          ps.exited = true;
          ps.pidfd = Fd();  // with --follow-children, one fd per process that came and went
        }
    }
    // -t: done when every traced thread has exited (its exit record, or gone from /proc).
    for (auto& [pid, ps] : processes) {
      if (ps.exited || ps.only_tids.empty()) continue;
      bool any = false;
      for (uint32_t tid : ps.only_tids) {
        if (ps.exit_seen.count(tid)) continue;
        auto st = proc::read_thread_stat(pid, static_cast<pid_t>(tid));
        if (st && st->state != 'Z' && st->state != 'X') any = true;
      }
      if (!any) ps.exited = true;
    }
    for (auto& [pid, ps] : processes)
      if (!ps.exited) return false;
    return true;
  }

  // Writes out the per-CPU batches of fault records that hold any (see KSCOPE_FAULT_BATCH):
  // the flush program runs on that CPU, in an IPI, and reports a CPU caught writing a record,
  // which is retried up to `attempts` times. With `stuck`, the records left in each CPU's batch
  // (lost) are added to it.
  // Passes on, in time order, the held records that started before `limit_ns` (relative
  // time). Called with the start of a flush of all CPUs once the ring buffer has been drained
  // after it: every record completed before that moment has then been read. A thread's faults
  // are sequential, so any earlier fault of a thread whose record started before the flush also
  // completed before it: releasing by start time keeps each thread's faults in order.
  void release_faults(uint64_t limit_ns) {
    // stable_partition and stable_sort: a name and the first fault it announces share a time.
    auto mid = std::stable_partition(held.begin(), held.end(),
                                     [limit_ns](const Held& h) { return h.time_ns < limit_ns; });
    std::stable_sort(held.begin(), mid,
                     [](const Held& a, const Held& b) { return a.time_ns < b.time_ns; });
    for (auto it = held.begin(); it != mid; ++it) {
      if (auto* f = std::get_if<FaultRecord>(&it->item)) {
        sink->on_fault(*f);
      } else if (auto* t = std::get_if<ThreadInfo>(&it->item)) {
        sink->on_thread(*t);
      } else if (auto* k = std::get_if<ForkEvent>(&it->item)) {
        sink->on_fork(*k);
      } else if (auto* x = std::get_if<ExitEvent>(&it->item)) {
        sink->on_exit(*x);
      }
    }
    held.erase(held.begin(), mid);
  }

  // Returns true when every CPU's batch was written (none was caught mid-record).
  bool flush_batches(int attempts = 1, std::vector<uint64_t>* stuck = nullptr) {
    int map_fd = bpf_map__fd(skel->maps.batches);
    size_t value_size = (bpf_map__value_size(skel->maps.batches) + 7) & ~size_t{7};
    uint32_t zero = 0;
    batch_buf.resize(static_cast<size_t>(ncpus) * value_size);
    if (bpf_map_lookup_elem(map_fd, &zero, batch_buf.data()) != 0) return false;
    int prog_fd = bpf_program__fd(skel->progs.flush_batches);
    bool all = true;
    for (int cpu = 0; cpu < ncpus; cpu++) {
      kscope_fault_batch_header h;
      std::memcpy(&h, batch_buf.data() + static_cast<size_t>(cpu) * value_size, sizeof(h));
      if (h.count == 0) continue;
      bool done = false;
      for (int i = 0; i < attempts && !done; i++) {
        LIBBPF_OPTS(bpf_test_run_opts, opts, .flags = BPF_F_TEST_RUN_ON_CPU,
                    .cpu = static_cast<uint32_t>(cpu));
        done = bpf_prog_test_run_opts(prog_fd, &opts) == 0 && opts.retval == 0;
        if (!done && i + 1 < attempts) ::usleep(1000);
      }
      if (!done && stuck) {
        if (stuck->size() < static_cast<size_t>(ncpus)) stuck->resize(static_cast<size_t>(ncpus));
        (*stuck)[static_cast<size_t>(cpu)] += std::min<uint32_t>(h.count, KSCOPE_FAULT_BATCH);
      }
      all = all && done;
    }
    return all;
  }

  // No new fault is started from now on; faults already entered complete and are recorded, and
  // each thread's first fault entry from now on records its end bound (thread_bounds).
  void begin_stopping() {
    stopping = true;
    __atomic_store_n(&skel->bss->tracing_enabled, KSCOPE_TRACING_STOPPING, __ATOMIC_SEQ_CST);
  }

  void stop_recording() {
    __atomic_store_n(&skel->bss->tracing_enabled, KSCOPE_TRACING_OFF, __ATOMIC_SEQ_CST);
    int fd = bpf_map__fd(skel->maps.traced_tgids);
    for (auto& [pid, ps] : processes) {
      uint32_t key = static_cast<uint32_t>(pid);
      bpf_map_delete_elem(fd, &key);
    }
  }

  bool thread_wanted(const ProcessState& ps, uint32_t tid) const {
    return ps.only_tids.empty() || ps.only_tids.count(tid) != 0;
  }

  // /proc counters of the process's (traced) threads.
  std::map<uint32_t, Counts> read_thread_counters(pid_t pid, const ProcessState& ps) {
    std::map<uint32_t, Counts> out;
    if (auto tids = proc::list_threads(pid)) {
      for (pid_t tid : *tids) {
        if (!thread_wanted(ps, static_cast<uint32_t>(tid))) continue;
        if (auto st = proc::read_thread_stat(pid, tid))
          out[static_cast<uint32_t>(tid)] = Counts{st->minflt, st->majflt};
      }
    }
    return out;
  }

  std::map<uint32_t, kscope_thread_bounds> read_bounds() {
    std::map<uint32_t, kscope_thread_bounds> out;
    int fd = bpf_map__fd(skel->maps.thread_bounds);
    uint32_t key = 0, next = 0;
    uint32_t* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      kscope_thread_bounds b{};
      if (bpf_map_lookup_elem(fd, &next, &b) == 0) out[next] = b;
      key = next;
      prev = &key;
    }
    return out;
  }

  // The kernel's count of each traced process's faults over the traced interval, per thread
  // from the tightest bounds known:
  //  - base: the exec record for an armed command; else the counters at the thread's first
  //    fault entry once tracing was on (BPF: every fault after it that fires a per-fault event
  //    was traced; a fault in flight when tracing started has completed and is counted before
  //    it); else the /proc read just after arming (a thread that took no fault while traced),
  //    or, for a thread gone before that read, the one just before arming; 0 for a thread born
  //    while traced. A get_user_pages() fault a thread takes before its first traced fault is
  //    therefore not counted.
  //  - end: the counters at its first fault entry, or its in-flight fault's completion, once
  //    stopping (BPF); else the exit record;
  //    else the /proc read after stopping.
  // What remains unseen is then what fires no per-fault event (get_user_pages) or was lost.
  void reconcile(const std::map<uint32_t, kscope_thread_bounds>& bounds) {
    for (auto& [pid, ps] : processes) {
      KernelFaultCounts k;
      k.exact = ps.baseline_known && totals.lost_control == 0 && totals.bounds_full == 0;
      for (auto& [tid, fin] : ps.final) {
        if (!thread_wanted(ps, tid)) continue;
        const kscope_thread_bounds* b = nullptr;
        if (auto it = bounds.find(tid); it != bounds.end()) b = &it->second;
        Counts end = fin;
        // The first fault entry once stopping precedes the exit and the /proc read after it.
        if (b && (b->flags & KSCOPE_BOUNDS_END)) end = Counts{b->end_min_flt, b->end_maj_flt};
        Counts base;  // zero: born while traced
        auto post = ps.baseline.find(tid);
        bool have_post = post != ps.baseline.end();
        bool have_pre = ps.pre_arm.count(tid) != 0;
        bool bpf_base = b && (b->flags & KSCOPE_BOUNDS_BASE);
        Counts bpf = bpf_base ? Counts{b->base_min_flt, b->base_maj_flt} : Counts{};
        if (have_post && ps.exec_baseline) {
          base = post->second;  // the exec record: before any fault of the new image
        } else if (bpf_base && (have_post || have_pre)) {
          base = bpf;
        } else if (have_post) {
          base = post->second;
        } else if (have_pre) {
          base = ps.pre_arm[tid];
        }
        k.minflt += end.minflt >= base.minflt ? end.minflt - base.minflt : 0;
        k.majflt += end.majflt >= base.majflt ? end.majflt - base.majflt : 0;
      }
      k.minflt += ps.exited_born.minflt;
      k.majflt += ps.exited_born.majflt;
      // A thread known at the start whose end we did not see (it exited and its record was lost).
      for (auto& [tid, base] : ps.baseline)
        if (!ps.final.count(tid)) k.exact = false;
      totals.kernel[static_cast<uint32_t>(pid)] = k;
    }
  }

  uint64_t counter_sum(uint32_t idx, std::vector<uint64_t>* per_cpu = nullptr) {
    auto v = bpf::read_percpu_u64(bpf_map__fd(skel->maps.fault_counters), idx);
    if (!v) return 0;
    uint64_t sum = 0;
    for (auto x : *v) sum += x;
    if (per_cpu) *per_cpu = *v;
    return sum;
  }
};

FaultTracer::FaultTracer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FaultTracer::Sizes FaultTracer::sizes() const {
  Sizes z;
  z.processes = impl_->processes.size();
  for (const auto& [pid, ps] : impl_->processes) {
    z.processes_open += ps.pidfd ? 1 : 0;
    z.thread_counters += ps.pre_arm.size() + ps.baseline.size() + ps.final.size();
    z.exits_seen += ps.exit_seen.size();
    z.threads_folded += ps.exited_born_threads;
    z.mapping_records += ps.mappings.records();
  }
  z.held = impl_->held.size();
  z.stacks = impl_->stacks.size();
  return z;
}

std::string FaultTracer::Sizes::describe() const {
  return fmt::format(
      "processes={} processes_open={} thread_counters={} exits_seen={} threads_folded={} "
      "mapping_records={} held={} stacks={}",
      processes, processes_open, thread_counters, exits_seen, threads_folded, mapping_records, held,
      stacks);
}
FaultTracer::~FaultTracer() = default;

Result<std::unique_ptr<FaultTracer>> FaultTracer::create(const FaultTraceOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if ((options.pids.empty() && options.threads.empty()) == options.command.empty())
    return usage_error("give either -p PID[,PID...], -t TID[,TID...] or -- COMMAND [ARGS...]");

  // Targets first: a wrong PID is the user's most likely mistake and needs no privileges.
  KSCOPE_TRY(check_process_targets(options.pids, "-t"));
  if (!options.threads.empty() && (!options.pids.empty() || options.follow_children))
    return usage_error("-t traces only the threads given: not with -p or --follow-children");
  if (!options.command.empty()) {
    auto found = find_executable(options.command[0]);
    if (!found) return std::move(found).error();
  }
  auto privileges = check_bpf_privileges();
  if (!privileges.sufficient) return privilege_error("faults", privileges);

  bpf::install_libbpf_logger(options.verbosity);
  impl->skel.reset(faults_bpf__open());
  if (!impl->skel) return bpf::libbpf_error("opening the faults BPF object failed", errno);
  auto* skel = impl->skel.get();
  skel->rodata->follow_children = options.follow_children;
  skel->rodata->wakeup_bytes = std::max<uint64_t>(options.ringbuf_bytes / 16, 4096);
  const bool dwarf = options.stacks == FaultStackMode::kDwarf;
  const bool stacks = options.stacks != FaultStackMode::kOff;
  skel->rodata->stack_mode = options.stacks == FaultStackMode::kOff     ? KSCOPE_FAULT_STACKS_OFF
                             : options.stacks == FaultStackMode::kDwarf ? KSCOPE_FAULT_STACKS_DWARF
                                                                        : KSCOPE_FAULT_STACKS_FP;
  // Without stacks (or without the native walk) their maps shrink to one entry each.
  KSCOPE_ASSIGN_OR_RETURN(uint32_t unwind_rows, unwind_rows_capacity(options.unwind_rows));
  for (auto [map, size] :
       {std::pair{skel->maps.unwind_rows, dwarf ? unwind_rows : 1u},
        std::pair{skel->maps.unwind_files, dwarf ? options.unwind_files : 1u},
        std::pair{skel->maps.unwind_procs, dwarf ? options.unwind_processes : 1u},
        std::pair{skel->maps.ustacks, dwarf ? options.max_stacks : 1u},
        std::pair{skel->maps.fault_stacks, stacks ? options.max_stacks : 1u}}) {
    if (int err = bpf_map__set_max_entries(map, size))
      return bpf::libbpf_error("sizing the stack maps failed", err);
  }
  if (int err = bpf_map__set_max_entries(skel->maps.events, options.ringbuf_bytes))
    return bpf::libbpf_error("sizing the ring buffer failed", err);
  skel->rodata->kscope_unwind_early_on = dwarf;
  KSCOPE_TRY(
      configure_unwind_early(skel->obj, dwarf, options.unwind_files, options.unwind_processes));
  if (int err = faults_bpf__load(skel)) return bpf::load_error("faults", err);
  if (dwarf) {
    impl->unwind_maps = std::make_unique<BpfUnwindMaps>(
        bpf_map__fd(skel->maps.unwind_rows), bpf_map__fd(skel->maps.unwind_files),
        bpf_map__fd(skel->maps.unwind_procs), bpf_map__fd(skel->maps.unwind_inodes));
    impl->tables = std::make_unique<unwind::TableLoader>(*impl->unwind_maps, unwind_rows,
                                                         options.unwind_files, options.open_files);
    if (!options.unwind_debug_dirs.empty()) impl->tables->set_debug_dirs(options.unwind_debug_dirs);
  }
  impl->ncpus = libbpf_num_possible_cpus();
  if (impl->ncpus <= 0) return bpf::libbpf_error("cannot count the possible CPUs", impl->ncpus);
  if (int err = faults_bpf__attach(skel)) {
    return make_error("attaching the page-fault tracepoints failed", -err,
                      "run 'kscope doctor' to check tp_btf/page_fault_user and the sched "
                      "tracepoints");
  }
  KSCOPE_ASSIGN_OR_RETURN(impl->minor_links, bpf::attach_sw_event_all_cpus(
                                                 skel->progs.fault_done_minor,
                                                 PERF_COUNT_SW_PAGE_FAULTS_MIN, "minor-faults"));
  KSCOPE_ASSIGN_OR_RETURN(impl->major_links, bpf::attach_sw_event_all_cpus(
                                                 skel->progs.fault_done_major,
                                                 PERF_COUNT_SW_PAGE_FAULTS_MAJ, "major-faults"));
  if (dwarf) {
    // Libraries mapped after execve, found before their perf mmap records are read.
    if (auto links = attach_unwind_early(skel->obj)) {
      impl->early = std::move(*links);
      report_tracefs_mount("kscope faults");
    } else if (options.verbosity > 0)
      std::fprintf(stderr, "kscope faults: %s\n", links.error().describe().c_str());
  }
  // Executable mappings as they are made (perf mmap records), so libraries of a process that
  // exits before /proc/PID/maps is read again still resolve.
  KSCOPE_ASSIGN_OR_RETURN(impl->mmaps, MmapWatcher::open());

  // -p/-t: each thread's counters before arming; run() reads them again just after arming
  // and the BPF programs note them at each thread's first fault (see reconcile()).
  for (pid_t pid : options.pids) {
    auto& ps = impl->add_process(pid);
    ps.pre_arm = impl->read_thread_counters(pid, ps);
    if (auto st = proc::read_stat(pid))
      impl->totals.process_names[static_cast<uint32_t>(pid)] = st->comm;
  }
  for (auto [tgid, tid] : options.threads) {
    auto& ps = impl->add_process(tgid);
    ps.only_tids.insert(static_cast<uint32_t>(tid));
  }
  for (auto [tgid, tid] : options.threads) {
    auto& ps = impl->processes[tgid];
    ps.pre_arm = impl->read_thread_counters(tgid, ps);
    if (auto st = proc::read_stat(tgid))
      impl->totals.process_names[static_cast<uint32_t>(tgid)] = st->comm;
  }
  if (!options.command.empty()) {
    // The command's program, loader and libraries, before it may exec: its walks are whole
    // from its first instruction (bpf/unwind.bpf.h's early mappings find them by identity).
    if (impl->tables) impl->preload_command_tables();
    KSCOPE_ASSIGN_OR_RETURN(
        auto cmd,
        LaunchedCommand::start(
            options.command,
            LaunchOptions{.stdout_fd = options.command_stdout_to_stderr ? STDERR_FILENO : -1}));
    impl->command.emplace(std::move(cmd));
    auto& ps = impl->add_process(impl->command->pid());
    ps.baseline_known = false;  // set by the exec record
  }
  return std::unique_ptr<FaultTracer>(new FaultTracer(std::move(impl)));
}

Result<FaultTraceOutcome> FaultTracer::run(FaultSink& sink, volatile sig_atomic_t* stop) {
  Impl& s = *impl_;
  s.sink = &sink;
  FaultTraceOutcome outcome;
  KSCOPE_ASSIGN_OR_RETURN(s.rb,
                          bpf::RingBuffer::open(bpf_map__fd(s.skel->maps.events),
                                                [&s](const void* d, size_t n) { s.handle(d, n); }));
  s.start_ns = monotonic_ns();
  int tgids_fd = bpf_map__fd(s.skel->maps.traced_tgids);
  __atomic_store_n(&s.skel->bss->tracing_enabled, KSCOPE_TRACING_ON, __ATOMIC_SEQ_CST);
  int tids_fd = bpf_map__fd(s.skel->maps.traced_tids);
  for (auto [tgid, tid] : s.options.threads) {
    uint32_t key = static_cast<uint32_t>(tid), value = 1;
    if (bpf_map_update_elem(tids_fd, &key, &value, BPF_ANY) != 0)
      return errno_error("adding the thread to the BPF filter failed");
  }
  std::vector<pid_t> armed = s.options.pids;
  for (auto [tgid, tid] : s.options.threads) {
    uint32_t key = static_cast<uint32_t>(tgid), value = KSCOPE_TGID_THREADS;
    if (bpf_map_update_elem(tgids_fd, &key, &value, BPF_ANY) != 0)
      return errno_error("adding the process to the BPF filter failed");
    if (std::find(armed.begin(), armed.end(), tgid) == armed.end()) armed.push_back(tgid);
  }
  for (pid_t pid : s.options.pids) {
    uint32_t key = static_cast<uint32_t>(pid), value = KSCOPE_TGID_TRACED;
    if (bpf_map_update_elem(tgids_fd, &key, &value, BPF_ANY) != 0)
      return errno_error("adding the process to the BPF filter failed");
  }
  // The counters just after arming: with those just before, and the BPF programs' own at each
  // thread's first fault, they bound the traced interval (see reconcile()).
  for (pid_t pid : armed) {
    auto& ps = s.processes[pid];
    ps.baseline = s.read_thread_counters(pid, ps);
    // Exited between the check of the targets and now: there is nothing to trace.
    if (process_has_exited(pid)) return make_error(fmt::format("process {} has exited", pid));
  }
  for (pid_t pid : armed) s.snapshot_maps(pid, s.processes[pid]);
  if (s.command) {
    uint32_t key = static_cast<uint32_t>(s.command->pid()), value = KSCOPE_TGID_ARMED_FOR_EXEC;
    if (bpf_map_update_elem(tgids_fd, &key, &value, BPF_ANY) != 0)
      return errno_error("adding the command to the BPF filter failed");
  }
  std::vector<pid_t> started = armed;
  if (s.command) started.push_back(s.command->pid());
  sink.on_started(started);
  if (s.command) {
    if (auto st = s.command->release(); !st) return std::move(st).error();
  }

  Status sink_status;
  uint64_t last_tick = s.start_ns;
  uint64_t stop_deadline = 0;  // set when we asked the command to stop
  while (true) {
    uint64_t flush_start = monotonic_ns();
    bool flushed = s.flush_batches(3);  // a CPU caught mid-record is retried
    KSCOPE_TRY(s.rb->poll(20));
    s.drain_mmaps();
    if (flushed) s.release_faults(s.rel(flush_start));
    uint64_t now = monotonic_ns();
    if (s.all_exited()) {
      if (outcome.stop_reason.empty()) outcome.stop_reason = "process exited";
      break;
    }
    bool want_stop =
        (stop && *stop) || (s.options.duration_s &&
                            static_cast<double>(now - s.start_ns) / 1e9 >= *s.options.duration_s);
    if (want_stop && outcome.stop_reason.empty()) {
      outcome.stop_reason = (stop && *stop) ? "signal" : "duration";
      if (!s.command) break;
      // Like perf record: the command we started is asked to terminate, and we keep reading
      // until it is gone so its last faults and exit counters are accounted.
      s.command->terminate();
      stop_deadline = now + 2'000'000'000ull;
    }
    if (stop_deadline && now > stop_deadline) {
      ::kill(s.command->pid(), SIGKILL);
      stop_deadline = now + 2'000'000'000ull;
    }
    for (auto& [pid, ps] : s.processes)
      if (ps.maps_dirty && !ps.exited && now - ps.last_maps_read_ns > 100'000'000ull)
        s.snapshot_maps(pid, ps);
    if (now - last_tick >= 1'000'000'000ull) {
      last_tick = now;
      sink_status = sink.on_tick(s.counter_sum(KSCOPE_CNT_FAULT_DROPPED));
      if (!sink_status) break;
    }
  }
  uint64_t end_ns = monotonic_ns();
  s.begin_stopping();
  // Faults entered before this moment still complete and add a record: give them a moment.
  ::usleep(2000);
  s.flush_batches(100);

  // Threads still alive: their counters now are their end unless they faulted since stopping
  // began (then the BPF program noted the end, read below). Maps too, for symbolization.
  for (auto& [pid, ps] : s.processes) {
    if (ps.exited) continue;
    for (auto& [tid, c] : s.read_thread_counters(pid, ps))
      if (!ps.exit_seen.count(tid)) ps.final[tid] = c;
    s.snapshot_maps(pid, ps);
  }
  auto bounds = s.read_bounds();
  s.stop_recording();
  // Write out every CPU's batch, with any record completed since the flush above (retrying a
  // CPU caught mid-record; what stays stuck is counted as lost).
  std::vector<uint64_t> stuck;
  s.flush_batches(100, &stuck);
  KSCOPE_TRY(s.rb->drain());
  s.drain_mmaps();
  s.release_faults(UINT64_MAX);
  if (!sink_status) return std::move(sink_status).error();

  auto& totals = s.totals;
  totals.duration_s = static_cast<double>(end_ns - s.start_ns) / 1e9;
  s.counter_sum(KSCOPE_CNT_FAULT_DROPPED, &totals.lost_per_cpu);
  if (totals.lost_per_cpu.size() < stuck.size()) totals.lost_per_cpu.resize(stuck.size());
  for (size_t i = 0; i < stuck.size(); i++) totals.lost_per_cpu[i] += stuck[i];
  totals.lost_control = s.counter_sum(KSCOPE_CNT_CTRL_DROPPED);
  totals.failed_entries = s.counter_sum(KSCOPE_CNT_FAILED_ENTRY);
  totals.unmatched = s.counter_sum(KSCOPE_CNT_NO_ENTRY) + s.counter_sum(KSCOPE_CNT_NO_STORAGE);
  totals.vma_busy = s.counter_sum(KSCOPE_CNT_VMA_BUSY);
  totals.own_reads = s.counter_sum(KSCOPE_CNT_OWN_READ);
  if (s.mmaps) totals.mmap_records_lost = s.mmaps->lost();

  totals.bounds_full = s.counter_sum(KSCOPE_CNT_BOUNDS_FULL);
  if (s.options.stacks != FaultStackMode::kOff) {
    totals.stack_walker = s.options.stacks == FaultStackMode::kDwarf ? "dwarf" : "fp";
    totals.stacks_distinct = s.stacks.size();
  }
  if (s.tables) {
    const auto& st = s.tables->stats();
    totals.unwind_files = st.files;
    totals.unwind_rows = st.rows;
    totals.unwind_rows_capacity = st.rows_capacity;
    totals.unwind_table_bytes = st.table_bytes();
    totals.unwind_files_no_table = st.files_no_table;
    totals.unwind_files_no_room = st.files_no_room;
    totals.unwind_mappings_dropped = st.mappings_dropped;
    totals.unwind_early = read_unwind_early_counts(bpf_map__fd(s.skel->maps.unwind_counters));
  }
  s.reconcile(bounds);

  if (s.command) {
    if (!s.command->has_exited()) {
      s.command->terminate();
    }
    KSCOPE_ASSIGN_OR_RETURN(int code, s.command->reap());
    outcome.command_exit = code;
  }
  outcome.totals = std::move(totals);
  return outcome;
}

}  // namespace kscope
