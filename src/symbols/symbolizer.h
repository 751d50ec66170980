// The one entry point for turning addresses into names: kernel addresses through kallsyms, user
// addresses through the mappings of the process they came from and the ELF files behind them.
//
// Names come, in this order, from names stored in a recording (add_stored_symbols), the ELF
// files behind file mappings (own .symtab/DWARF, build-id debug directory, .gnu_debuglink,
// MiniDebugInfo, debuginfod, .dynsym: see ElfBinary), the runtime's perf-PID.map for code in
// anonymous memory (JIT), and kallsyms for the kernel.
//
// The Symbolizer never reads /proc/PID/maps: it resolves against the mappings it was given
// (set_mappings), which the tracer captures while a process lives and recordings store, so
// addresses of processes that have exited still resolve as long as their binaries exist.
//
// Thread-compatible, not thread-safe: every call may fill caches. Use one Symbolizer per thread,
// or serialize calls.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "model/process_info.h"
#include "model/recording_symbols.h"
#include "symbols/debuginfod.h"
#include "symbols/elf_binary.h"
#include "symbols/kallsyms.h"
#include "symbols/open_files.h"
#include "symbols/perf_map.h"
#include "symbols/symbol.h"
#include "util/result.h"

namespace kscope {

// How much to find out about a user address. Each level includes the previous ones.
enum class SymbolDetail : uint8_t {
  kFunction,      // function+offset and module: symbol tables only
  kSourceLine,    // + file:line when DWARF is available (loads the DWARF of the binary once)
  kInlineFrames,  // + the chain of inlined functions (slower; for stack display)
};

struct SymbolizerOptions {
  DebugSearchPaths debug_search;
  std::string kallsyms_path = "/proc/kallsyms";
  // A mapping's path may name a different file by the time we resolve (a package upgrade after
  // a recording). Paths marked " (deleted)" are always checked against the recorded inode.
  // With this set, all paths are: safer for old recordings, but on overlayfs with xino the
  // inode seen through the mount differs from the one in /proc/PID/maps, and nothing resolves.
  bool require_same_inode = false;
  // debuginfod servers asked for missing debug files (urls empty: never); see debuginfod.h.
  DebuginfodOptions debuginfod;
  // Where runtimes write perf-PID.map for their JIT code; empty: JIT code is not named.
  std::string perf_map_dir = "/tmp";
  // The run's open files, shared with the unwinder so no file is opened twice (null: the
  // Symbolizer makes its own).
  std::shared_ptr<OpenFiles> open_files;
  // One-time notes (a perf map refused, ...); null = silent.
  FILE* messages = stderr;
};

// Which source named one binary, for -v and reports (model/recording_symbols.h: it is stored in
// recordings as it is).
using BinarySource = BinarySymbolSource;

struct SymbolizerStats {
  size_t processes = 0;             // processes with mappings
  size_t binaries_loaded = 0;       // distinct ELF files read
  size_t binaries_unavailable = 0;  // mapped files that could not be used (gone, not ELF, ...)
  size_t jit_maps = 0;              // perf-PID.map files read
  size_t jit_symbols = 0;           // regions named in them
  size_t debuginfod_fetched = 0;    // debug files that came from debuginfod (or its cache)
};

class Symbolizer {
 public:
  explicit Symbolizer(SymbolizerOptions options = {});
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // Replaces what is known of a process's address space (from read_proc_maps(), the tracer's
  // cache or a recording). The order of `mappings` does not matter.
  void set_mappings(uint32_t pid, std::vector<Mapping> mappings);
  void set_mappings(const MappingSnapshot& snapshot);
  void forget_process(uint32_t pid);
  // The uid a process runs as, captured while it lived: its perf-PID.map must belong to it
  // (or to root). Without it, /proc/PID is asked, and when the process is gone any owner is
  // accepted (the file must still be a regular file with one link).
  void set_process_owner(uint32_t pid, uint32_t uid) { owners_[pid] = uid; }
  bool knows_process(uint32_t pid) const { return processes_.count(pid) != 0; }

  // Names resolved when a recording was made: resolve_user(pid, ip) and resolve_kernel(ip) give
  // these (for any detail level) before looking at any binary or kallsyms, so a recording reads
  // the same on another boot, after its binaries changed, or on another machine.
  void add_stored_symbols(const std::vector<StoredSymbol>& symbols);
  size_t stored_symbols_used() const { return stored_used_; }

  // Resolves an address in process `pid`. Never fails: an address that cannot be resolved
  // comes back unresolved (see Symbol::format()). For return addresses taken from a stack, pass
  // ip - 1 so the call instruction, not the one after it, is looked up.
  Symbol resolve_user(uint32_t pid, uint64_t ip, SymbolDetail detail = SymbolDetail::kSourceLine);

  // Resolves a kernel address; kallsyms is read on first use unless set_kernel_symbols() was
  // called. Unresolved ("0xaddr") when kernel symbols are unavailable.
  Symbol resolve_kernel(uint64_t ip);
  void set_kernel_symbols(KernelSymbols symbols);
  // Whether kernel symbols are usable (loads them if needed); the error says why not and what
  // to do, for a one-time warning.
  Status kernel_symbols_status();

  SymbolizerStats stats() const;
  const OpenFiles& open_files() const { return *open_files_; }
  // Every binary looked at (and every mapped file that could not be used), with where its names
  // came from and how many distinct addresses it named, sorted by path. Names given from
  // add_stored_symbols() are not counted: they were named where the recording was made.
  std::vector<BinarySource> binary_sources() const;

 private:
  struct Process;
  struct FileKey {
    uint64_t dev, inode, size;
    int64_t mtime_ns;
    bool operator==(const FileKey&) const = default;
  };
  struct FileKeyHash {
    size_t operator()(const FileKey& k) const;
  };

  Symbol resolve_user_uncached(uint32_t pid, uint64_t ip, SymbolDetail detail);
  ElfBinary* binary_for(Process& process, size_t mapping_index);
  ElfBinary* load_file(uint32_t pid, const Mapping& mapping);
  ElfBinary* load_vdso(const Mapping& mapping);
  // Opens and reads a file not seen before (or reuses the binary of a copy with its build-id).
  ElfBinary* open_binary(const std::string& path, const FileKey& file_key, const OpenFile& file);
  // Counts a function name given to (pid, ip) by `named_by` (an ElfBinary or a PerfMapFile),
  // once per distinct address.
  void count_named(uint32_t pid, uint64_t ip, const void* named_by);
  BinarySource source_of(const ElfBinary& binary) const;
  Symbol resolve_jit(uint32_t pid, uint64_t ip, Symbol symbol);
  const KernelSymbols* kernel_symbols();

  SymbolizerOptions options_;
  std::unordered_map<uint32_t, std::unique_ptr<Process>> processes_;
  // Binaries by mapping identity ("dev:inode:path"); null when the file is unusable, so a
  // missing file is not looked for again on every address.
  std::unordered_map<std::string, ElfBinary*> by_mapping_;
  // By the identity of the file opened, so links and bind mounts share one copy; null when the
  // file is unusable.
  std::unordered_map<FileKey, ElfBinary*, FileKeyHash> binaries_;
  std::vector<std::unique_ptr<ElfBinary>> owned_;  // every binary read, in the order read
  // Binaries by "build-id:owner uid:size": copies of one file (same build-id, e.g. a binary and
  // its copy, or one library in two container images) are read once. The owner is part of the
  // key so a file a user made, with a forged build-id, never names a root-owned binary's code.
  std::unordered_map<std::string, ElfBinary*> by_build_id_;
  size_t unavailable_files_ = 0;
  std::unordered_map<std::string, std::string> unavailable_;  // path -> why it was not used
  std::unordered_map<const void*, uint64_t> named_count_;     // by ElfBinary / PerfMapFile
  std::unique_ptr<DebuginfodClient> debuginfod_;
  std::shared_ptr<OpenFiles> open_files_;

  struct StoredKey {
    uint32_t pid;
    uint64_t ip;
    bool kernel;
    bool operator==(const StoredKey&) const = default;
  };
  struct StoredKeyHash {
    size_t operator()(const StoredKey& k) const {
      return std::hash<uint64_t>()(k.ip * 0x9E3779B97F4A7C15ull ^ k.pid ^
                                   (k.kernel ? 1ull << 63 : 0));
    }
  };
  std::unordered_map<StoredKey, Symbol, StoredKeyHash> stored_;
  size_t stored_used_ = 0;
  // User addresses named so far, by process (dropped with it: they are counted once each).
  std::unordered_map<uint32_t, std::unordered_set<uint64_t>> named_;

  struct JitMap {
    std::unique_ptr<PerfMapFile> file;
    int64_t checked_ns = 0;  // last look at the file's size
    bool refused = false;
  };
  std::unordered_map<uint32_t, JitMap> jit_maps_;
  std::unordered_map<uint32_t, uint32_t> owners_;

  std::unique_ptr<ElfBinary> vdso_;
  bool vdso_tried_ = false;
  uint64_t vdso_size_ = 0;

  std::optional<Result<KernelSymbols>> kernel_;

  // The last user resolution, returned again for the same (pid, ip, detail).
  struct LastResult {
    uint32_t pid = 0;
    uint64_t ip = 0;
    SymbolDetail detail = SymbolDetail::kFunction;
    Symbol symbol;
  };
  std::optional<LastResult> last_;
  bool jit_lookup_ = false;  // the call being answered looked in a perf map (not kept in last_)
};

}  // namespace kscope
