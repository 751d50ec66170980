// Prometheus text exposition (format 0.0.4) of the monitor's live counters, and the parsing of
// --listen and of the one HTTP request the monitor answers (GET /metrics).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "monitor/jitter.h"
#include "monitor/sampler.h"
#include "util/result.h"

namespace kscope::monitor {

struct ListenAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string text;  // as printed: 127.0.0.1:9464 or [::1]:9464
  bool loopback = true;
};

// "PORT", ":PORT", "HOST:PORT", "[V6]:PORT". No host means 127.0.0.1. Wildcards (0.0.0.0, ::)
// are refused: metrics are unauthenticated, so exposing them beyond this machine needs an
// explicit interface address. Host names other than "localhost" are not resolved.
Result<ListenAddress> parse_listen_address(std::string_view text);

struct MetricsSnapshot {
  std::vector<SampleRow> processes;  // latest row of each registered process
  SampleRow aggregate;  // only its *_total fields: sums over every process while registered
  uint64_t registered = 0;
  uint64_t periods = 0;
  uint64_t missed_periods = 0;
  uint64_t rows_written = 0;
  uint64_t csv_rows_dropped = 0;
  const JitterStats* jitter = nullptr;
  double self_cpu_seconds = 0;
};

// Escapes a label value: backslash, double quote and newline.
std::string escape_label_value(std::string_view v);

std::string render_metrics(const MetricsSnapshot& s);

// What the monitor does with one HTTP request (already bounded in size by the caller).
struct HttpAnswer {
  int status = 200;
  std::string content_type = "text/plain; version=0.0.4; charset=utf-8";
  bool wants_metrics = false;  // fill the body with render_metrics()
  std::string body;
};
// nullopt-like: complete=false when the header block has not fully arrived yet.
struct HttpParse {
  bool complete = false;
  HttpAnswer answer;
};
HttpParse parse_http_request(std::string_view received);
std::string format_http_response(const HttpAnswer& a);

}  // namespace kscope::monitor
