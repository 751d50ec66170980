#include "bpf/tracefs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace kscope::bpf {

namespace {

constexpr const char* kDebugfsTracing = "/sys/kernel/debug/tracing";
constexpr const char* kTracefs = "/sys/kernel/tracing";

bool exists(const std::string& path) { return faccessat(AT_FDCWD, path.c_str(), F_OK, 0) == 0; }

TracefsStatus find_or_mount() {
  TracefsStatus s;
  // libbpf's own rule: the debugfs path whenever it exists.
  s.path = exists(kDebugfsTracing) ? kDebugfsTracing : kTracefs;
  if (exists(s.path + "/events")) {
    s.ready = true;
    return s;
  }
  if (s.path != kTracefs) {
    s.error = "the tracing directory " + s.path + " has no events directory";
    return s;
  }
  if (!exists(kTracefs)) {
    s.error = std::string(kTracefs) + " does not exist (a kernel without CONFIG_TRACING?)";
    return s;
  }
  if (mount("nodev", kTracefs, "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    s.error = std::string("tracefs is not mounted and mounting it at ") + kTracefs +
              " failed: " + std::strerror(errno) + " (mount -t tracefs nodev " + kTracefs + ")";
    return s;
  }
  s.mounted_now = true;
  s.ready = exists(s.path + "/events");
  if (!s.ready)
    s.error = std::string("tracefs mounted at ") + kTracefs + " has no events directory";
  return s;
}

}  // namespace

const TracefsStatus& ensure_tracefs() {
  static std::once_flag once;
  static TracefsStatus status;
  std::call_once(once, [] { status = find_or_mount(); });
  return status;
}

}  // namespace kscope::bpf
