// The two classic virtual-memory case studies, run end to end with kscope monitor and
// kscope-work on this machine: raw CSV, SVG plots and a markdown summary in an output directory.
#pragma once

#include <signal.h>

#include <cstdint>
#include <string>

#include "util/result.h"

namespace kscope::study {

struct LocalityOptions {
  std::string out = "study-locality";
  uint64_t mb = 1024;
  uint64_t accesses_a = 50000;
  uint64_t accesses_b = 10000;
  uint64_t iterations = 20;
  int period_ms = 50;
  std::string work;
};

// Two runs of two concurrent processes: random+random, then random+locality. The summary also
// goes to stdout. *stop (a stop signal) interrupts it.
Result<int> run_locality(const LocalityOptions& o, const volatile sig_atomic_t* stop);

struct ThrashingOptions {
  std::string out = "study-thrashing";
  std::string n_list = "1,5,11,21,28";
  uint64_t mb = 200;
  uint64_t accesses = 10000;
  uint64_t iterations = 20;
  uint64_t limit_mb = 1536;
  uint64_t swap_mb = 0;  // 0: enough for the largest N
  std::string swap = "auto";
  int period_ms = 50;
  std::string work;
};

// N concurrent random-access processes in a memory cgroup with swap, for each N (root).
Result<int> run_thrashing(const ThrashingOptions& o, const volatile sig_atomic_t* stop);

}  // namespace kscope::study
