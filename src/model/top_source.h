// What the `kscope top` renderers (batch text/JSON, the live screen) need from a tracing session.
// trace/top_session.h implements it with real BPF; tests implement it with fixed tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "model/top_model.h"
#include "util/result.h"

namespace kscope {

class TopSource {
 public:
  virtual ~TopSource() = default;
  // CLOCK_MONOTONIC when measuring started.
  virtual uint64_t start_ns() const = 0;
  virtual int ncpus() const = 0;
  // Waits up to timeout_ms for kernel events.
  virtual Status poll(int timeout_ms) = 0;
  // Samples now; the table of the interval since the previous refresh (or the start).
  virtual Result<TopTable> refresh(TopGroupBy by, TopSortKey sort) = 0;
  // The last refreshed interval again, grouped/sorted differently (no new sample).
  virtual TopTable regroup(TopGroupBy by, TopSortKey sort) = 0;
  // The stack rows of one row of the last table (a thread's, a process's or a comm's accounts)
  // over the same interval as regroup(): what the screen shows when a row is expanded.
  virtual TopTable group_stacks(const TopRow& row, TopGroupBy row_group_by, TopSortKey sort) = 0;
  // The symbolized stacks of a row.
  virtual TopStackView stack_view(const TopRow& row) = 0;
  // What is traced ("all tasks", "PIDs 42"), for the header.
  virtual std::string scope() const { return {}; }
  // Processes whose unwind tables are still to be loaded (0 when none, or without them).
  virtual size_t tables_pending() const { return 0; }
};

}  // namespace kscope
