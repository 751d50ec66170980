#include "model/fault_record.h"

#include <array>

namespace kscope {

namespace {
constexpr std::array<std::string_view, kSegmentCount> kSegmentNames = {
    "code", "data", "heap", "stack", "file", "anon", "other", "unknown"};
}

std::string_view to_string(Access a) {
  switch (a) {
    case Access::kRead:
      return "read";
    case Access::kWrite:
      return "write";
    case Access::kExec:
      return "exec";
  }
  return "?";
}

std::string_view to_string(FaultMode m) { return m == FaultMode::kKernel ? "kernel" : "user"; }
std::string_view to_string(FaultKind k) { return k == FaultKind::kMajor ? "major" : "minor"; }

std::string_view to_string(Segment s) {
  auto i = static_cast<size_t>(s);
  return i < kSegmentNames.size() ? kSegmentNames[i] : "other";
}

std::optional<Segment> parse_segment(std::string_view name) {
  for (size_t i = 0; i < kSegmentNames.size(); ++i)
    if (kSegmentNames[i] == name) return static_cast<Segment>(i);
  return std::nullopt;
}

}  // namespace kscope
