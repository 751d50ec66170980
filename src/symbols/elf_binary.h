// What the user symbolizer knows about one ELF file: how file offsets map to the addresses the
// linker assigned (PT_LOAD), the function symbols sorted for binary search, and, loaded on first
// use, the DWARF line table and inline scopes. Symbols and DWARF may come from a separate debug
// file, found by build-id or .gnu_debuglink.
//
// Thread-compatible: lookups update small caches (last hit, demangled names, lazily loaded
// DWARF), so one instance must not be used from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "symbols/symbol.h"
#include "util/result.h"

// libelf/libdw types, kept out of this header.
struct Elf;
struct Dwarf;
struct stat;

namespace kscope {

class DebuginfodClient;
class OpenFile;
class OpenFiles;

// Where separate debug files are looked for.
struct DebugSearchPaths {
  // Roots holding ".build-id/xx/rest.debug" files and the "<root>/<binary dir>/<debuglink>"
  // tree (GDB's debug-file-directory).
  std::vector<std::string> debug_dirs = {"/usr/lib/debug"};
  // Follow .gnu_debuglink: "<binary dir>/<name>", "<binary dir>/.debug/<name>" and the roots.
  bool use_debuglink = true;
  // Read .gnu_debugdata (MiniDebugInfo: an xz-compressed ELF holding the function symbols that
  // .dynsym lacks, as Fedora and others ship it) when nothing better was found.
  bool use_minidebuginfo = true;
  // Asked for the debug file when the binary has no DWARF and no local debug file was found;
  // null = do not ask. Not owned; used only while ElfBinary::open() runs.
  DebuginfodClient* debuginfod = nullptr;
  // The run's open files (symbols/open_files.h), shared with the unwinder: binaries and debug
  // files are opened through it, so none is opened twice. Null = each open is its own. Not
  // owned; must outlive the ElfBinary (its DWARF's dwz file is opened on first use).
  OpenFiles* files = nullptr;
};

// The GNU build-id (NT_GNU_BUILD_ID note) of an ELF file as lowercase hex; an error when the
// file cannot be read or has no build-id.
Result<std::string> read_build_id(const std::string& path);

class ElfBinary {
 public:
  // Where the function symbols came from, in the order they are looked for.
  enum class SymbolSource : uint8_t {
    kNone,
    kSymtab,           // the file's own .symtab
    kDebugFileSymtab,  // a separate debug file: see debug_origin()
    kMiniDebugInfo,    // .gnu_debugdata, merged with .dynsym
    kDynsym,           // exported symbols only
  };
  // How the separate debug file (symbols and/or DWARF) was found.
  enum class DebugOrigin : uint8_t { kNone, kBuildIdDir, kDebugLink, kDebuginfod };

  struct Function {
    std::string_view name;  // demangled; valid until the next lookup on this ElfBinary
    uint64_t start = 0;     // link-time address
  };

  // Reads the file at `path` (and a matching debug file, if any). Fails when the file cannot
  // be opened or is not ELF.
  static Result<std::unique_ptr<ElfBinary>> open(const std::string& path,
                                                 const DebugSearchPaths& search);
  // open() in two steps, for a cache keyed by build-id: begin_open() opens the file (the only
  // time it is opened) and reads its ELF header and build-id; finish_open() reads its symbols
  // and finds its debug file. A caller that already has a binary with this build-id drops the
  // unfinished one instead.
  // With `file` (already open, e.g. through /proc/PID/map_files), that file is read and `path`
  // only names it (debug files are looked for next to `path`).
  static Result<std::unique_ptr<ElfBinary>> begin_open(const std::string& path,
                                                       const DebugSearchPaths& search,
                                                       const OpenFile* file = nullptr);
  Status finish_open();
  uint32_t file_owner() const { return file_owner_; }  // uid owning the file (begin_open)
  uint64_t file_size() const { return file_size_; }
  // An ELF image already in memory (the vDSO); `name` stands for its path.
  static Result<std::unique_ptr<ElfBinary>> from_image(std::string name, std::vector<char> image);

  ~ElfBinary();
  ElfBinary(const ElfBinary&) = delete;
  ElfBinary& operator=(const ElfBinary&) = delete;

  const std::string& path() const { return path_; }
  const std::string& build_id() const { return build_id_; }      // hex; empty when none
  const std::string& debug_file() const { return debug_path_; }  // empty when none was used
  SymbolSource symbol_source() const { return symbol_source_; }
  DebugOrigin debug_origin() const { return debug_origin_; }
  // One line for -v and reports: which source named this binary's functions and where its line
  // information comes from, e.g. "debug file by build-id (/usr/lib/debug/.build-id/ab/c.debug)".
  std::string describe_sources() const;
  size_t function_count() const { return functions_.size(); }

  // Link-time virtual address of the byte at `file_offset`: the PT_LOAD segment holding that
  // byte gives p_vaddr + (file_offset - p_offset). This is the same for PIE and non-PIE
  // executables and shared libraries, and needs no load bias. When two segments hold the byte,
  // the executable one wins if `executable`.
  std::optional<uint64_t> file_offset_to_vaddr(uint64_t file_offset, bool executable) const;

  // The function symbol covering a link-time address.
  std::optional<Function> find_function(uint64_t vaddr);

  // Fills out.file/out.line from the DWARF line table and, when `inline_frames`, out.inlined.
  // Does nothing when there is no DWARF. DWARF is opened on the first call.
  void describe_source(uint64_t vaddr, bool inline_frames, Symbol& out);
  bool has_dwarf_sections() const { return dwarf_elf_ != nullptr; }

 private:
  struct Segment {
    uint64_t offset, filesz, vaddr, memsz;
    bool executable;
  };
  struct FunctionEntry {
    uint64_t start;
    uint64_t end;  // exclusive
    uint32_t name_offset;
    uint32_t name_length;
  };
  struct CuRange;
  struct DwarfState;

  ElfBinary() = default;
  // Reads main_elf_; `file` is the file's identity, null for in-memory images (no debug file).
  Status load(const struct stat* file);
  std::optional<size_t> find_index(uint64_t vaddr) const;
  bool ensure_dwarf();

  std::string path_;
  std::string build_id_;
  std::string debug_path_;
  SymbolSource symbol_source_ = SymbolSource::kNone;
  DebugOrigin debug_origin_ = DebugOrigin::kNone;
  std::vector<Segment> segments_;
  std::vector<FunctionEntry> functions_;                 // sorted by start, one per start address
  std::string names_;                                    // symbol names, as in the ELF (mangled)
  std::unordered_map<uint32_t, std::string> demangled_;  // by functions_ index
  mutable size_t last_hit_ = SIZE_MAX;

  std::unique_ptr<struct stat> file_;  // the file's identity between begin and finish_open
  uint32_t file_owner_ = 0;
  uint64_t file_size_ = 0;
  std::vector<char> image_;   // backing memory for from_image()
  Elf* main_elf_ = nullptr;   // owned; kept only while it holds the DWARF
  Elf* debug_elf_ = nullptr;  // owned; the separate debug file, when one was used
  Elf* dwarf_elf_ = nullptr;  // one of the above when it has .debug_info; not owned
  std::unique_ptr<DwarfState> dwarf_;
  bool dwarf_tried_ = false;
  DebugSearchPaths search_;
};

}  // namespace kscope
