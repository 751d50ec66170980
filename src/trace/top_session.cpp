#include "trace/top_session.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <tuple>
#include <unordered_set>

#include "kscope/abi/unwind.h"
#include "model/process_info.h"
#include "model/top_aggregator.h"
#include "model/top_profile.h"
#include "model/top_recording.h"
#include "model/top_retired.h"
#include "symbols/elf_binary.h"
#include "symbols/open_files.h"
#include "symbols/proc_maps.h"
#include "trace/mmap_watch.h"
#include "trace/proc.h"
#include "util/clock.h"
#include "util/file.h"

namespace kscope {

namespace {

// Kernel frames above the scheduler that belong to the tracing machinery itself.
bool is_tracing_frame(const std::string& fn) {
  static const char* const kPrefixes[] = {"bpf_",           "__bpf_",      "__traceiter_",
                                          "trace_call_bpf", "perf_trace_", "__perf_"};
  for (const char* p : kPrefixes)
    if (fn.rfind(p, 0) == 0) return true;
  return false;
}

struct CpuTimes {
  uint64_t busy = 0;
  uint64_t total = 0;
};

std::optional<CpuTimes> read_cpu_times() {
  auto text = read_file("/proc/stat", 1 << 16);
  if (!text || text->rfind("cpu ", 0) != 0) return std::nullopt;
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice
  uint64_t v[8] = {};
  size_t pos = 4;
  for (int i = 0; i < 8; ++i) {
    while (pos < text->size() && (*text)[pos] == ' ') ++pos;
    size_t end = pos;
    while (end < text->size() && (*text)[end] >= '0' && (*text)[end] <= '9') ++end;
    if (end == pos) return std::nullopt;
    v[i] = std::strtoull(text->c_str() + pos, nullptr, 10);
    pos = end;
  }
  CpuTimes t;
  for (uint64_t x : v) t.total += x;
  t.busy = t.total - v[3] - v[4];
  return t;
}

bool thread_alive(uint32_t pid, uint32_t tid) {
  // A zombie's threads are gone from /proc/PID/task, its main thread stays until reaped.
  std::string path = fmt::format("/proc/{}/task/{}/stat", pid, tid);
  auto text = read_file(path, 4096);
  if (!text) return false;
  auto st = proc::parse_stat(*text);
  return st && st->state != 'Z' && st->state != 'X';
}

// The last frame of a user stack the native unwinder could not finish, naming why.
TopFrameView incomplete_marker(uint8_t reason) {
  TopFrameView f;
  f.symbol = fmt::format("[incomplete: {}]", unwind_reason_name(reason));
  f.marker = true;
  return f;
}

}  // namespace

struct TopSession::Impl {
  TopSessionOptions options;
  std::unique_ptr<TopTracer> tracer;
  std::unique_ptr<Symbolizer> symbolizer;  // made in create() from options.symbols
  bool kernel_symbols_warned = false;
  bool unwind_load_warned = false;

  // Names: by tid (threads) from kernel events and /proc.
  std::unordered_map<uint32_t, std::string> thread_names;
  std::unordered_map<uint32_t, uint32_t> thread_pid;  // tid -> pid
  std::set<uint32_t> mapped_pids;                     // mappings read at least once

  // Executable mappings as processes make them (perf mmap records): they keep a process's
  // mappings current after the one /proc read, and stand in for it when the process is gone
  // before it could be read (a command that runs for milliseconds).
  std::unique_ptr<MmapWatcher> mmaps;
  std::map<uint32_t, ProcessMappings> procmaps;  // per pid, also of pids not announced yet
  static constexpr size_t kMaxPids = 8192;

  std::optional<TopSample> prev;       // the last refresh's sample
  std::optional<TopSample> prev_prev;  // the one before (to regroup the last interval)
  std::optional<CpuTimes> cpu_prev;
  std::optional<CpuTimes> cpu_start;
  double last_busy = -1;

  // Exited threads' final account values, names and symbolized user stacks, for the whole-run
  // profile (only with keep_whole_run).
  TopRetired retired;
  // Processes found exited at the last refresh, and the user stack ids their accounts used: their
  // state is dropped at the next refresh (the table on screen until then can still show them).
  std::map<uint32_t, std::set<int32_t>> exited;

  std::map<int32_t, std::vector<TopFrameView>> kernel_cache;
  std::map<std::pair<uint32_t, int32_t>, std::vector<TopFrameView>> user_cache;
  std::map<std::string, std::string> build_ids;

  std::unique_ptr<TopRecordingWriter> recording;
  TopTimings timings;

  // Times a step into one of `timings`' (count, ns) pairs.
  template <typename F>
  auto timed(uint64_t& count, uint64_t& ns, F&& f) {
    uint64_t begin = monotonic_ns();
    struct Done {
      uint64_t begin;
      uint64_t& ns;
      ~Done() { ns += monotonic_ns() - begin; }
    } done{begin, ns};
    ++count;
    return f();
  }
  Result<TopSample> take_sample() {
    auto sample = timed(timings.samples, timings.samples_ns, [&] { return tracer->sample(); });
    if (sample) {
      timings.sample_rereads += sample->rereads;
      timings.samples_unsettled += sample->unsettled ? 1 : 0;
    }
    return sample;
  }

  std::string comm_of(uint32_t pid, uint32_t tid) {
    auto it = thread_names.find(tid);
    if (it != thread_names.end()) return it->second;
    if (auto kept = retired.comm(pid, tid)) return *kept;  // exited
    std::string name;
    if (tid == 0) {
      name = "[idle]";
    } else if (auto text = read_file(fmt::format("/proc/{}/task/{}/comm", pid, tid), 64)) {
      name = *text;
      while (!name.empty() && (name.back() == '\n')) name.pop_back();
    } else {
      name = "?";  // exited before we learned its name
    }
    thread_names[tid] = name;
    return name;
  }

  void read_mappings(uint32_t pid, uint64_t time_ns) {
    if (pid == 0) return;
    uint64_t now = monotonic_ns();
    auto proc_maps =
        timed(timings.mapping_reads, timings.mapping_reads_ns, [&] { return read_proc_maps(pid); });
    auto& pm = procmaps[pid];
    // Gone already (a zombie reads as no mappings): what the kernel reported it mapped since
    // its execve is what there is.
    if (proc_maps && !proc_maps->empty())
      pm.set_snapshot(std::move(*proc_maps), now);
    else if (!pm.known())
      return;
    mapped_pids.insert(pid);
    publish_mappings(pid, time_ns);
  }

  void load_tables(uint32_t pid, const std::vector<Mapping>& mappings) {
    if (!tracer->native_unwind()) return;
    Status st = timed(timings.table_loads, timings.table_loads_ns,
                      [&] { return tracer->load_unwind_tables(pid, mappings); });
    if (!st && !unwind_load_warned) {
      unwind_load_warned = true;
      std::fprintf(stderr, "kscope top: unwind tables of process %u not loaded: %s\n", pid,
                   st.error().describe().c_str());
    }
  }

  // Processes whose unwind tables are to be loaded, in the order they came: every process
  // found once measuring runs, and the targets too with defer_tables.
  std::vector<uint32_t> tables_queue;
  std::set<uint32_t> tables_queued;
  bool tables_now = false;  // create(), batch output: the targets' tables before measuring
  // Per poll: the screen stays live and a --once table comes on time, whatever the churn (a
  // process event costs a /proc read; new files' tables take milliseconds to seconds to build).
  static constexpr uint64_t kTablesBudgetNs = 50'000'000;
  static constexpr uint64_t kEventsBudgetNs = 25'000'000;

  // Loads queued tables until the budget is spent (at least one process per call), from the
  // process's mappings as they are now.
  void load_queued_tables() {
    uint64_t begin = monotonic_ns();
    size_t done = 0;
    while (done < tables_queue.size()) {
      uint32_t pid = tables_queue[done++];
      tables_queued.erase(pid);
      auto pm = procmaps.find(pid);
      if (pm != procmaps.end() && mapped_pids.count(pid)) load_tables(pid, pm->second.current());
      if (monotonic_ns() - begin >= kTablesBudgetNs) break;
    }
    tables_queue.erase(tables_queue.begin(),
                       tables_queue.begin() + static_cast<std::ptrdiff_t>(done));
  }

  void publish_mappings(uint32_t pid, uint64_t time_ns) {
    MappingSnapshot snap{pid, time_ns > tracer->start_ns() ? time_ns - tracer->start_ns() : 0,
                         procmaps[pid].current()};
    // The unwinder's tables follow the same mappings (a dlopen arrives as an mmap record).
    if (tables_now) {
      load_tables(pid, snap.mappings);
    } else if (tracer->native_unwind() && tables_queued.insert(pid).second) {
      tables_queue.push_back(pid);
    }
    symbolizer->set_mappings(snap);
    for (auto it = user_cache.lower_bound({pid, INT32_MIN});
         it != user_cache.end() && it->first.first == pid;)
      it = user_cache.erase(it);
    if (recording) (void)recording->add_mappings(snap);
  }

  void drain_mmaps() {
    if (!mmaps) return;
    std::set<uint32_t> changed;
    const auto& only = options.trace.pids;
    mmaps->drain([&](const MmapEvent& e) {
      if (e.pid == 0) return;
      if (!only.empty() &&
          std::find(only.begin(), only.end(), static_cast<pid_t>(e.pid)) == only.end())
        return;
      if (!procmaps.count(e.pid) && procmaps.size() >= kMaxPids) {
        // Bounded: forget a process never announced (it never ran a tracked switch).
        for (auto it = procmaps.begin(); it != procmaps.end(); ++it)
          if (!mapped_pids.count(it->first)) {
            procmaps.erase(it);
            break;
          }
      }
      procmaps[e.pid].add(e);
      if (mapped_pids.count(e.pid)) changed.insert(e.pid);
    });
    uint64_t now = monotonic_ns();
    for (uint32_t pid : changed) publish_mappings(pid, now);
  }

  void on_process(const TopProcessEvent& e) {
    timed(timings.process_events, timings.process_events_ns, [&] { handle_process(e); });
  }
  void handle_process(const TopProcessEvent& e) {
    thread_names[e.tid] = e.comm;
    thread_pid[e.tid] = e.pid;
    if (recording) (void)recording->add_thread(ThreadInfo{e.pid, e.tid, e.comm});
    if (e.exec) mapped_pids.erase(e.pid);  // a new image: read again
    if (!mapped_pids.count(e.pid)) {
      drain_mmaps();  // what it mapped until now, in case it is gone before /proc is read
      read_mappings(e.pid, e.time_ns);
    }
  }

  TopFrameView frame_from(const Symbol& sym, uint64_t ip, uint64_t adjust, bool kernel) {
    TopFrameView f;
    f.addr = ip;
    f.kernel = kernel;
    f.module = sym.module;
    f.module_path = sym.module_path;
    if (sym.resolved) {
      f.symbol = sym.function;
      f.offset = sym.offset + adjust;
      f.resolved = true;
    } else if (!sym.module.empty()) {
      f.symbol = sym.module;
      f.offset = sym.offset + adjust;
    } else {
      f.symbol = fmt::format("{:#x}", ip);
    }
    return f;
  }

  const std::vector<TopFrameView>& kernel_frames(int32_t id) {
    auto it = kernel_cache.find(id);
    if (it != kernel_cache.end()) return it->second;
    if (TopRetired::is_kernel_stack_id(id)) {
      // An exited thread's kernel stack, symbolized when it was retired.
      if (kernel_cache.size() > 65536) kernel_cache.clear();
      return kernel_cache
          .emplace(id, retired.kernel_stack(id).value_or(std::vector<TopFrameView>{}))
          .first->second;
    }
    if (!kernel_symbols_warned) {
      kernel_symbols_warned = true;
      if (auto st = symbolizer->kernel_symbols_status(); !st)
        std::fprintf(stderr, "kscope top: kernel frames stay unresolved: %s\n",
                     st.error().describe().c_str());
    }
    std::vector<TopFrameView> frames;
    std::vector<uint64_t> ips = tracer->stack(id);
    bool leading = true;
    for (size_t i = 0; i < ips.size(); ++i) {
      // Return addresses point after the call: look up ip-1, show the real offset.
      Symbol sym = symbolizer->resolve_kernel(ips[i] - 1);
      if (leading && sym.resolved && is_tracing_frame(sym.function)) continue;
      leading = false;
      frames.push_back(frame_from(sym, ips[i], 1, true));
    }
    if (kernel_cache.size() > 65536) kernel_cache.clear();
    return kernel_cache.emplace(id, std::move(frames)).first->second;
  }

  const std::vector<TopFrameView>& user_frames(uint32_t pid, int32_t id) {
    auto key = std::make_pair(pid, id);
    auto it = user_cache.find(key);
    if (it != user_cache.end()) return it->second;
    if (!mapped_pids.count(pid)) {
      // An exited process: its stacks were symbolized when its threads exited.
      if (auto kept = retired.user_stack(pid, id)) {
        if (user_cache.size() > 65536) user_cache.clear();
        return user_cache.emplace(key, std::move(*kept)).first->second;
      }
      read_mappings(pid, monotonic_ns());
    }
    std::vector<TopFrameView> frames;
    UserStack stack = tracer->user_stack(id);
    if (stack.ips.empty()) {
      // Reclaimed from the kernel's map (no live account refers to it): an exited thread's
      // stack of a living process, symbolized when the thread was retired.
      if (auto kept = retired.user_stack(pid, id)) {
        if (user_cache.size() > 65536) user_cache.clear();
        return user_cache.emplace(key, std::move(*kept)).first->second;
      }
    }
    std::vector<uint64_t> ips = std::move(stack.ips);
    if (!stack.native) {
      // The kernel's frame-pointer walk reads whatever the saved-rbp chain points at: in code
      // built without frame pointers its "return addresses" are data. None is shown as a frame:
      // the stack ends at the first word outside every executable mapping of the process.
      auto pm = procmaps.find(pid);
      size_t keep =
          pm == procmaps.end() ? ips.size() : ExecRanges(pm->second.current()).frames_to_keep(ips);
      if (keep < ips.size()) {
        ips.resize(keep);
        stack.native = true;  // ends with the marker below, as a native walk would
        stack.reason = KSCOPE_UNWIND_NO_MAPPING;
      }
    }
    for (size_t i = 0; i < ips.size(); ++i) {
      uint64_t adjust =
          i == 0 ? 0 : 1;  // frame 0 is where the thread was; the rest return addresses
      Symbol sym = symbolizer->resolve_user(pid, ips[i] - adjust, SymbolDetail::kInlineFrames);
      for (const auto& inl : sym.inlined) {
        TopFrameView f;
        f.addr = ips[i];
        f.symbol = inl.function;
        f.module = sym.module;
        f.module_path = sym.module_path;
        f.resolved = true;
        f.inlined = true;
        frames.push_back(std::move(f));
      }
      frames.push_back(frame_from(sym, ips[i], adjust, false));
    }
    // A native walk that stopped early says so in a last frame (outermost position), never
    // with guessed frames: text, JSON, folded stacks and pprof all show it.
    if (stack.native && stack.reason != 0) frames.push_back(incomplete_marker(stack.reason));
    if (user_cache.size() > 65536) user_cache.clear();
    return user_cache.emplace(key, std::move(frames)).first->second;
  }

  static std::string stack_note(int32_t id, const char* which) {
    switch (id) {
      case kStackCollision:
        return fmt::format("[{} stack lost: stack-map collision (counted in lost)]", which);
      case kStackError:
        return fmt::format("[{} stack unavailable]", which);
      case kStackFull:
        return fmt::format("[{} stack lost: stack map full (counted in lost)]", which);
      case kStackUnknown:
        return "[running since before tracing started: no switch-out yet, no stack]";
      case kStackNotSampled:
        return "[not sampled: on-CPU time of a thread no sample caught running]";
      default:
        return {};
    }
  }

  TopStackView view(uint32_t pid, int32_t kstack, int32_t ustack) {
    TopStackView v;
    std::string knote = stack_note(kstack, "kernel");
    std::string unote = kstack == kStackUnknown || kstack == kStackNotSampled
                            ? std::string()
                            : stack_note(ustack, "user");
    v.note = knote.empty() ? unote : (unote.empty() ? knote : knote + " " + unote);
    if (kstack >= 0) v.kernel = kernel_frames(kstack);
    if (ustack >= 0) v.user = user_frames(pid, ustack);
    return v;
  }

  void update_busy() {
    auto now = read_cpu_times();
    if (now && cpu_prev && now->total > cpu_prev->total)
      last_busy = static_cast<double>(now->busy - cpu_prev->busy) /
                  static_cast<double>(now->total - cpu_prev->total);
    if (now) cpu_prev = now;
  }

  // Threads that exited: retire their accounts (kept for the whole-run profile when asked)
  // and drop them from the kernel map and from `sample`, which becomes the next baseline.
  void prune(TopSample& sample, std::optional<TopSample>& before) {
    timed(timings.prunes, timings.prunes_ns, [&] {
      prune_now(sample, before);
      fold_idle(sample, before);
    });
  }
  void prune_now(TopSample& sample, const std::optional<TopSample>& before) {
    reclaim_user_stacks(sample);
    reclaim_stacks(sample);
    write_sizes(sample);
    std::map<uint32_t, uint32_t> tids;  // tid -> pid, of threads whose values did not move
    std::unordered_map<uint32_t, uint64_t> now_oncpu, before_oncpu;
    auto activity = [](const TopValues& v) {
      return v.slice_ns + v.switches + v.offcpu_ns + v.oncpu_samples;
    };
    for (const auto& [k, v] : sample.accounts) now_oncpu[k.tid] += activity(v);
    if (before)
      for (const auto& [k, v] : before->accounts) before_oncpu[k.tid] += activity(v);
    for (const auto& [k, v] : sample.accounts) {
      if (k.tid == 0) continue;
      auto b = before_oncpu.find(k.tid);
      if (b != before_oncpu.end() && b->second == now_oncpu[k.tid]) tids.emplace(k.tid, k.pid);
    }
    // Announced threads with no account (none could be made: the accounts map was full, or it
    // exited before its first switch-out) are candidates too: otherwise their names and their
    // process's mappings, symbolizer and unwinder state stay for the whole run (measured on the
    // soak: 387 processes held with 159 alive on the machine, after 2 minutes).
    for (const auto& [tid, pid] : thread_pid)
      if (tid != 0 && !now_oncpu.count(tid)) tids.emplace(tid, pid);
    drop_exited(sample);
    sweep_unannounced();
    std::vector<uint32_t> dead;
    for (const auto& [tid, pid] : tids)
      if (!thread_alive(pid, tid)) dead.push_back(tid);
    forget_names_of_unknown_threads(sample);
    if (dead.empty()) {
      note_exited_processes({}, {});
      return;
    }
    std::unordered_set<uint32_t> dead_set(dead.begin(), dead.end());
    std::map<uint32_t, std::set<int32_t>> dead_stacks;  // pid -> user stack ids of its dead threads
    for (auto it = sample.accounts.begin(); it != sample.accounts.end();) {
      const TopAccountKey& k = it->first;
      if (dead_set.count(k.tid)) {
        if (k.ustack >= 0) dead_stacks[k.pid].insert(k.ustack);
        retire(k, it->second);
        it = sample.accounts.erase(it);
      } else {
        ++it;
      }
    }
    tracer->forget_threads(dead);
    for (uint32_t tid : dead) {
      thread_names.erase(tid);
      thread_pid.erase(tid);
    }
    note_exited_processes(tids, dead_stacks);
  }

  // An account that leaves the samples (its thread exited, or it was folded): kept for the
  // whole-run profile when there is one (and --once's whole-run table). Symbolized now, while
  // the process's mappings are known. The kernel stack moves to an id of the retired store: the
  // kernel's id is reclaimed once no live account refers to it, and may then be another stack's
  // (the recording's increments follow the key, so nothing is counted twice).
  void retire(const TopAccountKey& k, const TopValues& values) {
    if (!options.keep_whole_run && options.refreshes) return;
    TopAccountKey rk = k;
    if (k.kstack >= 0) {
      rk.kstack = retired.keep_kernel_stack(kernel_frames(k.kstack));
      increments.rename(k, rk);
    }
    retired.add_values(rk, values);
    retired.set_comm(k.pid, k.tid, comm_of(k.pid, k.tid));
    if (k.ustack >= 0 && !retired.has_user_stack(k.pid, k.ustack))
      retired.keep_user_stack(k.pid, k.ustack, user_frames(k.pid, k.ustack));
  }

  // Accounts of living threads idle for a fold period (unchanged from the fold base, a sample at
  // least that old, to this one) are folded out of the kernel's maps (TopTracer::fold_accounts)
  // and out of `sample` and `before` alike, so the interval tables built from them do not change;
  // a stack used again starts a new account from zero. Without it, a long run's maps, samples and
  // stack caches hold every stack each living thread ever used (the soak's JIT-like workload
  // added one per round), up to --max-accounts, and then lose new ones.
  TopAccounts fold_base;
  uint64_t fold_base_ns = 0;
  TopTracer::FoldResult last_fold;
  void fold_idle(TopSample& sample, std::optional<TopSample>& before) {
    if (!options.fold_idle_ns) return;
    if (fold_base_ns && sample.time_ns - fold_base_ns >= options.fold_idle_ns) {
      last_fold = tracer->fold_accounts(idle_accounts(fold_base, sample.accounts));
      for (const auto& [k, v] : last_fold.folded) retire(k, v);
      drop_folded(last_fold.folded, sample, before ? &*before : nullptr);
      last_fold.folded.clear();
    } else if (fold_base_ns) {
      return;
    }
    fold_base = sample.accounts;
    fold_base_ns = sample.time_ns;
  }

  // Processes with no thread left: no more mmap records will come for them; their state is
  // dropped at the next refresh. Those of the threads just found dead, and any other process
  // whose mappings are held (read for a stack, or whose threads were never announced) that no
  // longer exists.
  void note_exited_processes(const std::map<uint32_t, uint32_t>& tids,
                             const std::map<uint32_t, std::set<int32_t>>& dead_stacks) {
    std::unordered_set<uint32_t> live_pids;
    for (const auto& [tid, pid] : thread_pid) live_pids.insert(pid);
    std::set<uint32_t> candidates(mapped_pids.begin(), mapped_pids.end());
    for (const auto& [tid, pid] : tids) candidates.insert(pid);
    for (uint32_t pid : candidates) {
      if (pid == 0 || live_pids.count(pid) || exited.count(pid) || thread_alive(pid, pid)) continue;
      auto& ids = exited[pid];
      if (auto it = dead_stacks.find(pid); it != dead_stacks.end())
        ids.insert(it->second.begin(), it->second.end());
    }
  }

  // Names looked up for threads kscope was never told of (comm_of() of a tid without a process
  // event) are a cache: dropped once no account of the sample refers to the thread.
  void forget_names_of_unknown_threads(const TopSample& sample) {
    if (thread_names.size() <= thread_pid.size()) return;
    std::unordered_set<uint32_t> referenced;
    for (const auto& [k, v] : sample.accounts) referenced.insert(k.tid);
    for (auto it = thread_names.begin(); it != thread_names.end();)
      it = !thread_pid.count(it->first) && !referenced.count(it->first) && it->first != 0
               ? thread_names.erase(it)
               : std::next(it);
  }

  // The native walk's user stacks that no account refers to (threads that exited inside a
  // living process, sampled stacks of accounts already pruned, exited processes) are deleted
  // from the kernel's map, race-free (TopTracer::reclaim_user_stacks). `sample` is read before
  // pruning: the rows of the table just built keep their stacks until the next pass.
  TopTracer::UserStackReclaim last_reclaim;
  uint64_t ustacks_reclaimed = 0, ustacks_restored = 0, reclaim_passes = 0;
  void reclaim_user_stacks(const TopSample& sample) {
    if (!tracer->native_unwind()) return;
    std::unordered_set<int32_t> in_use;
    for (const auto& [k, v] : sample.accounts)
      if (k.ustack >= 0) in_use.insert(k.ustack);
    last_reclaim = tracer->reclaim_user_stacks(in_use);
    ++reclaim_passes;
    ustacks_reclaimed += last_reclaim.deleted;
    ustacks_restored += last_reclaim.restored;
    if (last_reclaim.deleted_ids.empty()) return;
    // Cached frames of a deleted id go: another stack may take the id later.
    std::unordered_set<int32_t> gone(last_reclaim.deleted_ids.begin(),
                                     last_reclaim.deleted_ids.end());
    for (auto it = user_cache.begin(); it != user_cache.end();)
      it = gone.count(it->first.second) ? user_cache.erase(it) : std::next(it);
    last_reclaim.deleted_ids.clear();
  }

  // The kernel's stack map (kernel stacks, and user stacks with --call-graph fp): ids nothing
  // refers to are deleted, race-free as far as the map type allows (TopTracer::reclaim_stacks).
  // Frame-pointer user stacks are left to drop_exited() (deleted when their process has exited;
  // the retired store reads them by id until then), so they are never deleted here.
  TopTracer::StackReclaim last_kreclaim;
  uint64_t kstacks_reclaimed = 0, kstacks_kept = 0, kstacks_reused = 0;
  std::unordered_set<int32_t> fp_user_ids;
  void reclaim_stacks(const TopSample& sample) {
    bool fp_user = options.trace.user_stacks && !tracer->native_unwind();
    std::unordered_set<int32_t> in_use;
    for (const auto& [k, v] : sample.accounts) {
      if (k.kstack >= 0) in_use.insert(k.kstack);
      if (fp_user && k.ustack >= 0) fp_user_ids.insert(k.ustack);
    }
    last_kreclaim = tracer->reclaim_stacks(in_use, fp_user_ids);
    kstacks_reclaimed += last_kreclaim.deleted;
    kstacks_kept += last_kreclaim.kept;
    kstacks_reused += last_kreclaim.reused;
    for (int32_t id : last_kreclaim.dropped_ids) kernel_cache.erase(id);
    last_kreclaim.dropped_ids.clear();
  }

  // KSCOPE_TOP_SIZES=FILE (a diagnostic for the soak and the churn tests, docs/RELIABILITY.md):
  // at every pass of prune(), one line of what kscope top holds per thread, process and stack,
  // as key=value counts, to tell which of them grows with churn.
  std::FILE* sizes_out = nullptr;
  void write_sizes(const TopSample& sample) {
    if (!sizes_out) return;
    TopRetired::Sizes r = retired.sizes();
    SymbolizerStats sym = symbolizer->stats();
    std::fprintf(
        sizes_out,
        "t_ms=%llu accounts=%zu thread_names=%zu thread_pid=%zu mapped_pids=%zu procmaps=%zu "
        "exited=%zu kernel_cache=%zu user_cache=%zu build_ids=%zu retired_accounts=%zu "
        "retired_threads=%zu retired_stacks=%zu retired_frames=%zu retired_strings=%zu "
        "symbolizer_processes=%zu symbolizer_binaries=%zu ustacks=%zu kstacks=%zu "
        "kstacks_reclaimed=%llu kstacks_kept=%llu kstacks_reused=%llu retired_kstacks=%zu\n",
        static_cast<unsigned long long>((sample.time_ns - tracer->start_ns()) / 1'000'000),
        sample.accounts.size(), thread_names.size(), thread_pid.size(), mapped_pids.size(),
        procmaps.size(), exited.size(), kernel_cache.size(), user_cache.size(), build_ids.size(),
        r.accounts, r.threads, r.stacks, r.frames, r.strings, sym.processes, sym.binaries_loaded,
        last_reclaim.stored - last_reclaim.deleted + last_reclaim.restored,
        last_kreclaim.stored - last_kreclaim.deleted,
        static_cast<unsigned long long>(kstacks_reclaimed),
        static_cast<unsigned long long>(kstacks_kept),
        static_cast<unsigned long long>(kstacks_reused), r.kernel_stacks);
    std::fflush(sizes_out);
  }

  UnwindSummary unwind_summary() {
    UnwindSummary u = tracer->unwind_report();
    if (!tracer->native_unwind()) return u;
    if (!reclaim_passes) {
      u.stacks_stored = tracer->user_stack_entries().first;
    } else {
      u.stacks_stored = last_reclaim.stored - last_reclaim.deleted + last_reclaim.restored;
    }
    u.stacks_capacity = options.trace.max_user_stacks;
    u.stacks_reclaimed = ustacks_reclaimed;
    u.stacks_restored = ustacks_restored;
    return u;
  }

  // Mapping records come for every process on the machine, before its process event if any:
  // those of processes never announced (filtered out, or gone before they ran a tracked switch)
  // are forgotten once the process no longer exists, so they do not pile up with churn.
  void sweep_unannounced() {
    for (auto it = procmaps.begin(); it != procmaps.end();) {
      if (!mapped_pids.count(it->first) && ::kill(static_cast<pid_t>(it->first), 0) != 0 &&
          errno == ESRCH)
        it = procmaps.erase(it);
      else
        ++it;
    }
  }

  // Drops what is kept per process for the processes found exited at the previous refresh:
  // mappings, the symbolizer's and the unwinder's state, cached stacks, and the user stacks no
  // live account refers to. What the whole-run profile needs of them is in `retired`.
  void drop_exited(const TopSample& sample) {
    if (exited.empty()) return;
    std::unordered_set<int32_t> in_use;
    for (const auto& [k, v] : sample.accounts) {
      in_use.insert(k.kstack);
      in_use.insert(k.ustack);
    }
    std::vector<int32_t> unused;
    for (const auto& [pid, ids] : exited) {
      if (thread_alive(pid, pid)) continue;  // the pid was reused meanwhile: a new process
      procmaps.erase(pid);
      mapped_pids.erase(pid);  // a process reusing the pid is read afresh
      symbolizer->forget_process(pid);
      tracer->forget_unwind_process(pid);  // its files' tables are reused once no process maps them
      for (auto it = user_cache.lower_bound({pid, INT32_MIN});
           it != user_cache.end() && it->first.first == pid;)
        it = user_cache.erase(it);
      for (int32_t id : ids)
        if (!in_use.count(id)) unused.push_back(id);
    }
    exited.clear();
    // The native walk's stacks are reclaimed by reclaim_user_stacks() (race-free); the
    // frame-pointer walk's share the kernel's stack map, where an id is a bucket.
    if (!tracer->native_unwind()) {
      tracer->forget_user_stacks(unused);
      for (int32_t id : unused) fp_user_ids.erase(id);
    }
  }

  TopTable make_table(const TopSample* base, const TopSample& cur, TopGroupBy by, TopSortKey sort) {
    TopTable t = build_top_table(
        base, cur, tracer->start_ns(), by, sort,
        [this](uint32_t pid, uint32_t tid) { return comm_of(pid, tid); }, options.hide_pid);
    t.ncpus = tracer->ncpus();
    t.stacks = options.trace.kernel_stacks || options.trace.user_stacks;
    t.sample_hz = tracer->sample_hz();
    t.sampler_lowered = tracer->sampler_lowered();
    t.cpu_busy = last_busy;
    t.scope = options.scope;
    t.tables_pending = tables_queue.size();
    return t;
  }

  std::string build_id_of(const std::string& path) {
    if (path.empty()) return {};
    auto it = build_ids.find(path);
    if (it != build_ids.end()) return it->second;
    auto id = read_build_id(path);
    return build_ids[path] = id ? *id : std::string();
  }

  // Cumulative totals of every account since tracing started: exited threads' final values
  // plus the live accounts of `sample`, with on-CPU time by stack (scaled samples). The hidden
  // process (kscope itself) is left out, as in the tables.
  ProfileIncrements::Totals run_totals(const TopSample& sample) {
    ProfileIncrements::Totals all = retired.values();
    for (const auto& [k, v] : sample.accounts) all[k] += v;
    if (options.hide_pid)
      std::erase_if(all, [&](const auto& kv) { return kv.first.pid == options.hide_pid; });
    scale_oncpu(all);
    return all;
  }

  StackProfile whole_run_profile(const TopSample& final_sample) {
    std::vector<std::pair<TopAccountKey, TopProfileValues>> values;
    for (const auto& [k, v] : run_totals(final_sample))
      if (!v.empty()) values.emplace_back(k, profile_values(v));
    std::sort(values.begin(), values.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return profile_of(values, final_sample.time_ns);
  }

  // A symbolized profile of per-account values (in the order given), up to `time_ns`.
  StackProfile profile_of(const std::vector<std::pair<TopAccountKey, TopProfileValues>>& values,
                          uint64_t time_ns) {
    TopProfileBuilder builder([this](const std::string& path) { return build_id_of(path); });
    for (const auto& [k, v] : values)
      builder.add(k.pid, k.tid, comm_of(k.pid, k.tid), view(k.pid, k.kstack, k.ustack),
                  std::vector<int64_t>(v.begin(), v.end()));
    return builder.take(time_ns - tracer->start_ns());
  }

  // ---- Recording checkpoints: what a crash may lose is what came after the last one ----
  static constexpr uint64_t kCheckpointNs = 1'000'000'000;
  ProfileIncrements increments;
  uint64_t last_checkpoint_ns = 0;

  // Writes what the accounts grew by since the previous increment, and the slices and thread
  // names buffered so far.
  Status write_increment(const TopSample& sample) {
    auto delta = increments.next(run_totals(sample));
    if (!delta.empty())
      KSCOPE_TRY(
          recording->add_profile_increment(profile_of(delta, sample.time_ns), sample.counters));
    KSCOPE_TRY(recording->flush());
    last_checkpoint_ns = sample.time_ns;
    return {};
  }

  // About once a second, from the poll loop of every mode (batch, --once, live screen).
  Status checkpoint() {
    if (!recording || !options.keep_whole_run) return {};
    uint64_t now = monotonic_ns();
    if (last_checkpoint_ns == 0) last_checkpoint_ns = tracer->start_ns();
    if (now - last_checkpoint_ns < kCheckpointNs) return {};
    KSCOPE_ASSIGN_OR_RETURN(TopSample sample, take_sample());
    // A write error does not stop the measurement; it is reported by finish(), where the
    // writer refuses to finish a recording with a failed write.
    if (Status st = write_increment(sample); !st && recording_error.ok()) recording_error = st;
    last_checkpoint_ns = sample.time_ns;
    return {};
  }
  Status recording_error;

  // Without refreshes (--once), exited threads are still retired (kept for the whole-run table)
  // and exited processes dropped, about once a second, against a baseline of its own.
  static constexpr uint64_t kHousekeepingNs = 1'000'000'000;
  std::optional<TopSample> housekeeping_prev;
  uint64_t last_housekeeping_ns = 0;
  Status housekeep() {
    if (options.refreshes) return {};
    uint64_t now = monotonic_ns();
    if (now - last_housekeeping_ns < kHousekeepingNs) return {};
    last_housekeeping_ns = now;
    KSCOPE_ASSIGN_OR_RETURN(TopSample sample, take_sample());
    prune(sample, housekeeping_prev);
    housekeeping_prev = std::move(sample);
    return {};
  }
};

TopSession::TopSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TopSession::~TopSession() {
  if (impl_ && impl_->sizes_out) std::fclose(impl_->sizes_out);
}

Result<std::unique_ptr<TopSession>> TopSession::create(const TopSessionOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  // One set of open files for the symbolizer and the unwinder: each file is opened once.
  if (!impl->options.symbols.open_files)
    impl->options.symbols.open_files = std::make_shared<OpenFiles>();
  if (!impl->options.trace.open_files)
    impl->options.trace.open_files = impl->options.symbols.open_files;
  // Hidden, kscope is not traced at all (its time comes from its own clock, TopSample).
  impl->options.trace.exclude_self = impl->options.hide_pid == static_cast<uint32_t>(::getpid());
  impl->symbolizer = std::make_unique<Symbolizer>(impl->options.symbols);
  if (!options.recording_path.empty()) {
    // Before tracing: an unwritable path fails first.
    KSCOPE_ASSIGN_OR_RETURN(auto writer,
                            TopRecordingWriter::create(options.recording_path, options.meta));
    impl->recording = std::move(writer);
  }
  KSCOPE_ASSIGN_OR_RETURN(impl->tracer, TopTracer::create(impl->options.trace));
  KSCOPE_ASSIGN_OR_RETURN(impl->mmaps, MmapWatcher::open());
  Impl* raw = impl.get();
  impl->tracer->on_process([raw](const TopProcessEvent& e) { raw->on_process(e); });
  if (impl->recording) {
    impl->tracer->on_slice([raw](const TopSliceEvent& e) {
      uint64_t start = raw->tracer->start_ns();
      (void)raw->recording->add_slice(
          TopSlice{e.pid, e.tid, e.cpu, e.start_ns > start ? e.start_ns - start : 0,
                   e.end_ns > start ? e.end_ns - start : 0, e.voluntary, e.comm});
    });
  }
  impl->cpu_prev = read_cpu_times();
  impl->cpu_start = impl->cpu_prev;
  if (const char* path = std::getenv("KSCOPE_TOP_SIZES"); path && *path) {
    impl->sizes_out = std::fopen(path, "we");
    if (!impl->sizes_out)
      return make_error(fmt::format("KSCOPE_TOP_SIZES: cannot write {}", path), errno);
  }
  impl->timings.startup = impl->tracer->startup_phases();
  uint64_t begin = monotonic_ns();
  impl->tables_now = !options.defer_tables;
  for (pid_t pid : options.trace.pids)
    impl->read_mappings(static_cast<uint32_t>(pid), monotonic_ns());
  for (const ThreadTarget& t : options.trace.threads)
    impl->read_mappings(static_cast<uint32_t>(t.tgid), monotonic_ns());
  impl->tables_now = false;
  impl->timings.startup.emplace_back("targets' mappings and unwind tables", monotonic_ns() - begin);
  return std::unique_ptr<TopSession>(new TopSession(std::move(impl)));
}

Result<uint64_t> top_fold_idle_ns(uint64_t configured) {
  const char* env = std::getenv("KSCOPE_TOP_FOLD_SECONDS");
  if (!env) return configured;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(env, &end, 10);
  if (errno != 0 || end == env || *end != '\0' || v > 86400 || *env == '-')
    return make_error(
        fmt::format("KSCOPE_TOP_FOLD_SECONDS={}: not a number of seconds from 0 to 86400", env));
  return static_cast<uint64_t>(v) * 1'000'000'000ull;
}

UnwindSummary TopSession::unwind_report() { return impl_->unwind_summary(); }
TopTimings TopSession::timings() const { return impl_->timings; }

TopSession::FoldReport TopSession::fold_report() const {
  const TopTracer::FoldResult& f = impl_->last_fold;
  return FoldReport{impl_->options.fold_idle_ns, f.folds, f.carries, f.newest_kept, f.carried_now};
}

TopSession::KernelStackReport TopSession::kernel_stack_report() {
  KernelStackReport r;
  std::tie(r.stored, r.capacity) = impl_->tracer->stack_entries();
  r.reclaimed = impl_->kstacks_reclaimed;
  r.kept = impl_->kstacks_kept;
  r.reused = impl_->kstacks_reused;
  return r;
}

uint64_t TopSession::start_ns() const { return impl_->tracer->start_ns(); }
int TopSession::ncpus() const { return impl_->tracer->ncpus(); }

std::string TopSession::scope() const { return impl_->options.scope; }
size_t TopSession::tables_pending() const { return impl_->tables_queue.size(); }

Status TopSession::poll(int timeout_ms) {
  // Queued tables cut the wait short (a poll that waits would delay them). New processes first:
  // their mappings are read while they live.
  if (!impl_->tables_queue.empty()) timeout_ms = 0;
  KSCOPE_TRY(impl_->tracer->poll(timeout_ms, Impl::kEventsBudgetNs));
  impl_->drain_mmaps();
  if (!impl_->tables_queue.empty()) impl_->load_queued_tables();
  KSCOPE_TRY(impl_->housekeep());
  return impl_->checkpoint();
}

bool TopSession::targets_gone() {
  const auto& pids = impl_->options.trace.pids;
  const auto& threads = impl_->options.trace.threads;
  if (!threads.empty()) {
    for (const ThreadTarget& t : threads)
      if (thread_alive(static_cast<uint32_t>(t.tgid), static_cast<uint32_t>(t.tid))) return false;
    return true;
  }
  if (pids.empty()) return false;
  for (pid_t pid : pids)
    if (thread_alive(static_cast<uint32_t>(pid), static_cast<uint32_t>(pid))) return false;
  return true;
}

Result<TopTable> TopSession::refresh(TopGroupBy by, TopSortKey sort) {
  Impl& s = *impl_;
  KSCOPE_TRY(s.tracer->poll(0, Impl::kEventsBudgetNs));
  s.drain_mmaps();
  KSCOPE_ASSIGN_OR_RETURN(TopSample cur, s.take_sample());
  if (!s.timings.first_table_ns) s.timings.first_table_ns = cur.time_ns - s.tracer->start_ns();
  s.update_busy();
  TopTable t = s.make_table(s.prev ? &*s.prev : nullptr, cur, by, sort);
  if (s.tracer->native_unwind()) t.unwind = s.unwind_summary();
  if (s.recording) (void)s.recording->add_interval(t, s.tracer->start_ns());
  s.prune(cur, s.prev);
  s.prev_prev = std::move(s.prev);
  s.prev = std::move(cur);
  return t;
}

TopTable TopSession::regroup(TopGroupBy by, TopSortKey sort) {
  Impl& s = *impl_;
  if (!s.prev) return TopTable{};
  return s.make_table(s.prev_prev ? &*s.prev_prev : nullptr, *s.prev, by, sort);
}

Result<TopTable> TopSession::table_since_start(TopGroupBy by, TopSortKey sort) {
  Impl& s = *impl_;
  KSCOPE_TRY(s.tracer->poll(0, Impl::kEventsBudgetNs));
  s.drain_mmaps();
  KSCOPE_ASSIGN_OR_RETURN(TopSample cur, s.take_sample());
  if (!s.timings.first_table_ns) s.timings.first_table_ns = cur.time_ns - s.tracer->start_ns();
  // CPU busy over the whole run.
  s.cpu_prev = s.cpu_start;
  s.update_busy();
  // Exited threads' accounts were moved out by refreshes; put them back for a whole-run table.
  for (const auto& [k, v] : s.retired.values()) cur.accounts[k] += v;
  TopTable t = s.make_table(nullptr, cur, by, sort);
  if (s.tracer->native_unwind()) t.unwind = s.unwind_summary();
  if (s.recording) (void)s.recording->add_interval(t, s.tracer->start_ns());
  return t;
}

TopTable TopSession::group_stacks(const TopRow& row, TopGroupBy row_group_by, TopSortKey sort) {
  Impl& s = *impl_;
  if (!s.prev) return TopTable{};
  TopTable t = build_group_stack_table(
      s.prev_prev ? &*s.prev_prev : nullptr, *s.prev, s.tracer->start_ns(), row, row_group_by, sort,
      [&s](uint32_t pid, uint32_t tid) { return s.comm_of(pid, tid); });
  t.ncpus = s.tracer->ncpus();
  t.sample_hz = s.tracer->sample_hz();
  t.sampler_lowered = s.tracer->sampler_lowered();
  t.stacks = s.options.trace.kernel_stacks || s.options.trace.user_stacks;
  return t;
}

TopStackView TopSession::stack_view(const TopRow& row) {
  return impl_->view(row.stack_pid, row.kstack, row.ustack);
}

Result<TopSummary> TopSession::finish() {
  Impl& s = *impl_;
  KSCOPE_TRY(s.tracer->poll(0, Impl::kEventsBudgetNs));
  s.drain_mmaps();
  KSCOPE_ASSIGN_OR_RETURN(TopSample final_sample, s.take_sample());
  TopSummary summary;
  summary.counters = final_sample.counters;
  summary.diagnostics = s.tracer->diagnostics();
  summary.sample_hz = s.tracer->sample_hz();
  summary.sampler_lowered = s.tracer->sampler_lowered();
  if (s.options.keep_whole_run) summary.profile = s.whole_run_profile(final_sample);
  if (s.recording) {
    // The last increment makes the increments add up to the profile block exactly.
    KSCOPE_TRY(s.recording_error);
    if (s.options.keep_whole_run) KSCOPE_TRY(s.write_increment(final_sample));
    KSCOPE_TRY(s.recording->finish(summary.profile, summary.counters));
    summary.recording_note = s.recording->describe();
  }
  summary.symbol_sources = s.symbolizer->binary_sources();
  return summary;
}

}  // namespace kscope
