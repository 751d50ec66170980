// Puts unwind tables where the BPF walker (bpf/unwind.bpf.h) finds them: each file's rows once
// (shared by every process that maps it, keyed by build-id or device+inode+mtime) into the rows
// array, its row range into the files array, and each process's executable mappings, sorted,
// into the per-process hash map. Any BPF object that includes bpf/unwind.bpf.h passes a writer
// for its maps; nothing here depends on which program walks.
//
// Memory is bounded by the maps' sizes. A file's rows stay while a process whose entry was
// written maps it; once none does (forget_process, or a process's new mappings without it) they
// may be reused, least recently unused first, when a new file needs room and at least
// reuse_delay has passed (a walk that read a process entry just before it was deleted finishes
// long before). A file that does not fit even then is skipped and counted (its frames end the
// walk with the reason "no table"), never a crash or a silent cap.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
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
  // A file identity (device, inode, size, mtime as the kernel's VMA has them) -> its table, for
  // walks that find a mapping before its process's entry is written (bpf/unwind.bpf.h's early
  // mappings). Writers without that map ignore them.
  virtual Status write_identity(const kscope_unwind_file_key& /*key*/,
                                const kscope_unwind_file_info& /*info*/) {
    return {};
  }
  virtual void delete_identity(const kscope_unwind_file_key& /*key*/) {}
};

struct UnwindLoadStats {
  size_t processes = 0;          // process entries written
  size_t files = 0;              // files whose rows are loaded
  size_t rows = 0;               // rows loaded
  size_t index_entries = 0;      // their files' row-index entries (in the rows map, 8 bytes each)
  size_t rows_capacity = 0;      // elements of the rows map: rows and index entries
  size_t files_no_table = 0;     // files without a usable .eh_frame (or unreadable)
  size_t files_no_room = 0;      // files skipped because the rows map is full
  size_t mappings_dropped = 0;   // executable mappings beyond KSCOPE_UNWIND_MAX_MAPPINGS
  size_t unsupported_rows = 0;   // loaded rows with a rule the walker cannot follow
  size_t files_debug_frame = 0;  // loaded files with rows from .debug_frame (own or debug file)
  size_t debug_files = 0;        // of those, with a separate debug file (build-id/debuglink)
  size_t files_freed = 0;        // tables of files no longer mapped, whose rows were reused
  size_t rows_freed = 0;
  size_t identities = 0;       // file identities written for the walker's early mappings
  size_t preloaded_files = 0;  // files loaded before the launched command ran (preload)
  size_t preload_skipped = 0;  // files of the preload left for later (cap on files or time)
  // The rows map's bytes in use: rows and index entries.
  uint64_t table_bytes() const { return (rows + index_entries) * sizeof(kscope_unwind_row); }
};

class TableLoader {
 public:
  // rows_capacity/files_capacity: the sizes of the rows and files maps. `files`: the run's open
  // files, shared with its symbolizer so no file is opened twice (null: the loader's own).
  TableLoader(UnwindMapWriter& writer, uint32_t rows_capacity, uint32_t files_capacity,
              std::shared_ptr<OpenFiles> files = nullptr);
  // Loads what is missing of the files `mappings` use and writes the process's entry.
  Status load_process(uint32_t pid, const std::vector<ExecMapping>& mappings);
  // Where separate debug files are looked for (by build-id, .gnu_debuglink) for files without
  // .eh_frame: the symbolizer's roots (--debug-dir, KSCOPE_DEBUG_DIR); default /usr/lib/debug.
  void set_debug_dirs(std::vector<std::string> dirs) { debug_dirs_ = std::move(dirs); }
  // How long a table no process maps stays untouched before its rows may be reused.
  void set_reuse_delay(std::chrono::milliseconds d) { reuse_delay_ = d; }
  void forget_process(uint32_t pid);
  // Loads the table of the file at `path` (as kscope sees it) before any process maps it, and
  // keeps it for the run: the files of a command kscope is about to launch. false when the file
  // has no table (or no room); the reason is in failures().
  bool preload(const std::string& path);
  const UnwindLoadStats& stats() const { return stats_; }
  // Why the last file of this path could not be loaded (for -v), empty when it was.
  const std::map<std::string, std::string>& failures() const { return failures_; }

 private:
  struct LoadedFile {
    uint32_t file_id = KSCOPE_UNWIND_NO_FILE;
    uint32_t first_element = 0;  // of the rows map: its row index, then its rows
    uint32_t row_count = 0;
    uint32_t index_count = 0;
    std::vector<LoadSegment> loads;
    size_t users = 0;  // processes whose entry uses the table
    std::chrono::steady_clock::time_point unused_since;
    bool pinned = false;                             // the vDSO's: every process maps it
    std::vector<kscope_unwind_file_key> identities;  // written to the walker's identity map
  };
  // Writes the identity of a file whose table is loaded (once per identity).
  void add_identity(LoadedFile& f, const kscope_unwind_file_key& key);
  // Rows for a new table: first fit in the free ranges, freeing unused tables as needed.
  std::optional<uint32_t> allocate_rows(uint32_t count);
  bool free_one_unused();
  void free_range(uint32_t first, uint32_t count);
  void release(const std::vector<std::shared_ptr<LoadedFile>>& files);
  std::shared_ptr<LoadedFile> file_for(uint32_t pid, const ExecMapping& m);
  std::shared_ptr<LoadedFile> vdso_file(const ExecMapping& m);
  std::shared_ptr<LoadedFile> install(const std::string& key, Result<ElfUnwindSource> source,
                                      const std::string& what,
                                      const std::string& link_dir_path = {});
  UnwindMapWriter& writer_;
  uint32_t rows_capacity_;
  uint32_t files_capacity_;
  std::shared_ptr<OpenFiles> files_;
  UnwindLoadStats stats_;
  uint32_t next_row_ = 0;
  uint32_t next_file_ = 0;
  std::map<std::string, std::shared_ptr<LoadedFile>> by_key_;    // build-id / inode key
  std::map<std::string, std::shared_ptr<LoadedFile>> by_inode_;  // dev:ino:size:mtime
  std::map<std::string, std::string> failures_;
  std::map<uint32_t, std::vector<std::shared_ptr<LoadedFile>>> pids_;  // entry -> tables it uses
  std::map<uint32_t, uint32_t> free_rows_;  // first row -> count, coalesced
  std::vector<uint32_t> free_ids_;
  std::vector<std::shared_ptr<LoadedFile>> tables_;  // with rows, in load order
  std::chrono::milliseconds reuse_delay_{2000};
  std::vector<std::string> debug_dirs_ = {"/usr/lib/debug"};
  std::vector<std::shared_ptr<LoadedFile>> preloaded_;  // held for the run
  std::shared_ptr<LoadedFile> vdso_;
  uint64_t vdso_size_ = 0;
  bool vdso_tried_ = false;
};

}  // namespace kscope::unwind
