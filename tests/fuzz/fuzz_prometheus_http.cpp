// The monitor's Prometheus endpoint (--prometheus): parse_http_request on whatever a client
// sends (the monitor hands it the bytes received so far, bounded), then the response it would
// write. Checks what the endpoint promises: nothing is answered before the header block ends, a
// status is one of those the monitor sends, metrics only go with 200 to GET/HEAD of /metrics, and
// the response's Content-Length is the body's size. Also parse_listen_address on the same text.
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "monitor/prometheus.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kscope::monitor;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  HttpParse p = parse_http_request(text);
  bool ended = text.find("\r\n\r\n") != std::string_view::npos ||
               text.find("\n\n") != std::string_view::npos;
  if (p.complete != ended) __builtin_trap();
  if (p.complete) {
    int s = p.answer.status;
    if (s != 200 && s != 400 && s != 404 && s != 405) __builtin_trap();
    if (p.answer.wants_metrics && s != 200) __builtin_trap();
    if (p.answer.wants_metrics &&
        !(text.rfind("GET /metrics", 0) == 0 || text.rfind("HEAD /metrics", 0) == 0))
      __builtin_trap();
    std::string response = format_http_response(p.answer);
    std::string length = "Content-Length: " + std::to_string(p.answer.body.size()) + "\r\n";
    if (response.find(length) == std::string::npos) __builtin_trap();
    size_t body = response.find("\r\n\r\n");
    if (body == std::string::npos || response.substr(body + 4) != p.answer.body) __builtin_trap();
  }
  // An accepted listen address has a port and is never a wildcard.
  if (auto a = parse_listen_address(text.substr(0, text.find('\n')))) {
    if (a->addr.ss_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(&a->addr);
      if (a->len != sizeof(sockaddr_in) || sin->sin_port == 0 || sin->sin_addr.s_addr == 0)
        __builtin_trap();
    } else if (a->addr.ss_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&a->addr);
      if (a->len != sizeof(sockaddr_in6) || sin6->sin6_port == 0 ||
          IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
        __builtin_trap();
    } else {
      __builtin_trap();
    }
  }
  return 0;
}
