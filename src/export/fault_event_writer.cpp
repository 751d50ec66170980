#include "export/fault_event_writer.h"

#include <cerrno>

namespace kscope {

Result<EventFormat> parse_event_format(std::string_view name) {
  if (name == "text") return EventFormat::kText;
  if (name == "csv") return EventFormat::kCsv;
  if (name == "jsonl") return EventFormat::kJsonl;
  return usage_error(fmt::format("unknown --format '{}': expected text, csv or jsonl", name));
}

void append_csv_field(fmt::memory_buffer& buf, std::string_view s) {
  bool quote = s.find_first_of(",\"\n\r") != std::string_view::npos;
  if (!quote) {
    buf.append(s);
    return;
  }
  buf.push_back('"');
  for (char c : s) {
    if (c == '"') buf.push_back('"');
    buf.push_back(c);
  }
  buf.push_back('"');
}

void append_json_string(fmt::memory_buffer& buf, std::string_view s) {
  buf.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        buf.append(std::string_view("\\\""));
        break;
      case '\\':
        buf.append(std::string_view("\\\\"));
        break;
      case '\n':
        buf.append(std::string_view("\\n"));
        break;
      case '\r':
        buf.append(std::string_view("\\r"));
        break;
      case '\t':
        buf.append(std::string_view("\\t"));
        break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          // comm is raw bytes: escape everything non-ASCII so the output is always valid JSON.
          fmt::format_to(std::back_inserter(buf), "\\u{:04x}", c);
        } else {
          buf.push_back(static_cast<char>(c));
        }
    }
  }
  buf.push_back('"');
}

FaultEventWriter::FaultEventWriter(std::FILE* out, EventFormat format, bool with_symbols,
                                   bool with_stack)
    : out_(out), format_(format), with_symbols_(with_symbols), with_stack_(with_stack) {}

FaultEventWriter::~FaultEventWriter() { (void)flush(); }

void FaultEventWriter::write_header() {
  auto out = std::back_inserter(buf_);
  switch (format_) {
    case EventFormat::kCsv:
      fmt::format_to(out, "{}{}{}{}{}\n", kFaultCsvHeader, with_symbols_ ? "," : "",
                     with_symbols_ ? kFaultSymbolField : "", with_stack_ ? "," : "",
                     with_stack_ ? kFaultStackField : "");
      break;
    case EventFormat::kText:
      fmt::format_to(
          out, "{:>14} {:>7} {:>7} {:<15} {:>18} {:>18} {:<6} {:<6} {:<5} {:<7} {:>11} {:>3}{}{}\n",
          "TIME(s)", "PID", "TID", "COMM", "ADDR", "IP", "ACCESS", "MODE", "KIND", "SEGMENT",
          "LATENCY(ns)", "CPU", with_symbols_ ? " SYMBOL" : "", with_stack_ ? " STACK" : "");
      break;
    case EventFormat::kJsonl:
      break;
  }
}

void FaultEventWriter::format(fmt::memory_buffer& buf, EventFormat format, const FaultRecord& r,
                              std::string_view comm, const std::string_view* symbol,
                              const std::string_view* stack) {
  auto out = std::back_inserter(buf);
  switch (format) {
    case EventFormat::kCsv:
      fmt::format_to(out, "{},{},{},", r.time_ns, r.pid, r.tid);
      append_csv_field(buf, comm);
      fmt::format_to(out, ",{:#x},{:#x},{},{},{},{},", r.addr, r.ip, to_string(r.access),
                     to_string(r.mode), to_string(r.kind), to_string(r.segment));
      if (r.latency_ns) fmt::format_to(out, "{}", *r.latency_ns);
      fmt::format_to(out, ",{}", r.cpu);
      if (symbol) {
        buf.push_back(',');
        append_csv_field(buf, *symbol);
      }
      if (stack) {
        buf.push_back(',');
        append_csv_field(buf, *stack);
      }
      buf.push_back('\n');
      break;
    case EventFormat::kJsonl:
      fmt::format_to(out, "{{\"time_ns\":{},\"pid\":{},\"tid\":{},\"comm\":", r.time_ns, r.pid,
                     r.tid);
      append_json_string(buf, comm);
      fmt::format_to(out,
                     ",\"addr\":\"{:#x}\",\"ip\":\"{:#x}\",\"access\":\"{}\",\"mode\":\"{}\","
                     "\"kind\":\"{}\",\"segment\":\"{}\",\"latency_ns\":",
                     r.addr, r.ip, to_string(r.access), to_string(r.mode), to_string(r.kind),
                     to_string(r.segment));
      if (r.latency_ns)
        fmt::format_to(out, "{}", *r.latency_ns);
      else
        buf.append(std::string_view("null"));
      fmt::format_to(out, ",\"cpu\":{}", r.cpu);
      if (symbol) {
        buf.append(std::string_view(",\"symbol\":"));
        append_json_string(buf, *symbol);
      }
      if (stack) {
        buf.append(std::string_view(",\"stack\":"));
        append_json_string(buf, *stack);
      }
      buf.append(std::string_view("}\n"));
      break;
    case EventFormat::kText: {
      // Non-printable bytes in comm would garble a terminal.
      std::string safe(comm);
      for (auto& c : safe)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
      fmt::format_to(out, "{:>14.9f} {:>7} {:>7} {:<15} {:>#18x} {:>#18x} {:<6} {:<6} {:<5} {:<7} ",
                     static_cast<double>(r.time_ns) / 1e9, r.pid, r.tid, safe, r.addr, r.ip,
                     to_string(r.access), to_string(r.mode), to_string(r.kind),
                     to_string(r.segment));
      if (r.latency_ns)
        fmt::format_to(out, "{:>11}", *r.latency_ns);
      else
        fmt::format_to(out, "{:>11}", "-");
      fmt::format_to(out, " {:>3}", r.cpu);
      if (symbol) fmt::format_to(out, " {}", *symbol);
      if (stack) fmt::format_to(out, " {}", stack->empty() ? std::string_view("-") : *stack);
      buf.push_back('\n');
      break;
    }
  }
}

void FaultEventWriter::write(const FaultRecord& r, std::string_view comm, std::string_view symbol,
                             std::string_view stack) {
  format(buf_, format_, r, comm, with_symbols_ ? &symbol : nullptr, with_stack_ ? &stack : nullptr);
  if (buf_.size() >= 1 << 16) (void)flush();
}

Status FaultEventWriter::flush() {
  if (failed_) return make_error("writing fault events failed earlier");
  if (buf_.size() > 0) {
    size_t n = std::fwrite(buf_.data(), 1, buf_.size(), out_);
    buf_.clear();
    if (n == 0 && errno) {
      failed_ = true;
      return errno_error("writing fault events failed");
    }
  }
  if (std::fflush(out_) != 0) {
    failed_ = true;
    return errno_error("writing fault events failed");
  }
  return {};
}

}  // namespace kscope
