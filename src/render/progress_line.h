// A one-line status on stderr (a terminal), rewritten in place about once a second, as
// `perf record` shows its sample count: "kscope: N faults, R/s, L lost (Ctrl-C to stop)".
#pragma once

#include <cstdint>
#include <cstdio>

namespace kscope {

class ProgressLine {
 public:
  explicit ProgressLine(std::FILE* out) : out_(out) {}
  // `total` so far; the rate is over the time since the previous call.
  void show(uint64_t total, uint64_t lost, uint64_t now_ns);
  // Erases the line (before the summary), if one was shown.
  void clear();

 private:
  std::FILE* out_;
  bool shown_ = false;
  uint64_t last_ns_ = 0;
  uint64_t last_total_ = 0;
};

}  // namespace kscope
