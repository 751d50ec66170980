// kscope top's whole-run profile: the accounts of the run as a StackProfile (for --folded,
// recordings, the report's flame graph, pprof/folded/csv exports). Its value types are named
// here once; readers look them up by name (StackProfile::value_index), never by position, so a
// profile with more, fewer or reordered value types still reads.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "model/stack_profile.h"
#include "model/top_model.h"
#include "util/result.h"

namespace kscope {

namespace top_profile {
// On-CPU time by stack: sampled, scaled to the threads' exact totals. (Recordings before minor
// version 3 used "oncpu" for the slice value; their reader renames it to kSlice.)
inline constexpr const char* kOnCpu = "oncpu";                 // nanoseconds
inline constexpr const char* kSwitches = "switches";           // schedule-ins, count
inline constexpr const char* kRunqWait = "runq_wait";          // nanoseconds
inline constexpr const char* kVoluntary = "voluntary";         // count
inline constexpr const char* kInvoluntary = "involuntary";     // count
inline constexpr const char* kOnCpuSamples = "oncpu_samples";  // cpu-clock samples, count
inline constexpr const char* kOffCpu = "offcpu";               // nanoseconds, by switch-out stack
inline constexpr const char* kSlice = "slice";  // ns of the slices that ended at the stack
}  // namespace top_profile

// `--value oncpu|offcpu|switches` (folded output): the profile value type it names, or an
// error naming the choices.
Result<const char*> top_folded_value(const std::string& option);

// The profile with the sample type names pprof users expect: cpu (on-CPU ns, sampled and
// scaled), samples, off_cpu (ns), switches; the others keep their names.
StackProfile top_pprof_profile(StackProfile profile);

// The value types a top profile is written with; the first (on-CPU ns) is the default.
std::vector<ProfileValueType> top_profile_value_types();

// A sample's values as TopValues, found by name in profile.value_types (missing ones are 0,
// negative ones clamp to 0).
TopValues top_values_of(const StackProfile& profile, const ProfileSample& sample);

// Builds the profile: one sample per account, frames interned (the same frame of two stacks is
// one ProfileFrame).
class TopProfileBuilder {
 public:
  // build_id_of(path): the GNU build-id of a binary ("" when unknown).
  explicit TopProfileBuilder(std::function<std::string(const std::string&)> build_id_of);
  // kernel then user frames, each leaf first (as TopStackView holds them).
  void add(uint32_t pid, uint32_t tid, std::string comm, const TopStackView& stack,
           const TopValues& values);
  // The same with signed values in the order of top_profile_value_types() (a recording's
  // profile increments can be negative).
  void add(uint32_t pid, uint32_t tid, std::string comm, const TopStackView& stack,
           std::vector<int64_t> values);
  StackProfile take(uint64_t duration_ns);

 private:
  uint32_t intern(const TopFrameView& f);
  std::function<std::string(const std::string&)> build_id_of_;
  std::map<std::tuple<bool, uint64_t, std::string, bool>, uint32_t> frame_index_;
  std::map<std::string, std::string> build_ids_;
  StackProfile profile_;
};

}  // namespace kscope
