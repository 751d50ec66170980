// Recordings of `kscope top -o FILE` (RecordingKind::kTop): the common container of
// model/recording.h (header, checksummed blocks, metadata, threads, mappings, trailer) with
// three block types of its own, specified in docs/recording-format.md:
//   16 interval  the per-thread table of one refresh (or of the whole --once run); since 1.2
//                with each row's off-CPU time after the rows
//   17 slices    every on-CPU slice of the traced threads (for timelines / chrome-trace)
//   18 profile   the whole run as a symbolized StackProfile (on-CPU ns, switches, runq wait,
//                voluntary, involuntary per kernel+user stack) and the kernel's drop counters
//   19 profile increment  (1.1) what the accounts grew by since the previous increment, written
//                about once a second: a recording cut off before its profile block still has
//                the whole-run profile up to its last increment (the sum of the increments)
// Frames are stored resolved, so a recording reads the same on another machine or kernel.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/process_info.h"
#include "model/recording.h"
#include "model/stack_profile.h"
#include "model/top_model.h"
#include "util/result.h"

namespace kscope {

inline constexpr uint16_t kTopBlockInterval = 16;
inline constexpr uint16_t kTopBlockSlices = 17;
inline constexpr uint16_t kTopBlockProfile = 18;
inline constexpr uint16_t kTopBlockProfileIncrement = 19;

// One on-CPU slice of a thread; times are ns since tracing started.
struct TopSlice {
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint32_t cpu = 0;
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
  bool voluntary = false;  // the slice ended because the thread blocked
  std::string comm;        // filled by the reader from the thread names
  bool operator==(const TopSlice&) const = default;
};

struct TopIntervalRow {
  uint32_t pid = 0;
  uint32_t tid = 0;  // 0 when the table was grouped by pid or comm
  std::string comm;
  TopValues values;
  bool operator==(const TopIntervalRow&) const = default;
};

struct TopInterval {
  uint64_t end_ns = 0;  // since tracing started
  uint64_t interval_ns = 0;
  uint64_t switches_all = 0;
  double cpu_busy = -1;              // -1 when unknown
  std::vector<TopIntervalRow> rows;  // per thread
  bool has_offcpu = false;  // rows carry offcpu_ns (written by 1.2; older files: 0, unknown)
  bool operator==(const TopInterval&) const = default;
};

struct TopRecording {
  ReadSummary summary;
  RecordingMeta meta;
  std::vector<ThreadInfo> threads;
  std::vector<MappingSnapshot> mappings;
  std::vector<TopInterval> intervals;
  std::vector<TopSlice> slices;
  // The whole-run profile: the profile block of a clean shutdown, or else the sum of the
  // profile increments read (profile_from_increments), covering the run up to
  // profile.duration_ns. has_profile is false when neither survived.
  bool has_profile = false;
  bool profile_from_increments = false;
  uint64_t increments = 0;  // profile increment blocks read
  StackProfile profile;
  TopCounters counters;  // from the profile block, else from the last increment
};

// The values of one account as profile sample values, in the order of the value types
// (oncpu, switches, runq_wait, voluntary, involuntary, oncpu_samples, offcpu, slice).
using TopProfileValues = std::array<int64_t, 8>;
TopProfileValues profile_values(const TopValues& v);

// Turns cumulative per-account totals into increments: each call returns, for every account
// whose totals changed since the previous call, the (signed: an in-progress slice counted in one
// account can end up in another) difference. The increments of all calls add up exactly to the
// totals of the last call.
class ProfileIncrements {
 public:
  using Totals = std::unordered_map<TopAccountKey, TopValues, TopAccountKeyHash>;
  std::vector<std::pair<TopAccountKey, TopProfileValues>> next(const Totals& totals);
  // The account `from` is kept under `to` from now on (same stacks, another id): what was
  // written of it counts for `to`, so the move writes nothing.
  void rename(const TopAccountKey& from, const TopAccountKey& to);

 private:
  std::unordered_map<TopAccountKey, TopProfileValues, TopAccountKeyHash> written_;
};

class TopRecordingWriter {
 public:
  // Creates the file (0600) and writes its metadata: an unwritable path fails here.
  static Result<std::unique_ptr<TopRecordingWriter>> create(const std::string& path,
                                                            const RecordingMeta& meta);
  Status add_thread(const ThreadInfo& t);
  Status add_mappings(const MappingSnapshot& m);
  Status add_slice(const TopSlice& s);                            // buffered, written in blocks
  Status add_interval(const TopTable& table, uint64_t start_ns);  // rows merged per thread
  // What the accounts grew by since the previous increment (values may be negative), with
  // duration_ns = the end of the increment since tracing started; written at once.
  Status add_profile_increment(const StackProfile& increment, const TopCounters& counters);
  Status flush();
  Status finish(const StackProfile& profile, const TopCounters& counters);
  std::string describe() const;  // "N intervals, M slices, B bytes"

 private:
  explicit TopRecordingWriter(RecordingWriter w) : writer_(std::move(w)) {}
  Status flush_slices();
  RecordingWriter writer_;
  std::vector<uint8_t> slice_payload_;
  uint32_t slice_count_ = 0;
  uint64_t last_slice_start_ = 0;
  uint64_t slices_total_ = 0;
  uint64_t intervals_total_ = 0;
  uint64_t increments_total_ = 0;
};

// Reads a top recording. Damaged blocks are skipped and reported in summary (see
// visit_recording()); a faults recording or a file with nothing usable is an Error.
Result<TopRecording> read_top_recording(const std::string& path);

// The kind of a recording, from its header (cheap: reads the first block only when needed).
Result<RecordingKind> recording_kind(const std::string& path);

}  // namespace kscope
