#include "symbols/debuginfod.h"

#include <elfutils/debuginfod.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string_view>

#include "util/fd.h"

namespace kscope {
namespace {

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Up to `limit` bytes of a /proc file; empty when it cannot be read.
std::string read_small_file(const std::string& path, size_t limit) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return {};
  std::string out;
  char buf[4096];
  while (out.size() < limit) {
    ssize_t n = ::read(fd.get(), buf, std::min(sizeof buf, limit - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// The parent pid and real uid of a process, from /proc/PID/stat and status.
bool parent_and_uid(long pid, long& parent, long& uid) {
  std::string stat = read_small_file(fmt::format("/proc/{}/stat", pid), 4096);
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so the last ')' ends it.
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 4 > stat.size()) return false;
  std::string_view rest = std::string_view(stat).substr(close + 4);  // ") S " skipped
  auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), parent);
  if (ec != std::errc()) return false;
  std::string status = read_small_file(fmt::format("/proc/{}/status", pid), 16384);
  size_t at = status.find("\nUid:\t");
  if (at == std::string::npos) return false;
  const char* start = status.data() + at + 6;
  auto [q, ec2] = std::from_chars(start, status.data() + status.size(), uid);
  return ec2 == std::errc();
}

std::string environ_value(long pid, std::string_view name) {
  std::string env = read_small_file(fmt::format("/proc/{}/environ", pid), 1 << 20);
  size_t pos = 0;
  while (pos < env.size()) {
    size_t end = env.find('\0', pos);
    if (end == std::string::npos) end = env.size();
    std::string_view entry(env.data() + pos, end - pos);
    if (entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=') {
      return std::string(entry.substr(name.size() + 1));
    }
    pos = end + 1;
  }
  return {};
}

// sudo resets the environment, so DEBUGINFOD_URLS set by the user (or by Debian's
// /etc/profile.d/debuginfod.sh in their login shell) does not reach kscope. The nearest
// ancestor running as the invoking user (the shell that ran sudo) still has it.
std::string sudo_user_value(std::string_view name) {
  const char* sudo_uid = std::getenv("SUDO_UID");
  if (!sudo_uid || getuid() != 0) return {};
  long want = -1;
  std::string_view uid_text(sudo_uid);
  if (std::from_chars(uid_text.data(), uid_text.data() + uid_text.size(), want).ec != std::errc()) {
    return {};
  }
  long pid = getppid();
  for (int depth = 0; depth < 4 && pid > 1; ++depth) {
    long parent = 0, uid = -1;
    if (!parent_and_uid(pid, parent, uid)) return {};
    if (uid == want) return environ_value(pid, name);
    pid = parent;
  }
  return {};
}

}  // namespace

DebuginfodOptions debuginfod_options_from_environment() {
  DebuginfodOptions options;
  const char* urls = std::getenv(DEBUGINFOD_URLS_ENV_VAR);
  if (urls) {
    options.urls = urls;
  } else {
    options.urls = sudo_user_value(DEBUGINFOD_URLS_ENV_VAR);
  }
  if (options.urls.find_first_not_of(" \t") == std::string::npos) options.urls.clear();
  if (const char* timeout = std::getenv(DEBUGINFOD_TIMEOUT_ENV_VAR)) {
    int value = 0;
    std::string_view text(timeout);
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc() && value > 0) options.timeout_s = value;
  }
  return options;
}

std::unique_ptr<DebuginfodClient> DebuginfodClient::create(const DebuginfodOptions& options) {
  if (options.urls.empty()) return nullptr;
  // libdebuginfod reads its settings from the environment at each query; the URLs may have
  // come from the sudo user's environment, and the timeout bounds the connection phase too.
  ::setenv(DEBUGINFOD_URLS_ENV_VAR, options.urls.c_str(), 1);
  ::setenv(DEBUGINFOD_TIMEOUT_ENV_VAR, std::to_string(options.timeout_s).c_str(), 1);
  std::unique_ptr<DebuginfodClient> client(new DebuginfodClient(options));
  client->client_ = debuginfod_begin();
  if (!client->client_) return nullptr;
  debuginfod_set_user_data(client->client_, client.get());
  debuginfod_set_progressfn(client->client_, &DebuginfodClient::progress);
  return client;
}

DebuginfodClient::~DebuginfodClient() {
  if (client_) debuginfod_end(client_);
}

// libdebuginfod calls this from its transfer loop (about once a second while waiting, and as
// data arrives); a non-zero return cancels the transfer.
int DebuginfodClient::progress(debuginfod_client* handle, long done, long /*total*/) {
  auto* self = static_cast<DebuginfodClient*>(debuginfod_get_user_data(handle));
  if (!self) return 0;
  int64_t now = monotonic_ns();
  if (!self->announced_) {
    self->announced_ = true;
    std::fprintf(self->options_.messages, "kscope: fetching debug info for %s from debuginfod\n",
                 self->current_binary_.c_str());
    std::fflush(self->options_.messages);
  }
  if (done != self->last_done_) {
    self->last_done_ = done;
    self->last_progress_ns_ = now;
    return 0;
  }
  if (now - self->last_progress_ns_ > int64_t{self->options_.timeout_s} * 1000000000) {
    self->timed_out_ = true;
    return 1;
  }
  return 0;
}

void DebuginfodClient::fail_once(const std::string& message) {
  if (disabled_) return;
  disabled_ = true;
  std::fprintf(options_.messages, "kscope: debuginfod (%s): %s; going on without it\n",
               options_.urls.c_str(), message.c_str());
  std::fflush(options_.messages);
}

void DebuginfodClient::reject(const std::string& path, const std::string& why) {
  fail_once(fmt::format("{} is not the debug file asked for ({})", path, why));
}

Result<std::string> DebuginfodClient::find_debuginfo(const std::string& build_id,
                                                     const std::string& binary) {
  if (disabled_) return make_error("debuginfod is disabled after an earlier failure");
  if (build_id.empty() || build_id.size() > 128 ||
      build_id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return make_error(fmt::format("{}: no usable build-id to ask debuginfod for", binary));
  }
  current_binary_ = binary;
  last_progress_ns_ = monotonic_ns();
  last_done_ = -1;
  announced_ = false;
  timed_out_ = false;
  char* path = nullptr;
  int fd = debuginfod_find_debuginfo(
      client_, reinterpret_cast<const unsigned char*>(build_id.data()), 0, &path);
  if (fd >= 0) {
    ::close(fd);
    std::string result = path ? path : "";
    std::free(path);
    if (result.empty()) return make_error("debuginfod returned no path");
    ++fetched_;
    return result;
  }
  std::free(path);
  int err = -fd;
  // ENOENT: no server has it. That is the normal answer for most binaries, not a failure.
  if (err == ENOENT) {
    return make_error(fmt::format("debuginfod has no debug file for {}", binary), err);
  }
  if (timed_out_ || err == ETIME || err == ETIMEDOUT) {
    fail_once(fmt::format("no answer within {} s while fetching {}", options_.timeout_s, binary));
  } else {
    fail_once(fmt::format("fetching {} failed: {}", binary, std::strerror(err)));
  }
  return make_error(fmt::format("debuginfod failed for {}", binary), err);
}

}  // namespace kscope
