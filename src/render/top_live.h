// The live `kscope top` screen: refreshes the table every interval, answers keys in between.
#pragma once

#include <signal.h>

#include <cstdint>
#include <optional>

#include "model/top_source.h"
#include "util/result.h"

namespace kscope {

// Runs the ncurses screen on `source` until the user quits, the deadline (CLOCK_MONOTONIC ns)
// passes or *stop is set. `stacks`: false with --no-stacks (no stack grouping, nothing expands).
Result<int> run_top_screen(TopSource& source, TopGroupBy by, TopSortKey sort, bool stacks,
                           uint64_t interval_ns, std::optional<uint64_t> deadline,
                           volatile sig_atomic_t* stop);

}  // namespace kscope
