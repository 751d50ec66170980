#include "trace/privileges.h"

#include <fmt/format.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace kscope {

namespace {

bool has_cap(const __user_cap_data_struct (&data)[2], int cap) {
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

}  // namespace

PrivilegeCheck check_bpf_privileges() {
  PrivilegeCheck result;
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) {
    result.missing = {"CAP_BPF", "CAP_PERFMON"};
    return result;
  }
  if (has_cap(data, CAP_SYS_ADMIN)) {
    result.sufficient = true;
    return result;
  }
  if (!has_cap(data, CAP_BPF)) result.missing.push_back("CAP_BPF");
  if (!has_cap(data, CAP_PERFMON)) result.missing.push_back("CAP_PERFMON");
  result.sufficient = result.missing.empty();
  return result;
}

std::string PrivilegeCheck::describe() const {
  if (sufficient) return geteuid() == 0 ? "root" : "CAP_BPF+CAP_PERFMON";
  return fmt::format("missing {}", fmt::join(missing, ", "));
}

Error privilege_error(const std::string& command, const PrivilegeCheck& check) {
  return make_error(
      fmt::format("{} needs root or CAP_BPF and CAP_PERFMON ({})", command, check.describe()), 0,
      fmt::format("run it as root, e.g. 'sudo kscope {} ...'", command));
}

}  // namespace kscope
