// The symbols block of a faults recording (type 6, format minor version 1): the name of every
// instruction address the recording holds, resolved when the recording was finished, on the
// machine and boot that made it (its binaries, debug files, JIT maps and kallsyms), with the
// build-id of each binary. Readers name addresses from it first, so a recording reads the same
// after a reboot (KASLR), an upgrade, the binary's deletion, or on another machine.
// Layout: docs/recording-format.md, "Symbols (type 6)".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/wire.h"

namespace kscope {

// A name resolved when a recording was made (on the machine and boot that made it) for an
// address of one process, or of the kernel. Plain data: the symbols layer makes and reads them.
struct StoredSymbol {
  uint32_t pid = 0;  // 0 for kernel addresses
  uint64_t ip = 0;
  bool kernel = false;
  bool resolved = false;  // `function` names the code; else module+offset (file offset) or nothing
  std::string function;   // demangled
  uint64_t offset = 0;
  std::string module;       // basename, "[jit]", "[vdso]", a kernel module, or empty
  std::string module_path;  // empty for kernel code
  std::string build_id;     // hex, when known
  bool operator==(const StoredSymbol&) const = default;
};

// Entries per symbols block, and the payload size at which a writer starts a new block.
inline constexpr uint32_t kMaxSymbolsPerBlock = 65536;
inline constexpr size_t kSymbolsBlockBytes = size_t{8} << 20;

// Encodes symbols[begin, end) as one block payload; `end` stops early (and is updated) when the
// payload reaches kSymbolsBlockBytes.
wire::Bytes encode_symbols(const std::vector<StoredSymbol>& symbols, size_t begin, size_t& end);

// Decodes a payload of `count` entries, appending to `out`. Errors go to the cursor.
void decode_symbols(wire::PayloadCursor& c, uint32_t count, std::vector<StoredSymbol>& out);

// Where the names of one binary (or JIT map) came from, and how many distinct addresses it
// named: the "symbol sources" table of -v and the report. Stored in the symbol sources block
// (type 9, format minor version 2), so a report made elsewhere still says it.
struct BinarySymbolSource {
  std::string path;
  std::string build_id;  // hex; empty when none
  // One of: "symtab" (the file's own .symtab), "build-id debug file", "debuglink",
  // "minidebuginfo", "debuginfod", "dynsym", "perf map" (JIT), "none" (no symbols, or the file
  // could not be read).
  std::string source;
  // The debug file's path (build-id debug file, debuglink), the debuginfod URLs and the cached
  // file, the perf map's path; why the file was unusable for "none"; else empty.
  std::string detail;
  std::string description;       // one line: symbols and line information (ElfBinary)
  uint64_t addresses_named = 0;  // distinct addresses (per process) given a function name
  bool operator==(const BinarySymbolSource&) const = default;
};

// At most this many entries per symbol sources block.
inline constexpr uint32_t kMaxSymbolSources = 1u << 20;

wire::Bytes encode_symbol_sources(const std::vector<BinarySymbolSource>& sources);
// Decodes a payload of `count` entries into `out` (replacing it). Errors go to the cursor.
void decode_symbol_sources(wire::PayloadCursor& c, uint32_t count,
                           std::vector<BinarySymbolSource>& out);

}  // namespace kscope
