// Numbers for people: durations and counts, the same in every table, screen and summary.
#pragma once

#include <cstdint>
#include <string>

namespace kscope {

// "340ns", "1.2us", "2.5ms", "1.20s"
std::string format_duration_ns(uint64_t ns);
// "12,345"
std::string format_count(uint64_t n);

}  // namespace kscope
