#include "bpf/libbpf_util.h"

#include <bpf/bpf.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>

#include "util/clock.h"
#include "util/fd.h"

namespace kscope::bpf {

namespace {

int g_verbosity = 0;
std::mutex g_log_mutex;
std::deque<std::string> g_log_tail;

// A message kept for error reports is cut to its last this many bytes: a verifier log comes as
// one message of up to megabytes, and the line naming the error is at its end.
constexpr size_t kKeptMessageBytes = 8192;

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
  // Formatted whole (a fixed buffer cut verifier logs before the line naming the error).
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (n < 0) return 0;
  std::string buf(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(buf.data(), buf.size(), format, args);
  buf.resize(static_cast<size_t>(n));
  if (g_verbosity > 0 && (level != LIBBPF_DEBUG || g_verbosity > 1)) {
    // libbpf's own messages already start with "libbpf: " (its pr_warn/pr_info/pr_debug add
    // it); label only those that do not.
    if (buf.compare(0, 8, "libbpf: ") != 0) std::fputs("libbpf: ", stderr);
    std::fputs(buf.c_str(), stderr);
  }
  if (buf.size() > kKeptMessageBytes) {
    size_t cut = buf.size() - kKeptMessageBytes;
    size_t line = buf.find('\n', cut);  // keep whole lines
    buf =
        "[...]\n" + buf.substr(line != std::string::npos && line + 1 < buf.size() ? line + 1 : cut);
  }
  std::lock_guard<std::mutex> lock(g_log_mutex);
  g_log_tail.push_back(std::move(buf));
  while (g_log_tail.size() > 200) g_log_tail.pop_front();
  return 0;
}

}  // namespace

void install_libbpf_logger(int verbosity) {
  g_verbosity = verbosity;
  libbpf_set_print(libbpf_print);
}

std::string last_libbpf_log(size_t max_lines) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  std::string out;
  size_t start = g_log_tail.size() > max_lines ? g_log_tail.size() - max_lines : 0;
  for (size_t i = start; i < g_log_tail.size(); ++i) out += g_log_tail[i];
  return out;
}

Error libbpf_error(const std::string& what, int err) {
  if (err < 0) err = -err;
  return make_error(what, err);
}

Error load_error(const std::string& tool, int err) {
  if (err < 0) err = -err;
  // libbpf suggests raising RLIMIT_MEMLOCK on any EPERM; on current kernels BPF memory is
  // charged to the memory cgroup and the real cause is missing privileges or a locked-down
  // kernel, so say that instead.
  std::string hint;
  if (err == EPERM || err == EACCES)
    hint =
        "loading BPF programs needs root or CAP_BPF+CAP_PERFMON; run with sudo, and see "
        "'kscope doctor'";
  else
    hint = "run 'kscope doctor' to see which kernel feature is missing, or -v for libbpf's log";
  return make_error(fmt::format("loading the {} BPF programs failed", tool), err, hint);
}

Result<std::unique_ptr<RingBuffer>> RingBuffer::open(int map_fd, Handler handler) {
  std::unique_ptr<RingBuffer> self(new RingBuffer());
  self->handler_ = std::move(handler);
  self->rb_ = ring_buffer__new(map_fd, &RingBuffer::on_record, self.get(), nullptr);
  if (!self->rb_) return libbpf_error("cannot open the BPF ring buffer", errno);
  return self;
}

RingBuffer::~RingBuffer() {
  if (rb_) ring_buffer__free(rb_);
}

// Returned by on_record() when a budgeted poll() has spent its time: libbpf stops consuming
// (the record is consumed) and passes it up. Nothing else here returns it.
constexpr int kBudgetSpent = -ECANCELED;

int RingBuffer::on_record(void* ctx, void* data, size_t size) {
  auto* self = static_cast<RingBuffer*>(ctx);
  self->handler_(data, size);
  if (!self->budget_ns_) return 0;
  uint64_t now = monotonic_ns();
  if (!self->budget_end_) self->budget_end_ = now + self->budget_ns_;
  if (now < self->budget_end_) return 0;
  self->budget_spent_ = true;
  return kBudgetSpent;
}

Result<int> RingBuffer::poll(int timeout_ms, uint64_t budget_ns) {
  budget_ns_ = budget_ns;
  budget_end_ = 0;
  budget_spent_ = false;
  int n = ring_buffer__poll(rb_, timeout_ms);
  if (n < 0 && n != -EINTR && !(n == kBudgetSpent && budget_spent_))
    return libbpf_error("polling the BPF ring buffer failed", n);
  // Records submitted with BPF_RB_NO_WAKEUP do not make epoll ready: consume them now.
  int more = budget_spent_ ? 0 : ring_buffer__consume(rb_);
  if (more < 0 && more != -EINTR && !(more == kBudgetSpent && budget_spent_))
    return libbpf_error("reading the BPF ring buffer failed", more);
  budget_ns_ = 0;
  return (n > 0 ? n : 0) + (more > 0 ? more : 0);
}

Result<int> RingBuffer::drain() {
  int n = ring_buffer__consume(rb_);
  if (n < 0 && n != -EINTR) return libbpf_error("reading the BPF ring buffer failed", n);
  return n > 0 ? n : 0;
}

int RingBuffer::epoll_fd() const { return ring_buffer__epoll_fd(rb_); }

PerfEventLinks::~PerfEventLinks() {
  links.clear();  // detach before closing the events
  for (int fd : fds)
    if (fd >= 0) ::close(fd);
}

Result<std::vector<int>> online_cpus() {
  FILE* f = std::fopen("/sys/devices/system/cpu/online", "re");
  if (!f) return errno_error("cannot read /sys/devices/system/cpu/online");
  char buf[4096] = {};
  size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = 0;
  std::vector<int> cpus;
  const char* p = buf;
  while (*p && *p != '\n') {
    char* end = nullptr;
    long a = std::strtol(p, &end, 10);
    if (end == p || a < 0 || a > 65535)
      return make_error("malformed /sys/devices/system/cpu/online");
    long b = a;
    p = end;
    if (*p == '-') {
      ++p;
      b = std::strtol(p, &end, 10);
      if (end == p || b < a || b > 65535)
        return make_error("malformed /sys/devices/system/cpu/online");
      p = end;
    }
    for (long c = a; c <= b; ++c) cpus.push_back(static_cast<int>(c));
    if (*p == ',') ++p;
  }
  if (cpus.empty()) return make_error("no online CPUs listed in /sys/devices/system/cpu/online");
  return cpus;
}

Result<PerfEventLinks> attach_sw_event_all_cpus(bpf_program* prog, unsigned long long config,
                                                const std::string& event_name, uint64_t sample_freq,
                                                uint64_t sample_period) {
  KSCOPE_ASSIGN_OR_RETURN(auto cpus, online_cpus());
  PerfEventLinks result;
  for (int cpu : cpus) {
    perf_event_attr attr = {};
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = config;
    if (sample_period) {
      attr.sample_period = sample_period;
    } else if (sample_freq) {
      attr.freq = 1;
      attr.sample_freq = sample_freq;
    } else {
      attr.sample_period = 1;  // every event
    }
    long fd =
        syscall(SYS_perf_event_open, &attr, -1 /* all processes */, cpu, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      std::string hint = (err == EACCES || err == EPERM)
                             ? "perf events need root or CAP_PERFMON; run with sudo"
                             : "run 'kscope doctor' to check which perf events this kernel offers";
      return make_error(fmt::format("perf_event_open({}) on CPU {} failed", event_name, cpu), err,
                        hint);
    }
    result.fds.push_back(static_cast<int>(fd));
    bpf_link* link = bpf_program__attach_perf_event(prog, static_cast<int>(fd));
    if (!link)
      return libbpf_error(
          fmt::format("attaching to the {} perf event on CPU {} failed", event_name, cpu), errno);
    result.links.emplace_back(link);
  }
  return result;
}

Result<std::vector<uint64_t>> read_percpu_u64(int map_fd, uint32_t key) {
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return libbpf_error("cannot count the possible CPUs", ncpus);
  std::vector<uint64_t> values(static_cast<size_t>(ncpus));
  if (bpf_map_lookup_elem(map_fd, &key, values.data()) != 0)
    return errno_error("reading a per-CPU BPF counter failed");
  return values;
}

}  // namespace kscope::bpf
