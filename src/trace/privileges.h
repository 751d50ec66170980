// Whether the caller may load BPF programs and open perf events.
#pragma once

#include <string>
#include <vector>

#include "util/result.h"

namespace kscope {

struct PrivilegeCheck {
  bool sufficient = false;
  std::vector<std::string> missing;  // capability names, e.g. "CAP_BPF"
  std::string describe() const;      // "root", "CAP_BPF+CAP_PERFMON", "missing CAP_BPF, ..."
};

// CAP_SYS_ADMIN covers both; otherwise CAP_BPF and CAP_PERFMON are needed.
PrivilegeCheck check_bpf_privileges();

// An Error for a command that cannot run without privileges.
Error privilege_error(const std::string& command, const PrivilegeCheck& check);

}  // namespace kscope
