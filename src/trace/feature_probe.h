// What `kscope doctor` reports: each kernel feature kscope uses, found out by trying it (loading
// and attaching a tiny program, opening a perf event), not by comparing kernel versions.
#pragma once

#include <string>
#include <vector>

namespace kscope {

struct FeatureCheck {
  std::string name;
  std::string used_by;  // which commands need it ("faults", "top", "faults,top", "all")
  bool ok = false;
  std::string detail;  // why it is missing, or a note when present
  // Missing, kscope still runs, with less (the detail says what): not a reason for "cannot run".
  bool optional = false;
  bool needed_by(const std::string& command) const {
    return used_by == "all" || used_by.find(command) != std::string::npos;
  }
};

struct FeatureReport {
  std::vector<FeatureCheck> checks;
  // BTF or privileges are missing, so the program and perf-event checks were not tried.
  bool programs_skipped = false;
};

// Tries everything. verbosity > 0: libbpf's own log on stderr (-v).
FeatureReport probe_kernel_features(int verbosity);

}  // namespace kscope
