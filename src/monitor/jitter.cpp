#include "monitor/jitter.h"

#include <fmt/format.h>

namespace kscope::monitor {

void JitterStats::add(uint64_t late_ns) {
  uint64_t us = late_ns / 1000;
  size_t b;
  if (us < kFine) {
    b = static_cast<size_t>(us);
  } else if (us < 100'000) {
    b = kFine + static_cast<size_t>((us - 1000) / 100);
  } else {
    b = kFine + kCoarse;
  }
  ++buckets_[b];
  ++count_;
  sum_ns_ += late_ns;
  if (late_ns > max_ns_) max_ns_ = late_ns;
}

uint64_t JitterStats::quantile_ns(double q) const {
  if (count_ == 0) return 0;
  if (q <= 0) q = 1e-9;
  if (q > 1) q = 1;
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.999999);
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    seen += buckets_[b];
    if (seen >= rank) {
      uint64_t upper_us;
      if (b < kFine) {
        upper_us = b + 1;
      } else if (b < kFine + kCoarse) {
        upper_us = 1000 + (b - kFine + 1) * 100;
      } else {
        return max_ns_;
      }
      uint64_t upper = upper_us * 1000;
      return upper < max_ns_ ? upper : max_ns_;
    }
  }
  return max_ns_;
}

std::string JitterStats::describe() const {
  return fmt::format("n={} p50={:.3f}ms p99={:.3f}ms max={:.3f}ms", count_, quantile_ns(0.5) / 1e6,
                     quantile_ns(0.99) / 1e6, max_ns_ / 1e6);
}

}  // namespace kscope::monitor
