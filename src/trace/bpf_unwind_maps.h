// The native unwinder's BPF maps (bpf/unwind.bpf.h: unwind_rows, unwind_files, unwind_procs) of
// any BPF object that includes the walker, written for unwind::TableLoader with libbpf. Used by
// kscope top and kscope faults --stacks.
#pragma once

#include <cstdint>
#include <span>

#include "unwind/table_loader.h"
#include "util/result.h"

namespace kscope {

class BpfUnwindMaps : public unwind::UnwindMapWriter {
 public:
  BpfUnwindMaps(int rows, int files, int procs) : rows_(rows), files_(files), procs_(procs) {}
  Status write_rows(uint32_t first, std::span<const kscope_unwind_row> rows) override;
  Status write_file(uint32_t id, const kscope_unwind_file& file) override;
  Status write_process(uint32_t pid, const kscope_unwind_process& process) override;
  void delete_process(uint32_t pid) override;

 private:
  int rows_, files_, procs_;
  bool batch_ok_ = true;
  uint64_t delete_failures_ = 0;
};

}  // namespace kscope
