#include "trace/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

#include "util/fd.h"
#include "util/file.h"

namespace kscope::proc {

namespace {

template <typename T>
bool parse_number(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

Result<StatCounters> parse_stat(std::string_view text) {
  // "pid (comm) state ppid ..."; comm may contain ')' so the last ')' ends it.
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open)
    return make_error("malformed stat line: no (comm)");
  StatCounters s;
  s.comm = std::string(text.substr(open + 1, close - open - 1));
  std::vector<std::string_view> fields;  // fields[0] is field 3 (state)
  std::string_view rest = text.substr(close + 1);
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && (rest[i] == ' ' || rest[i] == '\n')) ++i;
    size_t j = i;
    while (j < rest.size() && rest[j] != ' ' && rest[j] != '\n') ++j;
    if (j > i) fields.push_back(rest.substr(i, j - i));
    i = j;
  }
  // Field numbers as in proc(5): 3 state, 4 ppid, 9 flags, 10 minflt, 12 majflt, 14 utime,
  // 15 stime, 20 num_threads, 22 starttime, 23 vsize, 24 rss.
  if (fields.size() < 22) return make_error("malformed stat line: too few fields");
  auto field = [&](int n) { return fields[static_cast<size_t>(n - 3)]; };
  if (field(3).size() != 1) return make_error("malformed stat line: bad state");
  s.state = field(3)[0];
  bool ok = parse_number(field(4), s.ppid) && parse_number(field(9), s.flags) &&
            parse_number(field(10), s.minflt) && parse_number(field(12), s.majflt) &&
            parse_number(field(14), s.utime_ticks) && parse_number(field(15), s.stime_ticks) &&
            parse_number(field(20), s.num_threads) && parse_number(field(22), s.starttime_ticks) &&
            parse_number(field(23), s.vsize) && parse_number(field(24), s.rss_pages);
  if (!ok) return make_error("malformed stat line: a numeric field does not parse");
  return s;
}

Result<StatCounters> read_stat(pid_t pid) {
  auto path = fmt::format("/proc/{}/stat", pid);
  KSCOPE_ASSIGN_OR_RETURN(auto text, read_file(path, 4096));
  auto r = parse_stat(text);
  if (!r) return make_error(fmt::format("{}: {}", path, r.error().message));
  return r;
}

Result<StatCounters> read_thread_stat(pid_t pid, pid_t tid) {
  auto path = fmt::format("/proc/{}/task/{}/stat", pid, tid);
  KSCOPE_ASSIGN_OR_RETURN(auto text, read_file(path, 4096));
  auto r = parse_stat(text);
  if (!r) return make_error(fmt::format("{}: {}", path, r.error().message));
  return r;
}

Result<std::vector<pid_t>> list_threads(pid_t pid) {
  auto path = fmt::format("/proc/{}/task", pid);
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return errno_error(fmt::format("cannot list {}", path));
  std::vector<pid_t> tids;
  while (auto* ent = ::readdir(dir)) {
    pid_t tid = 0;
    if (parse_number(std::string_view(ent->d_name), tid) && tid > 0) tids.push_back(tid);
  }
  ::closedir(dir);
  return tids;
}

Result<pid_t> parse_status_tgid(std::string_view status) {
  size_t at = status.starts_with("Tgid:") ? 0 : status.find("\nTgid:");
  if (at == std::string_view::npos) return make_error("status has no Tgid line");
  if (status[at] == '\n') ++at;
  size_t start = at + 5;
  while (start < status.size() && (status[start] == ' ' || status[start] == '\t')) ++start;
  size_t end = start;
  while (end < status.size() && status[end] >= '0' && status[end] <= '9') ++end;
  pid_t tgid = 0;
  if (!parse_number(status.substr(start, end - start), tgid) || tgid <= 0)
    return make_error("malformed Tgid line");
  return tgid;
}

Result<pid_t> read_tgid(pid_t id) {
  KSCOPE_ASSIGN_OR_RETURN(auto text, read_file(fmt::format("/proc/{}/status", id), 16384));
  return parse_status_tgid(text);
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

bool is_kernel_thread(const StatCounters& stat) { return (stat.flags & 0x00200000) != 0; }

Result<std::vector<pid_t>> parse_pid_list(std::string_view text) {
  std::vector<pid_t> pids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    long long value = 0;
    if (!parse_number(item, value))
      return usage_error(fmt::format("invalid PID '{}': expected a positive number", item));
    if (value <= 0 || value > 4194304)
      return usage_error(fmt::format("invalid PID '{}': out of range", item));
    pids.push_back(static_cast<pid_t>(value));
    start = comma + 1;
  }
  if (pids.empty()) return usage_error("no PID given");
  return pids;
}

}  // namespace kscope::proc
