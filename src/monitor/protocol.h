// The monitor's control socket: a Unix stream socket, one request per connection.
//   request:  one line of at most kMaxRequestBytes bytes ending in '\n':
//             "register PID" | "unregister PID" | "status"
//   reply:    "ok MESSAGE\n" followed by a body (status: a table), or "error MESSAGE\n";
//             the monitor closes the connection after the reply.
// See docs/monitor.md.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "util/fd.h"
#include "util/result.h"

namespace kscope::monitor {

constexpr size_t kMaxRequestBytes = 256;

enum class RequestKind { kRegister, kUnregister, kStatus };

struct Request {
  RequestKind kind = RequestKind::kStatus;
  pid_t pid = 0;
};

// A PID as the user typed it: decimal digits only, 1..4194304 (PID_MAX_LIMIT).
Result<pid_t> parse_pid(std::string_view text);

// Parses one request line (without the trailing newline). Errors are usage errors whose
// message is sent back to the client.
Result<Request> parse_request(std::string_view line);

struct Reply {
  bool ok = false;
  std::string message;  // the first line without "ok "/"error "
  std::string body;     // everything after the first line
};

// Parses a reply as received (a malformed reply is an error).
Result<Reply> parse_reply(std::string_view text);

// Who owns a monitor started by this process: the invoking user when run as root through sudo
// (SUDO_UID/SUDO_GID), else the effective user.
struct Owner {
  uid_t uid = 0;
  gid_t gid = 0;
  static Owner current();
};

// Where the control socket lives unless --socket is given:
//   KSCOPE_MONITOR_SOCKET if set; as root /run/kscope/UID/monitor.sock (UID = the owner);
//   otherwise $XDG_RUNTIME_DIR/kscope/monitor.sock, or /run/kscope/UID/monitor.sock when only
//   that one exists (a monitor started through sudo by this user).
Result<std::string> default_socket_path();

// Sends one request and returns the reply. Fails with a clear message when no monitor listens.
Result<Reply> call_monitor(const std::string& socket_path, const std::string& request_line,
                           int timeout_ms = 5000);

// The listening side: takes an exclusive lock (PATH.lock) so a running monitor is never robbed
// of its socket; a socket file left by a monitor that died (SIGKILL) is replaced. The socket is
// created 0600 and handed to the owner; the default directory is created 0700.
class ControlListener {
 public:
  static Result<ControlListener> open(const std::string& path, const Owner& owner,
                                      bool create_parent);
  ControlListener(ControlListener&&) = default;
  ControlListener& operator=(ControlListener&&) = default;
  ~ControlListener();
  int fd() const { return sock_.get(); }
  const std::string& path() const { return path_; }

 private:
  ControlListener() = default;
  std::string path_;
  Fd sock_;
  Fd lock_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// Credentials of a connected peer (SO_PEERCRED).
struct PeerCred {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};
Result<PeerCred> peer_credentials(int fd);

}  // namespace kscope::monitor
