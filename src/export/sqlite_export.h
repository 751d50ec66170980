// A SQLite database of a recording (`kscope export --format sqlite`). Schema in
// docs/export-formats.md; kSqliteSchema below is the authoritative DDL. Tables:
//   meta(key, value)                         recording metadata and totals
//   processes(pid, comm, faults, major_faults, kernel_minflt, kernel_majflt, exited_threads)
//   threads(pid, tid, comm)
//   mappings(pid, snapshot_ns, start, end, offset, inode, dev_major, dev_minor, perms, path)
//   faults(id, time_ns, pid, tid, comm, addr, page, ip, access, mode, kind, segment,
//          latency_ns, cpu, frame_id)
//   frames(id, addr, function, offset, module, module_path, build_id, kernel, resolved, label)
//   stacks(stack_id, depth, frame_id)       depth 0 = leaf
//   accounts(stack_id, pid, tid, comm, type, unit, value)
// For a faults recording, each stack is the single faulting location and accounts hold the fault
// and major-fault counts per (process, location). A `top` recording fills accounts with on-CPU
// time per stack.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "model/recording.h"
#include "model/stack_profile.h"
#include "util/result.h"

namespace kscope {

extern const char* const kSqliteSchema;

struct SqliteExportInput {
  const Recording* recording = nullptr;  // may be null (top: only the profile)
  // Per fault (same index as recording->faults): index into profile->frames, or empty.
  std::span<const uint32_t> frame_of_fault;
  // A recording with stacks: its call chains (frame lists, as in the profile's samples) and each
  // fault's chain, for faults.stack_id. Empty otherwise.
  std::span<const std::vector<uint32_t>> chains;
  std::span<const uint32_t> chain_of_fault;
  const StackProfile* profile = nullptr;  // may be null
};

// Creates `path` (replacing an existing file) and fills it. The database is written to
// "<path>.tmp-XXXXXX" and renamed, so a failure leaves no half-written file at `path`.
Status write_sqlite(const SqliteExportInput& input, const std::string& path);

}  // namespace kscope
