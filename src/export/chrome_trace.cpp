#include "export/chrome_trace.h"

#include <fmt/format.h>

#include <cerrno>
#include <set>

#include "export/fault_event_writer.h"

namespace kscope {

namespace {

// ns -> "us.fraction" with exact nanoseconds, as the format's ts/dur are in microseconds.
void append_us(fmt::memory_buffer& b, uint64_t ns) {
  fmt::format_to(std::back_inserter(b), "{}.{:03}", ns / 1000, ns % 1000);
}

class Out {
 public:
  explicit Out(std::FILE* f) : f_(f) {}
  fmt::memory_buffer& buf() { return buf_; }
  void maybe_flush() {
    if (buf_.size() > (1 << 20)) flush();
  }
  bool flush() {
    if (!buf_.size()) return ok_;
    if (std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size()) ok_ = false;
    buf_.clear();
    return ok_;
  }

 private:
  std::FILE* f_;
  fmt::memory_buffer buf_;
  bool ok_ = true;
};

}  // namespace

Status write_chrome_trace(const ChromeTraceInput& in, std::FILE* f) {
  Out out(f);
  auto& b = out.buf();
  auto it = std::back_inserter(b);
  fmt::format_to(it, "{{\"displayTimeUnit\":\"ns\",\"metadata\":{{");
  bool first = true;
  for (const auto& [k, v] : in.metadata) {
    if (!first) b.push_back(',');
    first = false;
    append_json_string(b, k);
    b.push_back(':');
    append_json_string(b, v);
  }
  fmt::format_to(it, "}},\"traceEvents\":[\n");
  first = true;
  auto sep = [&] {
    if (!first) fmt::format_to(it, ",\n");
    first = false;
  };

  // Name metadata for every process and thread that appears.
  std::set<uint32_t> pids;
  std::map<uint32_t, uint32_t> tids;  // tid -> pid
  for (const auto& s : in.slices) {
    pids.insert(s.pid);
    tids[s.tid] = s.pid;
  }
  for (const auto& fr : in.faults) {
    pids.insert(fr.pid);
    tids[fr.tid] = fr.pid;
  }
  for (uint32_t pid : pids) {
    sep();
    fmt::format_to(
        it,
        "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{},\"tid\":{},\"args\":{{\"name\":", pid,
        pid);
    auto n = in.process_names.find(pid);
    append_json_string(b, n == in.process_names.end() ? fmt::format("pid {}", pid) : n->second);
    fmt::format_to(it, "}}}}");
  }
  for (const auto& [tid, pid] : tids) {
    sep();
    fmt::format_to(
        it,
        "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{},\"tid\":{},\"args\":{{\"name\":", pid,
        tid);
    auto n = in.thread_names.find(tid);
    append_json_string(b, n == in.thread_names.end() ? fmt::format("tid {}", tid) : n->second);
    fmt::format_to(it, "}}}}");
  }

  for (const auto& s : in.slices) {
    sep();
    fmt::format_to(it, "{{\"ph\":\"X\",\"cat\":\"sched\",\"name\":");
    append_json_string(b, s.comm.empty() ? std::string("running") : s.comm);
    fmt::format_to(it, ",\"pid\":{},\"tid\":{},\"ts\":", s.pid, s.tid);
    append_us(b, s.start_ns);
    fmt::format_to(it, ",\"dur\":");
    append_us(b, s.end_ns >= s.start_ns ? s.end_ns - s.start_ns : 0);
    fmt::format_to(it, ",\"args\":{{\"cpu\":{}}}}}", s.cpu);
    out.maybe_flush();
  }

  for (size_t i = 0; i < in.faults.size(); ++i) {
    const FaultRecord& r = in.faults[i];
    sep();
    fmt::format_to(it,
                   "{{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"fault\",\"name\":\"{} "
                   "fault\",\"pid\":{},\"tid\":{},\"ts\":",
                   to_string(r.kind), r.pid, r.tid);
    append_us(b, r.time_ns);
    fmt::format_to(
        it,
        ",\"args\":{{\"addr\":\"{:#x}\",\"ip\":\"{:#x}\",\"access\":\"{}\",\"mode\":\"{}\","
        "\"segment\":\"{}\",\"cpu\":{}",
        r.addr, r.ip, to_string(r.access), to_string(r.mode), to_string(r.segment), r.cpu);
    if (r.latency_ns) fmt::format_to(it, ",\"latency_ns\":{}", *r.latency_ns);
    if (i < in.fault_functions.size() && !in.fault_functions[i].empty()) {
      fmt::format_to(it, ",\"function\":");
      append_json_string(b, in.fault_functions[i]);
    }
    fmt::format_to(it, "}}}}");
    out.maybe_flush();
  }
  fmt::format_to(it, "\n]}}\n");
  if (!out.flush() || std::fflush(f) != 0) return make_error("chrome-trace: write failed", errno);
  return {};
}

}  // namespace kscope
