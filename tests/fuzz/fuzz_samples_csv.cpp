// The samples CSV reader (monitor/samples_csv.h), which `kscope study` and anyone's scripts
// read back after `kscope monitor -o`: any text is parsed without crashing, and what the
// monitor's own writer writes always reads back, whatever a process names itself (the comm is
// chosen by the traced program: commas, quotes and newlines included; the writer turns line
// breaks into spaces).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "monitor/monitor.h"
#include "monitor/samples_csv.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kscope::monitor;
  std::string text(reinterpret_cast<const char*>(data), size);
  if (auto rows = parse_samples_csv(text))
    for (const CsvSample& r : *rows)
      if (r.time_s < 0 && r.time_s == r.time_s) __builtin_trap();  // no '-' is accepted

  // Round trip: a row with up to 15 bytes of the input as its comm (TASK_COMM_LEN - 1) and
  // counters taken from the input.
  SampleRow row;
  size_t n = size < 15 ? size : 15;
  row.comm.assign(reinterpret_cast<const char*>(data), n);
  if (row.comm.find('\0') != std::string::npos) row.comm.resize(row.comm.find('\0'));
  uint64_t v[4] = {};
  std::memcpy(v, data + n, std::min(sizeof(v), size - n));
  row.time_ns = v[0] % (uint64_t{1} << 50);
  row.pid = static_cast<pid_t>(v[1] % 4194304 + 1);
  row.min_faults = v[2];
  row.maj_faults_total = v[3];
  row.rss_kb = v[2] ^ v[3];
  row.cpu_util = static_cast<double>(v[1] % 1000) / 100;
  std::string csv = std::string(kCsvHeader) + "\n" + format_csv_row(row) + "\n";
  auto back = parse_samples_csv(csv);
  if (!back || back->size() != 1) __builtin_trap();
  // The writer turns a newline or carriage return in a comm into a space (one row, one line).
  std::string comm = row.comm;
  for (char& c : comm)
    if (c == '\n' || c == '\r') c = ' ';
  const CsvSample& r = back->front();
  if (r.comm != comm || r.pid != std::to_string(row.pid) || r.min_faults != row.min_faults ||
      r.maj_total != row.maj_faults_total || r.rss_kb != row.rss_kb)
    __builtin_trap();
  return 0;
}
