// Starts the command to trace. The child is created stopped at a gate: tracing is armed for its
// pid first, then release() lets it call execve, so the dynamic loader's first faults are seen.
// When kscope runs through sudo, the command runs as the invoking user (SUDO_UID/SUDO_GID) with
// that user's HOME, USER and LOGNAME (as `sudo -H -u USER` would set them).
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "util/fd.h"
#include "util/result.h"

namespace kscope {

struct LaunchOptions {
  int stdout_fd = -1;            // >= 0: the child's stdout (dup2'ed in the child)
  int stderr_fd = -1;            // >= 0: the child's stderr
  bool die_with_parent = false;  // SIGTERM to the child when kscope dies (PR_SET_PDEATHSIG)
  bool keep_privileges = false;  // run as kscope's own user even under sudo (kscope's helpers)
};

class LaunchedCommand {
 public:
  // Fails with exit code 127 when the program cannot be found, 126 when it is not executable.
  static Result<LaunchedCommand> start(const std::vector<std::string>& argv,
                                       const LaunchOptions& options = {});

  LaunchedCommand(LaunchedCommand&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)),
        argv0_(std::move(other.argv0_)),
        gate_(std::move(other.gate_)),
        exec_status_(std::move(other.exec_status_)),
        reaped_(other.reaped_) {}
  LaunchedCommand& operator=(LaunchedCommand&&) = delete;
  ~LaunchedCommand();

  pid_t pid() const { return pid_; }
  // Lets the child exec; reports the exec failure (127/126) if there was one.
  Status release();
  // Non-blocking: true once the child has exited (it stays a zombie until reap()).
  bool has_exited();
  // Reaps the child; returns its status in shell convention (code, or 128+signal).
  Result<int> reap();
  // Asks a still-running child to terminate (SIGTERM).
  void terminate();

 private:
  LaunchedCommand() = default;
  pid_t pid_ = -1;
  std::string argv0_;
  Fd gate_;         // write end: closing it releases the child
  Fd exec_status_;  // read end: the child writes errno here if execve fails (CLOEXEC otherwise)
  bool reaped_ = false;
};

// Finds argv0 in PATH the way execvp does; returns the path or an Error with exit 127/126.
Result<std::string> find_executable(const std::string& argv0);

}  // namespace kscope
