// Reading a whole file, bounded: /proc files (which have no size), kallsyms, small configs.
#pragma once

#include <cstddef>
#include <string>

#include "util/result.h"

namespace kscope {

// Reads `path` up to max_bytes (a longer file is cut there, not an error: /proc files are read
// for their first lines). Errors carry errno: ENOENT/ESRCH for a process that is gone, EACCES.
Result<std::string> read_file(const std::string& path, size_t max_bytes = 1 << 20);

}  // namespace kscope
