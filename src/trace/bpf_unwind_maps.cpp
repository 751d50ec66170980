#include "trace/bpf_unwind_maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bpf/tracefs.h"

namespace kscope {

Status BpfUnwindMaps::write_rows(uint32_t first, std::span<const kscope_unwind_row> rows) {
  constexpr size_t kChunk = 8192;
  std::vector<uint32_t> keys;
  for (size_t done = 0; done < rows.size();) {
    size_t n = std::min(kChunk, rows.size() - done);
    if (batch_ok_) {
      keys.resize(n);
      for (size_t i = 0; i < n; ++i) keys[i] = first + static_cast<uint32_t>(done + i);
      uint32_t count = static_cast<uint32_t>(n);
      LIBBPF_OPTS(bpf_map_batch_opts, opts);
      if (bpf_map_update_batch(rows_, keys.data(), rows.data() + done, &count, &opts) == 0) {
        done += n;
        continue;
      }
      if (errno != EINVAL && errno != ENOTSUP && errno != EOPNOTSUPP)
        return errno_error("writing unwind rows to the BPF map failed");
      batch_ok_ = false;  // an old kernel: one element at a time
    }
    for (size_t i = 0; i < n; ++i) {
      uint32_t key = first + static_cast<uint32_t>(done + i);
      if (bpf_map_update_elem(rows_, &key, &rows[done + i], BPF_ANY) != 0)
        return errno_error("writing unwind rows to the BPF map failed");
    }
    done += n;
  }
  return {};
}
Status BpfUnwindMaps::write_file(uint32_t id, const kscope_unwind_file& file) {
  if (bpf_map_update_elem(files_, &id, &file, BPF_ANY) != 0)
    return errno_error("writing an unwind file entry to the BPF map failed");
  return {};
}
Status BpfUnwindMaps::write_process(uint32_t pid, const kscope_unwind_process& process) {
  if (bpf_map_update_elem(procs_, &pid, &process, BPF_ANY) != 0)
    return errno_error(
        fmt::format("writing the mappings of process {} to the BPF map failed", pid));
  return {};
}
void BpfUnwindMaps::delete_process(uint32_t pid) {
  // ENOENT when it was never loaded: nothing to undo.
  if (bpf_map_delete_elem(procs_, &pid) != 0 && errno != ENOENT) ++delete_failures_;
}

Status BpfUnwindMaps::write_identity(const kscope_unwind_file_key& key,
                                     const kscope_unwind_file_info& info) {
  if (inodes_ < 0) return {};
  if (bpf_map_update_elem(inodes_, &key, &info, BPF_ANY) != 0)
    return errno_error("writing a file identity to the BPF map failed");
  return {};
}
void BpfUnwindMaps::delete_identity(const kscope_unwind_file_key& key) {
  if (inodes_ >= 0) (void)bpf_map_delete_elem(inodes_, &key);
}

namespace {

// The early-mapping programs of bpf/unwind.bpf.h and the tracepoint each is attached to.
constexpr std::pair<const char*, const char*> kEarlyPrograms[] = {
    {"kscope_unwind_mmap_exit", "syscalls/sys_exit_mmap"},
    {"kscope_unwind_munmap_enter", "syscalls/sys_enter_munmap"},
    {"kscope_unwind_process_exit", "sched/sched_process_exit"},
};

}  // namespace

Status configure_unwind_early(bpf_object* obj, bool native, uint32_t files, uint32_t processes) {
  bpf_map* inodes = bpf_object__find_map_by_name(obj, "unwind_inodes");
  bpf_map* early = bpf_object__find_map_by_name(obj, "unwind_early");
  if (!inodes || !early) return make_error("the BPF object has no early unwind maps");
  if (int err = bpf_map__set_max_entries(inodes, native ? std::max(files, 1u) : 1u))
    return make_error("sizing the unwinder's identity map failed", -err);
  // Entries are allocated as processes are noted (BPF_F_NO_PREALLOC), so the bound costs
  // nothing until used.
  if (int err = bpf_map__set_max_entries(early, native ? std::clamp(processes, 1u, 4096u) : 1u))
    return make_error("sizing the unwinder's early-mapping map failed", -err);
  for (const auto& [name, tp] : kEarlyPrograms) {
    bpf_program* prog = bpf_object__find_program_by_name(obj, name);
    if (!prog) return make_error(fmt::format("the BPF object has no {} program", name));
    bpf_program__set_autoload(prog, native);
    bpf_program__set_autoattach(prog, false);
  }
  return {};
}

Result<std::vector<bpf::Link>> attach_unwind_early(bpf_object* obj) {
  const bpf::TracefsStatus& tracefs = bpf::ensure_tracefs();
  if (!tracefs.ready)
    return make_error("the early unwind mappings' syscalls tracepoints cannot attach: " +
                      tracefs.error);
  std::vector<bpf::Link> links;
  for (const auto& [name, tp] : kEarlyPrograms) {
    bpf_program* prog = bpf_object__find_program_by_name(obj, name);
    if (!prog) return make_error(fmt::format("the BPF object has no {} program", name));
    bpf_link* link = bpf_program__attach(prog);
    if (!link) return make_error(fmt::format("attaching tracepoint {} failed", tp), errno);
    links.emplace_back(link);
  }
  return links;
}

void report_tracefs_mount(const char* tool) {
  static std::atomic<bool> reported{false};
  const bpf::TracefsStatus& tracefs = bpf::ensure_tracefs();
  if (tracefs.mounted_now && !reported.exchange(true))
    std::fprintf(stderr,
                 "%s: tracefs was not mounted; mounted it at %s (the syscalls tracepoints need "
                 "it)\n",
                 tool, tracefs.path.c_str());
}

Result<uint32_t> unwind_rows_capacity(uint32_t configured) {
  const char* env = std::getenv("KSCOPE_UNWIND_ROWS");
  if (!env) return configured;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(env, &end, 10);
  if (errno != 0 || end == env || *end != '\0' || v == 0 || v > (1ull << 28))
    return make_error(
        fmt::format("KSCOPE_UNWIND_ROWS={}: not a number of rows from 1 to {}", env, 1ull << 28));
  return static_cast<uint32_t>(v);
}

UnwindEarlyCounts read_unwind_early_counts(int counters_fd) {
  auto sum = [&](uint32_t idx) -> uint64_t {
    auto v = bpf::read_percpu_u64(counters_fd, idx);
    uint64_t s = 0;
    if (v)
      for (uint64_t x : *v) s += x;
    return s;
  };
  UnwindEarlyCounts c;
  c.noted = sum(KSCOPE_UNWIND_EARLY_NOTED);
  c.dropped = sum(KSCOPE_UNWIND_EARLY_DROPPED);
  c.removed = sum(KSCOPE_UNWIND_EARLY_REMOVED);
  c.found = sum(KSCOPE_UNWIND_EARLY_FRAMES);
  c.missed = sum(KSCOPE_UNWIND_EARLY_MISSES);
  return c;
}

}  // namespace kscope
