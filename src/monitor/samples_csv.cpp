#include "monitor/samples_csv.h"

#include <fmt/format.h>

#include <charconv>
#include <map>
#include <sstream>

#include "util/csv.h"
#include "util/file.h"

namespace kscope::monitor {

namespace {

bool parse_u64(const std::string& s, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

bool parse_double(const std::string& s, double& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

}  // namespace

Result<std::vector<CsvSample>> parse_samples_csv(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line)) return make_error("empty samples CSV: no header line");
  std::map<std::string, size_t> column;
  auto header = split_csv_line(line);
  for (size_t i = 0; i < header.size(); ++i) column.emplace(header[i], i);
  std::vector<size_t> idx;
  // The columns this reader needs, by name (all of them are in kCsvHeader, which the writer
  // uses; a unit test checks that the writer's rows read back).
  for (const char* name : {"time_ms", "pid", "comm", "min_faults", "maj_faults", "min_faults_total",
                           "maj_faults_total", "cpu_util", "rss_kb"}) {
    auto it = column.find(name);
    if (it == column.end())
      return make_error(fmt::format("samples CSV: the header has no '{}' column", name));
    idx.push_back(it->second);
  }
  std::vector<CsvSample> rows;
  size_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    auto f = split_csv_line(line);
    if (f.size() != header.size())
      return make_error(fmt::format("samples CSV line {}: {} fields, the header has {}", line_no,
                                    f.size(), header.size()));
    CsvSample r;
    double time_ms = 0;
    bool ok = parse_double(f[idx[0]], time_ms);
    r.time_s = time_ms / 1e3;
    r.pid = f[idx[1]];
    r.comm = f[idx[2]];
    ok = ok && parse_u64(f[idx[3]], r.min_faults) && parse_u64(f[idx[4]], r.maj_faults) &&
         parse_u64(f[idx[5]], r.min_total) && parse_u64(f[idx[6]], r.maj_total) &&
         parse_double(f[idx[7]], r.cpu_util) && parse_u64(f[idx[8]], r.rss_kb);
    if (!ok) return make_error(fmt::format("samples CSV line {}: malformed: '{}'", line_no, line));
    rows.push_back(std::move(r));
  }
  return rows;
}

Result<std::vector<CsvSample>> read_samples_csv(const std::string& path) {
  KSCOPE_ASSIGN_OR_RETURN(auto text, read_file(path, size_t{1} << 32));
  auto rows = parse_samples_csv(text);
  if (!rows) return make_error(fmt::format("{}: {}", path, rows.error().message));
  return rows;
}

}  // namespace kscope::monitor
