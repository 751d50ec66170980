// Groups kscope top's accounts and differences two samples into the table of one refresh.
#pragma once

#include <functional>
#include <string>

#include "model/top_model.h"

namespace kscope {

// Name of a thread (tid != 0) or, with tid == pid, of its process.
using CommLookup = std::function<std::string(uint32_t pid, uint32_t tid)>;

// The table for the interval (prev, cur]; prev == nullptr means since tracing started at
// start_ns. Groups are formed first and differenced second, so a thread's totals are exact even
// when its running slice moves between accounts. Rows without activity are left out.
// Accounts of process `hide_pid` (kscope's own, unless --show-self; 0: none) make no row and
// count in no total: their exact on-CPU time is table.hidden_oncpu_ns.
TopTable build_top_table(const TopSample* prev, const TopSample& cur, uint64_t start_ns,
                         TopGroupBy group_by, TopSortKey sort, const CommLookup& comm_of,
                         uint32_t hide_pid = 0);

// The stacks of one row of a tid/pid/comm table over the same interval: a stack table (one row
// per account) of the accounts of `row`'s thread, process or comm, so a thread can be expanded
// into where it ran (on-CPU, sampled and scaled) and where it blocked (off-CPU, exact). The
// rows' on-CPU times add up to the thread's exact total, as in the full stack table.
TopTable build_group_stack_table(const TopSample* prev, const TopSample& cur, uint64_t start_ns,
                                 const TopRow& row, TopGroupBy row_group_by, TopSortKey sort,
                                 const CommLookup& comm_of);

// Orders rows by `sort` (descending for numbers, ascending for PID/COMM), ties by on-CPU time,
// then pid, tid and stack ids, so the order is deterministic.
void sort_top_rows(std::vector<TopRow>& rows, TopSortKey sort);

}  // namespace kscope
