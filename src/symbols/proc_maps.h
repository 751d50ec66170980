// Reading /proc/PID/maps into Mapping records (model/process_info.h).
//
// The text comes from the kernel (show_map_vma() in fs/proc/task_mmu.c) but is treated as
// untrusted input: recordings and fixtures go through the same parser, so every field is
// validated and a bad line is skipped and counted, never undefined behaviour.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/process_info.h"
#include "util/result.h"

namespace kscope {

// Parses the text of a maps file. Lines that do not have the shape
//   start-end perms offset major:minor inode [path]
// are skipped; their number is stored in *malformed_lines when given. The path is kept verbatim
// (it may contain spaces and end in " (deleted)"; the kernel escapes only '\n', as "\012", and
// that is not undone). Empty text gives an empty list (kernel threads have no mappings); text in
// which not one line parses is an error.
Result<std::vector<Mapping>> parse_proc_maps(std::string_view text,
                                             size_t* malformed_lines = nullptr);

// Reads and parses /proc/PID/maps.
Result<std::vector<Mapping>> read_proc_maps(uint32_t pid, size_t* malformed_lines = nullptr);

// The kernel appends this to the path of a mapped file that was unlinked (d_path()).
inline constexpr std::string_view kDeletedSuffix = " (deleted)";

bool path_is_deleted(std::string_view path);
// The path without a trailing " (deleted)".
std::string_view path_without_deleted(std::string_view path);
// True for mappings of a file ("/..."), false for anonymous and "[pseudo]" mappings.
bool is_file_mapping(const Mapping& mapping);

}  // namespace kscope
