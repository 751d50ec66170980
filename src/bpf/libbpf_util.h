// RAII owners for libbpf objects, and routing of libbpf's own log.
#pragma once

#include <bpf/libbpf.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "util/result.h"

namespace kscope::bpf {

struct LinkDeleter {
  void operator()(bpf_link* link) const { bpf_link__destroy(link); }
};
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

// libbpf's log goes to stderr only with -v; otherwise the last lines are kept so that a load
// failure can say what the verifier said when asked to.
void install_libbpf_logger(int verbosity);
std::string last_libbpf_log(size_t max_lines = 20);

// libbpf 1.x returns NULL and sets errno; turn that into an Error naming what failed.
Error libbpf_error(const std::string& what, int err);

// An error for a failed bpf_object__load/skeleton load, with what to do about it.
Error load_error(const std::string& tool, int err);

// A BPF ring buffer consumer. The producer submits without wake-ups (see
// bpf/kscope_common.bpf.h), so poll() both waits for a forced wake-up and consumes what is
// pending when the timeout expires.
class RingBuffer {
 public:
  using Handler = std::function<void(const void* data, size_t size)>;
  static Result<std::unique_ptr<RingBuffer>> open(int map_fd, Handler handler);
  ~RingBuffer();
  RingBuffer(const RingBuffer&) = delete;
  RingBuffer& operator=(const RingBuffer&) = delete;

  // Waits up to timeout_ms, then consumes everything pending. Returns records consumed.
  // With budget_ns > 0 it stops once handling records has taken that long (the rest stays in
  // the ring for the next call): a producer faster than the handler would otherwise keep one
  // call consuming for as long as it produces (libbpf consumes until it finds the ring empty).
  Result<int> poll(int timeout_ms, uint64_t budget_ns = 0);
  // Consumes everything pending without waiting.
  Result<int> drain();
  int epoll_fd() const;

 private:
  RingBuffer() = default;
  static int on_record(void* ctx, void* data, size_t size);
  ring_buffer* rb_ = nullptr;
  Handler handler_;
  uint64_t budget_ns_ = 0;   // poll()'s budget, 0: none
  uint64_t budget_end_ = 0;  // set at the first record a budgeted poll() handles
  bool budget_spent_ = false;
};

// Opens a software perf event with sample_period 1 on every online CPU and attaches `prog` to
// each. The events count system-wide; the program filters by process.
struct PerfEventLinks {
  std::vector<int> fds;
  std::vector<Link> links;
  PerfEventLinks() = default;
  PerfEventLinks(PerfEventLinks&&) = default;
  PerfEventLinks& operator=(PerfEventLinks&&) = default;
  ~PerfEventLinks();
};
// With sample_freq > 0 the events sample at that frequency (Hz) instead; with sample_period > 0,
// every that many events (for cpu-clock: nanoseconds), which PERF_EVENT_IOC_PERIOD can change.
Result<PerfEventLinks> attach_sw_event_all_cpus(bpf_program* prog, unsigned long long config,
                                                const std::string& event_name,
                                                uint64_t sample_freq = 0,
                                                uint64_t sample_period = 0);

// Online CPU ids from /sys/devices/system/cpu/online.
Result<std::vector<int>> online_cpus();

// Sum of a per-CPU u64 array map element, and the per-CPU values.
Result<std::vector<uint64_t>> read_percpu_u64(int map_fd, uint32_t key);

}  // namespace kscope::bpf
