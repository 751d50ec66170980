#include "model/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace kscope {

int LatencyHistogram::bucket_of(uint64_t v) {
  if (v < kSub) return static_cast<int>(v);  // exact for small values
  int msb = 63 - std::countl_zero(v);        // >= kSubBits
  int shift = msb - kSubBits;
  int sub = static_cast<int>((v >> shift) & (kSub - 1));
  return (shift + 1) * kSub + sub;
}

uint64_t LatencyHistogram::bucket_low(int b) {
  if (b < kSub) return static_cast<uint64_t>(b);
  int shift = b / kSub - 1;
  uint64_t sub = static_cast<uint64_t>(b % kSub);
  return (uint64_t{kSub} + sub) << shift;
}

uint64_t LatencyHistogram::bucket_high(int b) {
  if (b < kSub) return static_cast<uint64_t>(b) + 1;
  int shift = b / kSub - 1;
  return bucket_low(b) + (uint64_t{1} << shift);
}

void LatencyHistogram::add(uint64_t v) {
  buckets_[static_cast<size_t>(bucket_of(v))]++;
  count_++;
  sum_ += v;
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
}

uint64_t LatencyHistogram::percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Rank of the q-quantile, 1-based (nearest-rank method).
  auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += buckets_[static_cast<size_t>(b)];
    if (seen >= rank) {
      uint64_t mid = bucket_low(b) + (bucket_high(b) - 1 - bucket_low(b)) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

}  // namespace kscope
