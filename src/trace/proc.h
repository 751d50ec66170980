// Readers for /proc. Parsers take text so unit tests can feed fixtures; the contents of /proc are
// never trusted to be well-formed (a comm may hold spaces and parentheses).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/file.h"
#include "util/result.h"

namespace kscope::proc {

// The fields of /proc/PID/stat (or /proc/PID/task/TID/stat) kscope uses.
struct StatCounters {
  std::string comm;
  char state = '?';
  int ppid = 0;
  uint64_t minflt = 0;
  uint64_t majflt = 0;
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
  uint64_t num_threads = 0;
  uint64_t starttime_ticks = 0;
  uint64_t vsize = 0;
  int64_t rss_pages = 0;
  uint64_t flags = 0;  // PF_* flags (PF_KTHREAD = 0x00200000)
};

Result<StatCounters> parse_stat(std::string_view text);
Result<StatCounters> read_stat(pid_t pid);
Result<StatCounters> read_thread_stat(pid_t pid, pid_t tid);

// Thread ids of a process (/proc/PID/task).
Result<std::vector<pid_t>> list_threads(pid_t pid);

bool process_exists(pid_t pid);

// The thread group (process) of a task id, from the Tgid line of /proc/ID/status (a thread id
// works too: /proc/TID exists though it is not listed).
Result<pid_t> read_tgid(pid_t id);
// The Tgid of a status file's text.
Result<pid_t> parse_status_tgid(std::string_view status);
// Kernel threads have no user memory and cannot be traced for page faults.
bool is_kernel_thread(const StatCounters& stat);

// Parses "123,456" into pids; rejects non-numeric, zero and negative values.
Result<std::vector<pid_t>> parse_pid_list(std::string_view text);

}  // namespace kscope::proc
