// The unwind table of one ELF file: its .eh_frame decoded (unwind/eh_frame.h) and packed into
// the rows the BPF walker searches, with what is needed to place it in a process (PT_LOAD
// segments) and the key it is shared under (build-id, else device+inode+mtime).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kscope/abi/unwind.h"
#include "symbols/open_files.h"
#include "unwind/eh_frame.h"
#include "util/result.h"

namespace kscope::unwind {

struct LoadSegment {
  uint64_t offset = 0;  // p_offset
  uint64_t vaddr = 0;   // p_vaddr
  uint64_t filesz = 0;
  bool executable = false;
};

// The raw material: .eh_frame's and .debug_frame's bytes, the PT_LOAD segments, the build-id
// and the .gnu_debuglink (to find a separate debug file when the file has no .eh_frame).
struct ElfUnwindSource {
  std::vector<uint8_t> eh_frame;  // empty when the file has none
  uint64_t eh_frame_vaddr = 0;
  std::vector<uint8_t> debug_frame;  // empty when none (decompressed when SHF_COMPRESSED)
  std::string debuglink;             // .gnu_debuglink's file name, empty when none
  uint32_t debuglink_crc = 0;
  std::vector<LoadSegment> loads;
  std::string build_id;  // lowercase hex, empty when none
};

// Reads an ELF file (bounds-checked by libelf; the section must lie inside the file), through
// the run's open files when given (symbols/open_files.h: a file already open is not opened
// again).
Result<ElfUnwindSource> read_unwind_source(const std::string& path, OpenFiles* files = nullptr);
// The same from an open descriptor (read with mmap/pread: its offset is not moved); `what`
// names it in errors.
Result<ElfUnwindSource> read_unwind_source_fd(int fd, const std::string& what);
// An ELF image in memory (the vDSO).
Result<ElfUnwindSource> read_unwind_source_image(std::span<const uint8_t> image);

struct FileTable {
  std::string key;  // "build-id:<hex>", "inode:<dev>:<ino>:<mtime>" or "vdso:<...>"
  std::vector<kscope_unwind_row> rows;
  std::vector<LoadSegment> loads;
  EhFrameStats stats;
  size_t rows_did_not_fit = 0;  // rows packed as unsupported because a number did not fit
};

// Decodes and packs .eh_frame, with .debug_frame filling in what .eh_frame does not cover, and
// `debug_file`'s .debug_frame (a separate debug file, may be null) after both; fails when there
// is no such section or none can be decoded.
Result<FileTable> build_file_table(const ElfUnwindSource& source, std::string key,
                                   const ElfUnwindSource* debug_file = nullptr);

// The row index of a file's sorted rows (kscope_unwind_index_entry): buckets of 2^shift bytes
// from the first row's pc, at most one bucket per kRowsPerBucket rows (the index costs at most
// 1/kRowsPerBucket of the rows' memory), shift at least 4. Empty for fewer than 2 *
// kRowsPerBucket rows (a search of so few rows is as short as the index lookup).
struct RowIndex {
  static constexpr uint32_t kRowsPerBucket = 8;
  uint32_t base = 0;
  uint32_t shift = 0;
  std::vector<kscope_unwind_index_entry> buckets;
};
RowIndex build_row_index(std::span<const kscope_unwind_row> rows);

// The separate debug file of a binary, GDB's way: <root>/.build-id/xx/rest.debug for each root
// (with the same build-id), then .gnu_debuglink's name next to the binary, in its .debug/ and
// under each root + the binary's directory (the same build-id, or the link's CRC when the
// binary has none). `binary_path` is the path to find debuglink neighbours by. Empty when none
// is found. Candidates are opened through `files` when given.
std::string find_debug_file(const ElfUnwindSource& binary, const std::string& binary_path,
                            const std::vector<std::string>& debug_dirs, OpenFiles* files = nullptr);

// The load bias of a mapping of this file: address - bias = link-time address. Uses the PT_LOAD
// segment that holds the mapping's file offset; fails when none does.
Result<uint64_t> load_bias(const std::vector<LoadSegment>& loads, uint64_t map_start,
                           uint64_t map_offset);

}  // namespace kscope::unwind
