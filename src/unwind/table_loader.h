// Puts unwind tables where the BPF walker (bpf/unwind.bpf.h) finds them: each file's rows once
// (shared by every process that maps it, keyed by build-id or device+inode+mtime) into the rows
// array, its row range into the files array, and each process's executable mappings, sorted,
// into the per-process hash map. Any BPF object that includes bpf/unwind.bpf.h passes a writer
// for its maps; nothing here depends on which program walks.
//
// Memory is bounded by the maps' sizes: a file that does not fit is skipped and counted (its
// frames then end the walk with the reason "no table"), never a crash or a silent cap.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "unwind/unwind_table.h"
#include "util/result.h"

namespace kscope::unwind {

// One executable mapping of a process (what /proc/PID/maps or a perf mmap record says).
struct ExecMapping {
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t offset = 0;
  uint64_t inode = 0;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  std::string path;  // file path, "[vdso]", or empty (anonymous)
};

// Where the tables go: the BPF maps of whichever object includes bpf/unwind.bpf.h (the tracer
// that owns them implements this with libbpf; tests with plain memory).
class UnwindMapWriter {
 public:
  virtual ~UnwindMapWriter() = default;
  virtual Status write_rows(uint32_t first, std::span<const kscope_unwind_row> rows) = 0;
  virtual Status write_file(uint32_t id, const kscope_unwind_file& file) = 0;
  virtual Status write_process(uint32_t pid, const kscope_unwind_process& process) = 0;
  virtual void delete_process(uint32_t pid) = 0;
};

struct UnwindLoadStats {
  size_t processes = 0;  // process entries written
  size_t files = 0;      // files whose rows are loaded
  size_t rows = 0;       // rows loaded
  size_t rows_capacity = 0;
  size_t files_no_table = 0;    // files without a usable .eh_frame (or unreadable)
  size_t files_no_room = 0;     // files skipped because the rows map is full
  size_t mappings_dropped = 0;  // executable mappings beyond KSCOPE_UNWIND_MAX_MAPPINGS
  size_t unsupported_rows = 0;  // loaded rows with a rule the walker cannot follow
  uint64_t table_bytes() const { return rows * sizeof(kscope_unwind_row); }
};

class TableLoader {
 public:
  // rows_capacity/files_capacity: the sizes of the rows and files maps.
  TableLoader(UnwindMapWriter& writer, uint32_t rows_capacity, uint32_t files_capacity);
  // Loads what is missing of the files `mappings` use and writes the process's entry.
  Status load_process(uint32_t pid, const std::vector<ExecMapping>& mappings);
  void forget_process(uint32_t pid);
  const UnwindLoadStats& stats() const { return stats_; }
  // Why the last file of this path could not be loaded (for -v), empty when it was.
  const std::map<std::string, std::string>& failures() const { return failures_; }

 private:
  struct LoadedFile {
    uint32_t file_id = KSCOPE_UNWIND_NO_FILE;
    std::vector<LoadSegment> loads;
  };
  const LoadedFile* file_for(uint32_t pid, const ExecMapping& m);
  const LoadedFile* vdso_file(const ExecMapping& m);
  const LoadedFile* install(const std::string& key, Result<ElfUnwindSource> source,
                            const std::string& what);
  UnwindMapWriter& writer_;
  uint32_t rows_capacity_;
  uint32_t files_capacity_;
  UnwindLoadStats stats_;
  uint32_t next_row_ = 0;
  uint32_t next_file_ = 0;
  std::map<std::string, std::shared_ptr<LoadedFile>> by_key_;    // build-id / inode key
  std::map<std::string, std::shared_ptr<LoadedFile>> by_inode_;  // dev:ino:size:mtime
  std::map<std::string, std::string> failures_;
  std::map<uint32_t, bool> pids_;  // processes with an entry
  std::shared_ptr<LoadedFile> vdso_;
  uint64_t vdso_size_ = 0;
  bool vdso_tried_ = false;
};

}  // namespace kscope::unwind
