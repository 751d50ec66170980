// Run a program, capture stdout and stderr, wait with a deadline. For tests only.
#pragma once

#include <string>
#include <vector>

namespace kscope::testing {

struct RunResult {
  int exit_code = -1;  // exit status, or 128+signal
  std::string out;     // stdout
  std::string err;     // stderr
  bool timed_out = false;
};

// Runs argv[0] with argv. `stdin_data` is written to its stdin. Kills it with SIGKILL after
// `timeout_s` seconds.
RunResult run(const std::vector<std::string>& argv, double timeout_s = 60.0);

// Starts argv in the background; returns its pid. stdout/stderr go to the given files
// (or /dev/null when empty).
int spawn(const std::vector<std::string>& argv, const std::string& out_path = {},
          const std::string& err_path = {});

// waitpid with a deadline; returns the exit status or 128+signal, -1 on timeout.
int wait_for(int pid, double timeout_s);

std::string read_file(const std::string& path);

// Polls the file until it contains `needle` (every 20 ms); false when `timeout_s` passed first.
bool wait_for_text(const std::string& path, const std::string& needle, double timeout_s);

}  // namespace kscope::testing
