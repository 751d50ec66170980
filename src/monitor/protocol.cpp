#include "monitor/protocol.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "util/clock.h"

namespace kscope::monitor {

namespace {

bool parse_unsigned(std::string_view s, unsigned long& v) {
  if (s.empty() || s.size() > 12) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Bytes shown in error messages about user input: printable, bounded.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 40) out += "...";
  return out;
}

Result<sockaddr_un> make_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return usage_error(fmt::format("socket path '{}' is empty or longer than {} bytes", path,
                                   sizeof(addr.sun_path) - 1));
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

}  // namespace

Result<pid_t> parse_pid(std::string_view text) {
  text = trim(text);
  unsigned long v = 0;
  if (!parse_unsigned(text, v))
    return usage_error(
        fmt::format("invalid PID '{}': expected a positive decimal number", printable(text)));
  if (v == 0 || v > 4194304)
    return usage_error(fmt::format("invalid PID '{}': out of range (1..4194304)", printable(text)));
  return static_cast<pid_t>(v);
}

Result<Request> parse_request(std::string_view line) {
  line = trim(line);
  if (line.empty())
    return usage_error("empty request (expected register PID, unregister PID or status)");
  for (char c : line)
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t')
      return usage_error("malformed request: control characters");
  size_t sp = line.find_first_of(" \t");
  std::string_view verb = line.substr(0, sp);
  std::string_view arg = sp == std::string_view::npos ? std::string_view() : trim(line.substr(sp));
  Request r;
  if (verb == "register" || verb == "R") {
    r.kind = RequestKind::kRegister;
  } else if (verb == "unregister" || verb == "U") {
    r.kind = RequestKind::kUnregister;
  } else if (verb == "status") {
    if (!arg.empty()) return usage_error("malformed request: status takes no argument");
    r.kind = RequestKind::kStatus;
    return r;
  } else {
    return usage_error(fmt::format(
        "unknown request '{}' (expected register PID, unregister PID or status)", printable(verb)));
  }
  if (arg.empty()) return usage_error(fmt::format("malformed request: {} needs a PID", verb));
  KSCOPE_ASSIGN_OR_RETURN(r.pid, parse_pid(arg));
  return r;
}

Result<Reply> parse_reply(std::string_view text) {
  size_t nl = text.find('\n');
  if (nl == std::string_view::npos) return make_error("malformed reply from the monitor");
  std::string_view first = text.substr(0, nl);
  Reply r;
  if (first.substr(0, 3) == "ok ") {
    r.ok = true;
    r.message = std::string(first.substr(3));
  } else if (first == "ok") {
    r.ok = true;
  } else if (first.substr(0, 6) == "error ") {
    r.message = std::string(first.substr(6));
  } else {
    return make_error("malformed reply from the monitor");
  }
  r.body = std::string(text.substr(nl + 1));
  return r;
}

Owner Owner::current() {
  Owner o{::geteuid(), ::getegid()};
  if (o.uid != 0) return o;
  const char* u = std::getenv("SUDO_UID");
  const char* g = std::getenv("SUDO_GID");
  unsigned long uv = 0, gv = 0;
  if (u && g && parse_unsigned(u, uv) && parse_unsigned(g, gv)) {
    o.uid = static_cast<uid_t>(uv);
    o.gid = static_cast<gid_t>(gv);
  }
  return o;
}

Result<std::string> default_socket_path() {
  if (const char* env = std::getenv("KSCOPE_MONITOR_SOCKET"); env && *env) return std::string(env);
  Owner owner = Owner::current();
  std::string run_path = fmt::format("/run/kscope/{}/monitor.sock", owner.uid);
  if (::geteuid() == 0) return run_path;
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg) {
    std::string p = std::string(xdg) + "/kscope/monitor.sock";
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0 && ::lstat(run_path.c_str(), &st) == 0) return run_path;
    return p;
  }
  struct stat st;
  if (::lstat(run_path.c_str(), &st) == 0) return run_path;
  return make_error("no default place for the monitor socket: XDG_RUNTIME_DIR is not set", 0,
                    "pass --socket PATH (or set KSCOPE_MONITOR_SOCKET)");
}

Result<Reply> call_monitor(const std::string& socket_path, const std::string& request_line,
                           int timeout_ms) {
  KSCOPE_ASSIGN_OR_RETURN(auto addr, make_address(socket_path));
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED)
      return make_error(fmt::format("no monitor is listening on {}", socket_path), err,
                        "start one with 'kscope monitor' (or pass its --socket PATH)");
    return make_error(fmt::format("cannot connect to the monitor at {}", socket_path), err);
  }
  std::string req = request_line + "\n";
  size_t off = 0;
  while (off < req.size()) {
    ssize_t n = ::send(fd.get(), req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      // The monitor may answer (e.g. refuse the peer) and close before reading: read its reply.
      if (errno == EPIPE || errno == ECONNRESET) break;
      return errno_error("cannot send the request to the monitor");
    }
    off += static_cast<size_t>(n);
  }
  ::shutdown(fd.get(), SHUT_WR);
  std::string reply;
  uint64_t deadline = (monotonic_ns() / 1000000) + static_cast<uint64_t>(timeout_ms);
  char buf[4096];
  for (;;) {
    uint64_t now = (monotonic_ns() / 1000000);
    if (now >= deadline) return make_error("the monitor did not answer in time");
    pollfd p{fd.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(deadline - now));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_error("poll");
    if (r == 0) return make_error("the monitor did not answer in time");
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNRESET && !reply.empty()) break;
      return errno_error("cannot read the monitor's reply");
    }
    if (n == 0) break;
    reply.append(buf, static_cast<size_t>(n));
    if (reply.size() > (16u << 20)) return make_error("the monitor's reply is too large");
  }
  return parse_reply(reply);
}

namespace {

Status ensure_private_dir(const std::string& dir, const Owner& owner) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return errno_error(fmt::format("cannot create {}", dir));
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) return errno_error(fmt::format("cannot stat {}", dir));
  if (!S_ISDIR(st.st_mode)) return make_error(fmt::format("{} is not a directory", dir));
  if (st.st_uid != owner.uid) {
    if (::geteuid() != 0 || st.st_uid != 0)
      return make_error(
          fmt::format("{} belongs to uid {}, not to uid {}", dir, st.st_uid, owner.uid), 0,
          "remove it, or pass --socket PATH");
    if (::lchown(dir.c_str(), owner.uid, owner.gid) != 0)
      return errno_error(fmt::format("cannot hand {} to uid {}", dir, owner.uid));
  }
  if ((st.st_mode & 07777) != 0700 && ::chmod(dir.c_str(), 0700) != 0)
    return errno_error(fmt::format("cannot make {} owner-only", dir));
  return {};
}

}  // namespace

Result<ControlListener> ControlListener::open(const std::string& path, const Owner& owner,
                                              bool create_parent) {
  KSCOPE_ASSIGN_OR_RETURN(auto addr, make_address(path));
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  if (create_parent) {
    // /run/kscope itself is shared (0755, root); each owner's directory below it is private.
    if (dir.rfind("/run/kscope/", 0) == 0) {
      if (::mkdir("/run/kscope", 0755) != 0 && errno != EEXIST)
        return errno_error("cannot create /run/kscope");
    }
    KSCOPE_TRY(ensure_private_dir(dir, owner));
  }
  ControlListener l;
  l.path_ = path;
  std::string lock_path = path + ".lock";
  for (int attempt = 0;; ++attempt) {
    l.lock_.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!l.lock_) return errno_error(fmt::format("cannot open the lock file {}", lock_path));
    if (::flock(l.lock_.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK)
        return make_error(fmt::format("another monitor is running on {}", path), 0,
                          "stop it first, or pass another --socket PATH");
      return errno_error(fmt::format("cannot lock {}", lock_path));
    }
    // The lock file may have been unlinked by the previous holder between our open and flock:
    // only the file still at the path counts.
    struct stat held, now;
    if (::fstat(l.lock_.get(), &held) == 0 && ::stat(lock_path.c_str(), &now) == 0 &&
        held.st_dev == now.st_dev && held.st_ino == now.st_ino)
      break;
    if (attempt > 10)
      return make_error(fmt::format("cannot lock {}: it keeps changing", lock_path));
  }
  if (::geteuid() == 0 && owner.uid != 0) {
    int ignored = ::fchown(l.lock_.get(), owner.uid, owner.gid);
    (void)ignored;
  }
  // We hold the lock, so whatever is at the path was left by a monitor that is gone.
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return make_error(fmt::format("{} exists and is not a socket; not replacing it", path));
    if (::unlink(path.c_str()) != 0)
      return errno_error(fmt::format("cannot remove the stale socket {}", path));
    std::fprintf(stderr, "kscope: replaced the stale socket %s (its monitor is gone)\n",
                 path.c_str());
  }
  l.sock_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!l.sock_) return errno_error("socket");
  mode_t old = ::umask(0177);  // the socket is born 0600: no window where others can connect
  int rc = ::bind(l.sock_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::umask(old);
  if (rc != 0) return make_error(fmt::format("cannot bind {}", path), err);
  if (::geteuid() == 0 && owner.uid != 0 && ::lchown(path.c_str(), owner.uid, owner.gid) != 0)
    return errno_error(fmt::format("cannot hand {} to uid {}", path, owner.uid));
  if (::listen(l.sock_.get(), 64) != 0) return errno_error("listen");
  if (::lstat(path.c_str(), &st) == 0) {
    l.dev_ = st.st_dev;
    l.ino_ = st.st_ino;
  }
  return l;
}

ControlListener::~ControlListener() {
  if (!sock_ || path_.empty()) return;
  // Remove the socket only if it is still ours.
  struct stat st;
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
    ::unlink(path_.c_str());
  if (lock_) ::unlink((path_ + ".lock").c_str());
}

Result<PeerCred> peer_credentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return errno_error("SO_PEERCRED");
  return PeerCred{cred.pid, cred.uid, cred.gid};
}

}  // namespace kscope::monitor
