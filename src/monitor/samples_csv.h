// Reading back the CSV that `kscope monitor -o` writes (kCsvHeader in monitor/monitor.h): the
// columns are found by their names in the header line, so a reader never depends on positions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/result.h"

namespace kscope::monitor {

struct CsvSample {
  double time_s = 0;
  std::string pid;  // "all" for the aggregate rows
  std::string comm;
  uint64_t min_faults = 0, maj_faults = 0;  // since the previous row
  uint64_t min_total = 0, maj_total = 0;    // the kernel's cumulative counters
  double cpu_util = 0;
  uint64_t rss_kb = 0;
};

// Parses the text of a samples CSV. Every column the reader needs must be present (in any
// order; unknown columns are ignored); a row that does not parse is an error naming its line
// number.
Result<std::vector<CsvSample>> parse_samples_csv(const std::string& text);
Result<std::vector<CsvSample>> read_samples_csv(const std::string& path);

}  // namespace kscope::monitor
