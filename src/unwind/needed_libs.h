// The files a dynamically linked program maps before its first instruction runs: the program,
// its PT_INTERP (the dynamic loader) and the DT_NEEDED closure, resolved the way ld.so does
// (DT_RPATH when there is no DT_RUNPATH, LD_LIBRARY_PATH, DT_RUNPATH, /etc/ld.so.cache, the
// default directories; $ORIGIN expanded). kscope loads their unwind tables before it lets a
// command it launches call execve, so the walker has them from the first instruction. A name
// not found is left out (its table is loaded later, when the mapping is seen, as for any file).
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace kscope::unwind {

struct NeededFiles {
  std::vector<std::string> files;    // the program first, then the loader, then libraries
  std::vector<std::string> missing;  // DT_NEEDED names not found
  bool capped = false;               // stopped at the cap on files or time
};

// /etc/ld.so.cache (format "glibc-ld.so.cache1.1"): library name -> path, x86-64 entries only,
// the first entry of each name (ld.so's preference). Empty when unreadable or another format.
std::map<std::string, std::string> read_ld_so_cache(const std::string& path = "/etc/ld.so.cache");
std::map<std::string, std::string> parse_ld_so_cache(const std::string& bytes);

NeededFiles needed_files(const std::string& program, const std::string& ld_library_path,
                         size_t max_files = 64,
                         std::chrono::milliseconds budget = std::chrono::milliseconds(2000));

}  // namespace kscope::unwind
