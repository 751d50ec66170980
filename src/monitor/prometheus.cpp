#include "monitor/prometheus.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace kscope::monitor {

Result<ListenAddress> parse_listen_address(std::string_view text) {
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return usage_error(fmt::format("--listen '{}': expected [IPV6]:PORT", text));
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      port_text = text;
    } else {
      host = std::string(text.substr(0, colon));
      port_text = text.substr(colon + 1);
      if (host.find(':') != std::string::npos)
        return usage_error(fmt::format("--listen '{}': write IPv6 addresses as [ADDR]:PORT", text));
    }
  }
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || p != port_text.data() + port_text.size() ||
      port == 0 || port > 65535)
    return usage_error(
        fmt::format("--listen '{}': the port must be a number from 1 to 65535", text));
  ListenAddress a;
  if (host.empty() || host == "localhost") host = "127.0.0.1";
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    if (v4.s_addr == htonl(INADDR_ANY))
      return usage_error(
          "--listen: refusing the wildcard address 0.0.0.0; give the address of "
          "one interface (metrics are unauthenticated)");
    auto* sin = reinterpret_cast<sockaddr_in*>(&a.addr);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    sin->sin_addr = v4;
    a.len = sizeof(sockaddr_in);
    a.loopback = (ntohl(v4.s_addr) >> 24) == 127;
    a.text = fmt::format("{}:{}", host, port);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_UNSPECIFIED(&v6))
      return usage_error(
          "--listen: refusing the wildcard address ::; give the address of one "
          "interface (metrics are unauthenticated)");
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.addr);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    sin6->sin6_addr = v6;
    a.len = sizeof(sockaddr_in6);
    a.loopback = IN6_IS_ADDR_LOOPBACK(&v6);
    a.text = fmt::format("[{}]:{}", host, port);
  } else {
    return usage_error(fmt::format(
        "--listen '{}': '{}' is not an IP address (only 'localhost' is resolved)", text, host));
  }
  return a;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

namespace {

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

std::string labels(const SampleRow& r) {
  return fmt::format("{{pid=\"{}\",comm=\"{}\"}}", r.pid, escape_label_value(r.comm));
}

template <typename F>
void per_process(std::string& out, const MetricsSnapshot& s, const char* name, F value) {
  for (const auto& r : s.processes) out += fmt::format("{}{} {}\n", name, labels(r), value(r));
}

std::string seconds(uint64_t ns) { return fmt::format("{:.9f}", static_cast<double>(ns) / 1e9); }

}  // namespace

// Per-process families carry only registered processes, one series per pid: sum() over a family
// is the sum of those processes' own kernel counters. The monitor-wide totals are a different
// quantity (what every process did while it was registered, exited ones included) and have their
// own unlabelled names, so no sum() mixes the two.
std::string render_metrics(const MetricsSnapshot& s) {
  std::string out;
  family(out, "kscope_monitor_minor_faults_total", "counter",
         "Minor page faults of a registered process since it started (the kernel's minflt).");
  per_process(out, s, "kscope_monitor_minor_faults_total",
              [](const SampleRow& r) { return r.min_faults_total; });
  family(out, "kscope_monitor_major_faults_total", "counter",
         "Major page faults of a registered process since it started (the kernel's majflt).");
  per_process(out, s, "kscope_monitor_major_faults_total",
              [](const SampleRow& r) { return r.maj_faults_total; });
  family(out, "kscope_monitor_cpu_seconds_total", "counter",
         "CPU time (user+system) of a registered process since it started, in seconds, from "
         "its process CPU clock (the kernel's sum_exec_runtime of all its threads).");
  per_process(out, s, "kscope_monitor_cpu_seconds_total",
              [](const SampleRow& r) { return seconds(r.cpu_time_ns_total); });
  family(out, "kscope_monitor_cpu_utilization_ratio", "gauge",
         "CPU time / wall time of a registered process over the latest sampling period (1 = "
         "one full core).");
  per_process(out, s, "kscope_monitor_cpu_utilization_ratio",
              [](const SampleRow& r) { return fmt::format("{:.6f}", r.cpu_util); });
  family(out, "kscope_monitor_resident_memory_bytes", "gauge",
         "Resident set size of a registered process at the latest sample.");
  per_process(out, s, "kscope_monitor_resident_memory_bytes",
              [](const SampleRow& r) { return r.rss_kb * 1024; });
  family(out, "kscope_monitor_observed_minor_faults_total", "counter",
         "Minor page faults the monitor observed since it started: the sum over every process "
         "ever registered of its faults while registered (exited processes included).");
  out +=
      fmt::format("kscope_monitor_observed_minor_faults_total {}\n", s.aggregate.min_faults_total);
  family(out, "kscope_monitor_observed_major_faults_total", "counter",
         "Major page faults the monitor observed since it started: the sum over every process "
         "ever registered of its faults while registered (exited processes included).");
  out +=
      fmt::format("kscope_monitor_observed_major_faults_total {}\n", s.aggregate.maj_faults_total);
  family(out, "kscope_monitor_observed_cpu_seconds_total", "counter",
         "CPU time the monitor observed since it started: the sum over every process ever "
         "registered of its CPU time while registered (exited processes included).");
  out += fmt::format("kscope_monitor_observed_cpu_seconds_total {}\n",
                     seconds(s.aggregate.cpu_time_ns_total));
  family(out, "kscope_monitor_registered_processes", "gauge", "Processes being sampled.");
  out += fmt::format("kscope_monitor_registered_processes {}\n", s.registered);
  family(out, "kscope_monitor_periods_total", "counter", "Sampling periods completed.");
  out += fmt::format("kscope_monitor_periods_total {}\n", s.periods);
  family(out, "kscope_monitor_missed_periods_total", "counter",
         "Sampling periods skipped because the monitor woke up more than a period late.");
  out += fmt::format("kscope_monitor_missed_periods_total {}\n", s.missed_periods);
  family(out, "kscope_monitor_csv_rows_dropped_total", "counter",
         "Rows that could not be written to the -o CSV file.");
  out += fmt::format("kscope_monitor_csv_rows_dropped_total {}\n", s.csv_rows_dropped);
  if (s.jitter) {
    family(out, "kscope_monitor_wakeup_lateness_seconds", "summary",
           "How late after its deadline each sampling period started.");
    for (double q : {0.5, 0.9, 0.99})
      out += fmt::format("kscope_monitor_wakeup_lateness_seconds{{quantile=\"{}\"}} {:.6f}\n", q,
                         s.jitter->quantile_ns(q) / 1e9);
    out += fmt::format("kscope_monitor_wakeup_lateness_seconds_sum {:.6f}\n",
                       s.jitter->mean_ns() * s.jitter->count() / 1e9);
    out += fmt::format("kscope_monitor_wakeup_lateness_seconds_count {}\n", s.jitter->count());
  }
  family(out, "kscope_monitor_self_cpu_seconds_total", "counter",
         "CPU time used by the monitor itself.");
  out += fmt::format("kscope_monitor_self_cpu_seconds_total {:.6f}\n", s.self_cpu_seconds);
  return out;
}

HttpParse parse_http_request(std::string_view received) {
  HttpParse p;
  size_t end = received.find("\r\n\r\n");
  if (end == std::string_view::npos) end = received.find("\n\n");
  if (end == std::string_view::npos) return p;
  p.complete = true;
  size_t eol = received.find('\n');
  std::string_view line = received.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
      line.substr(sp2 + 1).rfind("HTTP/1.", 0) != 0) {
    p.answer.status = 400;
    p.answer.body = "bad request\n";
    return p;
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view path = target.substr(0, target.find('?'));
  if (method != "GET" && method != "HEAD") {
    p.answer.status = 405;
    p.answer.body = "only GET is supported\n";
  } else if (path == "/metrics") {
    p.answer.wants_metrics = true;
  } else if (path == "/") {
    p.answer.body = "kscope monitor: metrics at /metrics\n";
  } else {
    p.answer.status = 404;
    p.answer.body = "not found; metrics are at /metrics\n";
  }
  return p;
}

std::string format_http_response(const HttpAnswer& a) {
  const char* reason = a.status == 200   ? "OK"
                       : a.status == 400 ? "Bad Request"
                       : a.status == 404 ? "Not Found"
                       : a.status == 405 ? "Method Not Allowed"
                       : a.status == 413 ? "Payload Too Large"
                                         : "Error";
  return fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
      "Connection: close\r\n\r\n{}",
      a.status, reason, a.content_type, a.body.size(), a.body);
}

}  // namespace kscope::monitor
