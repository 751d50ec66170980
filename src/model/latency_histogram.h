// A bounded-memory latency histogram: log2 buckets, each split into 16 linear sub-buckets, so a
// percentile is within ~6% of the true value whatever the number of samples. Max and min exact.
#pragma once

#include <array>
#include <cstdint>

namespace kscope {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 4;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = 64 * kSub;

  void add(uint64_t value_ns);
  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  uint64_t sum() const { return sum_; }
  // q in [0,1]; the representative value of the bucket holding the q-quantile, clamped to
  // [min, max]. 0 when empty.
  uint64_t percentile(double q) const;
  void merge(const LatencyHistogram& other);

  static int bucket_of(uint64_t v);
  static uint64_t bucket_low(int b);
  static uint64_t bucket_high(int b);  // exclusive

 private:
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  uint64_t sum_ = 0;
};

}  // namespace kscope
