// Brendan Gregg's folded stack format, one line per distinct stack:
//   comm;outermost_user;...;leaf_user;outermost_kernel_[k];...;leaf_kernel_[k] VALUE
// read by flamegraph.pl, speedscope, inferno and most flame graph tools.
#pragma once

#include <cstdio>
#include <string>

#include "model/stack_profile.h"
#include "util/result.h"

namespace kscope {

struct FoldedOptions {
  size_t value_index = 0;       // which of StackProfile::value_types to write
  bool include_comm = true;     // the process/thread name as the root frame
  bool annotate_kernel = true;  // suffix kernel frames with "_[k]"
};

// Writes `profile` folded; identical stacks are merged and lines sorted, so the output is
// deterministic. Samples whose value is 0 are left out.
Status write_folded(const StackProfile& profile, std::FILE* out, const FoldedOptions& options = {});
Status write_folded_file(const StackProfile& profile, const std::string& path,
                         const FoldedOptions& options = {});

// One frame name as it appears in a folded line (';' and whitespace that would break the
// format are replaced).
std::string folded_frame_name(const ProfileFrame& frame, bool annotate_kernel);

}  // namespace kscope
