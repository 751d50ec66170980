// Fetching separate debug files from debuginfod servers, through elfutils' libdebuginfod (the
// client gdb, perf and systemd-coredump use), so its cache (DEBUGINFOD_CACHE_PATH, default
// ~/.cache/debuginfod_client) is shared with those tools.
//
// Asked only when DEBUGINFOD_URLS (or the invoking user's, under sudo) names a server and the
// user did not say --no-debuginfod. A fetch that receives nothing for `timeout_s` seconds is
// abandoned; one line on stderr says what is being fetched while it runs. A server that is down,
// hangs or sends something that is not the debug file asked for is reported once, and not asked
// again in this run: a profile must not wait on a dead server once per binary.
//
// Not thread-safe (one per Symbolizer).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "util/result.h"

struct debuginfod_client;

namespace kscope {

struct DebuginfodOptions {
  std::string urls;         // space-separated, as in DEBUGINFOD_URLS; empty = off
  int timeout_s = 10;       // give up on a fetch after this long without progress
  FILE* messages = stderr;  // the "fetching" line and the one-time failure message
};

// DEBUGINFOD_URLS of this process, or, when it is unset and kscope runs under sudo (which
// resets the environment), the one of the process that ran sudo as SUDO_UID. Empty when none.
// DEBUGINFOD_TIMEOUT, when set to a positive number, gives timeout_s.
DebuginfodOptions debuginfod_options_from_environment();

class DebuginfodClient {
 public:
  // Null when options.urls is empty or libdebuginfod cannot start.
  static std::unique_ptr<DebuginfodClient> create(const DebuginfodOptions& options);
  ~DebuginfodClient();
  DebuginfodClient(const DebuginfodClient&) = delete;
  DebuginfodClient& operator=(const DebuginfodClient&) = delete;

  // The path, in the debuginfod cache, of the debug file with this build-id (lowercase hex);
  // `binary` names the file it belongs to in messages. An error when the servers do not have
  // it, fail, or are disabled after an earlier failure (disabled() is then true).
  Result<std::string> find_debuginfo(const std::string& build_id, const std::string& binary);

  // The caller found that what find_debuginfo() returned is not the debug file it asked for
  // (not ELF, another build-id): says so once and stops asking.
  void reject(const std::string& path, const std::string& why);

  bool disabled() const { return disabled_; }
  size_t fetched() const { return fetched_; }  // debug files found (cache or network)
  const std::string& urls() const { return options_.urls; }

 private:
  explicit DebuginfodClient(DebuginfodOptions options) : options_(std::move(options)) {}
  static int progress(debuginfod_client* client, long done, long total);
  void fail_once(const std::string& message);

  DebuginfodOptions options_;
  debuginfod_client* client_ = nullptr;
  bool disabled_ = false;
  size_t fetched_ = 0;
  // State of the fetch in progress, for the progress callback.
  std::string current_binary_;
  int64_t last_progress_ns_ = 0;
  long last_done_ = -1;
  bool announced_ = false;
  bool timed_out_ = false;
};

}  // namespace kscope
