// A test program's own clocks as a time series: (CLOCK_MONOTONIC ns, its thread's CPU clock ns)
// pairs, the ground truth of a thread's on-CPU time over any interval kscope reports.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace kscope::testing {

struct ClockPair {
  uint64_t mono = 0, cpu = 0;
};

// The thread's CPU clock at monotonic time t, interpolated between the pairs around it;
// nullopt outside the series.
inline std::optional<double> cpu_at(const std::vector<ClockPair>& series, uint64_t t) {
  for (size_t i = 1; i < series.size(); ++i) {
    if (series[i].mono < t) continue;
    const ClockPair& a = series[i - 1];
    const ClockPair& b = series[i];
    if (a.mono > t) return std::nullopt;  // before the series began
    if (b.mono == a.mono) return static_cast<double>(b.cpu);
    double f = static_cast<double>(t - a.mono) / static_cast<double>(b.mono - a.mono);
    return static_cast<double>(a.cpu) + f * static_cast<double>(b.cpu - a.cpu);
  }
  return std::nullopt;
}

}  // namespace kscope::testing
