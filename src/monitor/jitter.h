// Wake-up lateness of the sampling loop: how far after its absolute deadline each period's
// sample started. A fixed-size histogram (bounded memory however long the monitor runs):
// 1 us buckets below 1 ms, 100 us buckets up to 100 ms, one overflow bucket.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace kscope::monitor {

class JitterStats {
 public:
  void add(uint64_t late_ns);
  uint64_t count() const { return count_; }
  uint64_t max_ns() const { return max_ns_; }
  double mean_ns() const { return count_ ? static_cast<double>(sum_ns_) / count_ : 0.0; }
  // Upper bound of the bucket holding quantile q (0 < q <= 1); 0 when empty.
  uint64_t quantile_ns(double q) const;
  // "n=.. p50=..ms p99=..ms max=..ms"
  std::string describe() const;

 private:
  static constexpr size_t kFine = 1000;   // 0..999 us
  static constexpr size_t kCoarse = 990;  // 1.0 ms .. 99.9 ms in 100 us steps
  std::array<uint64_t, kFine + kCoarse + 1> buckets_{};
  uint64_t count_ = 0;
  uint64_t sum_ns_ = 0;
  uint64_t max_ns_ = 0;
};

}  // namespace kscope::monitor
