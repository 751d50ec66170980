// The native unwinder's BPF maps (bpf/unwind.bpf.h: unwind_rows, unwind_files, unwind_procs) of
// any BPF object that includes the walker, written for unwind::TableLoader with libbpf. Used by
// kscope top and kscope faults --stacks.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "bpf/libbpf_util.h"
#include "model/unwind_early_counts.h"
#include "unwind/table_loader.h"

struct bpf_object;
#include "util/result.h"

namespace kscope {

class BpfUnwindMaps : public unwind::UnwindMapWriter {
 public:
  // inodes: the unwind_inodes map (file identity -> table), -1 for none.
  BpfUnwindMaps(int rows, int files, int procs, int inodes = -1)
      : rows_(rows), files_(files), procs_(procs), inodes_(inodes) {}
  Status write_rows(uint32_t first, std::span<const kscope_unwind_row> rows) override;
  Status write_file(uint32_t id, const kscope_unwind_file& file) override;
  Status write_process(uint32_t pid, const kscope_unwind_process& process) override;
  void delete_process(uint32_t pid) override;
  Status write_identity(const kscope_unwind_file_key& key,
                        const kscope_unwind_file_info& info) override;
  void delete_identity(const kscope_unwind_file_key& key) override;

 private:
  int rows_, files_, procs_, inodes_;
  bool batch_ok_ = true;
  uint64_t delete_failures_ = 0;
};

// Before loading an object that includes bpf/unwind.bpf.h: sizes the early-mapping maps
// (unwind_inodes: one entry per table file; unwind_early: processes whose mappings are noted at
// execve/mmap) and loads the programs that keep the noted mappings (mmap exit, munmap entry,
// process exit) only with the native walk. Their attachment is separate (attach_unwind_early),
// so a kernel without the syscall tracepoints still runs.
Status configure_unwind_early(bpf_object* obj, bool native, uint32_t files, uint32_t processes);
// After loading: attaches them (tracepoints syscalls/sys_exit_mmap, syscalls/sys_enter_munmap,
// tp_btf/sched_process_exit). Without them, libraries mapped after execve are found only once
// user space read the process's mappings. The syscalls tracepoints need tracefs, which it
// mounts when no tracing directory is there (bpf/tracefs.h).
Result<std::vector<bpf::Link>> attach_unwind_early(bpf_object* obj);
// Once per process, on stderr: that kscope mounted tracefs (a change to the machine it leaves).
void report_tracefs_mount(const char* tool);
// The rows map's capacity: `configured`, or KSCOPE_UNWIND_ROWS when set (a positive number of
// rows, at most 2^28: a knob for tests and benchmarks that need tables freed for room).
Result<uint32_t> unwind_rows_capacity(uint32_t configured);
// The early mappings' counters, summed over CPUs, from an object's unwind_counters map (fd).
UnwindEarlyCounts read_unwind_early_counts(int counters_fd);

}  // namespace kscope
