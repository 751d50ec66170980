#include "trace/bpf_unwind_maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <vector>

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

Status configure_unwind_early(bpf_object* obj, bool native, uint32_t files, uint32_t processes) {
  bpf_map* inodes = bpf_object__find_map_by_name(obj, "unwind_inodes");
  bpf_map* early = bpf_object__find_map_by_name(obj, "unwind_early");
  bpf_program* prog = bpf_object__find_program_by_name(obj, "kscope_unwind_mmap_exit");
  if (!inodes || !early || !prog) return make_error("the BPF object has no early unwind maps");
  if (int err = bpf_map__set_max_entries(inodes, native ? std::max(files, 1u) : 1u))
    return make_error("sizing the unwinder's identity map failed", -err);
  if (int err = bpf_map__set_max_entries(early, native ? std::clamp(processes, 1u, 4096u) : 1u))
    return make_error("sizing the unwinder's early-mapping map failed", -err);
  bpf_program__set_autoload(prog, native);
  bpf_program__set_autoattach(prog, false);
  return {};
}

Result<bpf::Link> attach_unwind_mmap_exit(bpf_object* obj) {
  bpf_program* prog = bpf_object__find_program_by_name(obj, "kscope_unwind_mmap_exit");
  if (!prog) return make_error("the BPF object has no kscope_unwind_mmap_exit program");
  bpf_link* link = bpf_program__attach(prog);
  if (!link) return make_error("attaching tracepoint syscalls/sys_exit_mmap failed", errno);
  return bpf::Link(link);
}

}  // namespace kscope
