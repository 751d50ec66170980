// The monitor's control-socket requests and replies (monitor/protocol.h), as they arrive: the
// input is split at the first newline the way the monitor reads one request line.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "monitor/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string_view line = text.substr(0, text.find('\n'));
  if (auto req = kscope::monitor::parse_request(line)) {
    if (req->kind != kscope::monitor::RequestKind::kStatus && (req->pid < 1 || req->pid > 4194304))
      __builtin_trap();  // documented range of a pid
  }
  if (auto pid = kscope::monitor::parse_pid(line))
    if (*pid < 1 || *pid > 4194304) __builtin_trap();
  (void)kscope::monitor::parse_reply(text);
  return 0;
}
