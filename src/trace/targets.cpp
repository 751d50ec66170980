#include "trace/targets.h"

#include <fmt/format.h>

#include "trace/proc.h"

namespace kscope {

namespace {

// A task that has exited but is not reaped yet reads as Z (zombie) or X (dead).
bool exited_state(char state) { return state == 'Z' || state == 'X'; }

}  // namespace

bool process_has_exited(pid_t pid) {
  auto tids = proc::list_threads(pid);
  if (!tids) return !proc::process_exists(pid);
  for (pid_t tid : *tids) {
    auto st = proc::read_thread_stat(pid, tid);
    if (st && !exited_state(st->state)) return false;
  }
  return true;
}

namespace {

std::string comm_of(pid_t pid) {
  auto st = proc::read_stat(pid);
  return st ? st->comm : std::string("?");
}

}  // namespace

Status check_process_targets(const std::vector<pid_t>& pids, const std::string& tid_option,
                             bool kernel_threads_ok) {
  for (pid_t pid : pids) {
    auto tgid = proc::read_tgid(pid);
    if (!tgid) {
      if (!proc::process_exists(pid)) return make_error(fmt::format("no such process: {}", pid));
      return make_error(fmt::format("cannot read process {}", pid), tgid.error().sys_errno);
    }
    if (*tgid != pid) {
      Error e = usage_error(fmt::format("{} is a thread of process {} ({}), not a process", pid,
                                        *tgid, comm_of(*tgid)));
      e.hint = tid_option.empty()
                   ? fmt::format("use -p {} to trace the whole process", *tgid)
                   : fmt::format("use -p {} for the whole process or {} {} for this thread", *tgid,
                                 tid_option, pid);
      return e;
    }
    auto stat = proc::read_stat(pid);
    if (!stat) {
      if (!proc::process_exists(pid)) return make_error(fmt::format("no such process: {}", pid));
      return make_error(fmt::format("cannot read process {}", pid), stat.error().sys_errno);
    }
    if (!kernel_threads_ok && proc::is_kernel_thread(*stat))
      return make_error(fmt::format(
          "process {} ({}) is a kernel thread: it has no user memory and takes no page faults", pid,
          stat->comm));
    if (process_has_exited(pid)) return make_error(fmt::format("process {} has exited", pid));
  }
  return {};
}

Result<std::vector<ThreadTarget>> resolve_thread_targets(const std::vector<pid_t>& tids,
                                                         bool kernel_threads_ok) {
  std::vector<ThreadTarget> out;
  for (pid_t tid : tids) {
    auto tgid = proc::read_tgid(tid);
    if (!tgid) {
      if (!proc::process_exists(tid)) return make_error(fmt::format("no such thread: {}", tid));
      return make_error(fmt::format("cannot read thread {}", tid), tgid.error().sys_errno);
    }
    auto st = proc::read_thread_stat(*tgid, tid);
    if (!st) return make_error(fmt::format("no such thread: {}", tid));
    if (!kernel_threads_ok && proc::is_kernel_thread(*st))
      return make_error(fmt::format(
          "thread {} ({}) is a kernel thread: it has no user memory and takes no page faults", tid,
          st->comm));
    if (exited_state(st->state)) {
      if (tid == *tgid) return make_error(fmt::format("thread {} has exited", tid));
      return make_error(fmt::format("thread {} of process {} has exited", tid, *tgid));
    }
    bool dup = false;
    for (const auto& t : out) dup = dup || t.tid == tid;
    if (!dup) out.push_back(ThreadTarget{*tgid, tid});
  }
  return out;
}

}  // namespace kscope
