// What -p and -t name, checked before anything is loaded: a PID must be a live process (a
// thread-group leader), a TID a live thread; the messages name what the number really is.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "util/result.h"

namespace kscope {

struct ThreadTarget {
  pid_t tgid = 0;  // its process
  pid_t tid = 0;
};

// -p: each PID is a process that has not exited (and, unless `kernel_threads_ok`, is not a
// kernel thread: those take no page faults). A thread id is refused with a message naming its
// process (use -p PROCESS or `tid_option` TID); a process whose threads have all exited (a
// zombie) gets "process N has exited" (exit 1). A PID with no /proc entry gets "no such
// process: N": it never existed or it has been reaped, which /proc cannot tell apart. kscope
// faults, top and monitor use these words, and "process N has exited" too for a target that
// exits between this check and the start of tracing.
Status check_process_targets(const std::vector<pid_t>& pids, const std::string& tid_option,
                             bool kernel_threads_ok = false);

// True when no thread of the process is still running (all exited, not reaped yet, or gone).
bool process_has_exited(pid_t pid);

// -t: each TID is a live thread (of a user process unless `kernel_threads_ok`); returns it with
// its process.
Result<std::vector<ThreadTarget>> resolve_thread_targets(const std::vector<pid_t>& tids,
                                                         bool kernel_threads_ok = false);

}  // namespace kscope
