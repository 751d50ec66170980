#include "model/process_info.h"

#include <algorithm>

namespace kscope {

ExecRanges::ExecRanges(const std::vector<Mapping>& mappings) {
  for (const Mapping& m : mappings)
    if (m.executable() && m.start < m.end) ranges_.emplace_back(m.start, m.end);
  std::sort(ranges_.begin(), ranges_.end());
  size_t out = 0;
  for (const auto& r : ranges_) {
    if (out > 0 && r.first <= ranges_[out - 1].second) {
      ranges_[out - 1].second = std::max(ranges_[out - 1].second, r.second);
    } else {
      ranges_[out++] = r;
    }
  }
  ranges_.resize(out);
}

bool ExecRanges::contains(uint64_t addr) const {
  // The last range starting at or before addr: the only one that can hold it (disjoint).
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                             [](uint64_t a, const auto& r) { return a < r.first; });
  if (it == ranges_.begin()) return false;
  --it;
  return addr < it->second;
}

size_t ExecRanges::frames_to_keep(const std::vector<uint64_t>& frames) const {
  if (ranges_.empty()) return frames.size();
  for (size_t i = 1; i < frames.size(); ++i)
    if (!contains(frames[i])) return i;
  return frames.size();
}

}  // namespace kscope
