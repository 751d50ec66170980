#include "render/progress_line.h"

#include <string>

#include "util/units.h"

namespace kscope {

void ProgressLine::show(uint64_t total, uint64_t lost, uint64_t now_ns) {
  std::string rate = "-";
  if (last_ns_ && now_ns > last_ns_ && total >= last_total_)
    rate = format_count(static_cast<uint64_t>(static_cast<double>(total - last_total_) * 1e9 /
                                              static_cast<double>(now_ns - last_ns_)));
  std::fprintf(out_, "\r\033[Kkscope: %s faults, %s/s, %s lost (Ctrl-C to stop)",
               format_count(total).c_str(), rate.c_str(), format_count(lost).c_str());
  std::fflush(out_);
  shown_ = true;
  last_ns_ = now_ns;
  last_total_ = total;
}

void ProgressLine::clear() {
  if (shown_) std::fputs("\r\033[K", out_);
  std::fflush(out_);
  shown_ = false;
}

}  // namespace kscope
