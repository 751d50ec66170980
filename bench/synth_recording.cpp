// Writes a synthetic faults recording of N faults (default 1,000,000) for `make bench`'s report
// timing: two processes, heap/anon/file/stack segments, sequential and random addresses, some
// major faults (tests/support/synthetic_recording.h).
#include <cstdio>
#include <cstdlib>

#include "synthetic_recording.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: synth_recording FILE [N]\n");
    return 2;
  }
  size_t n = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1000000;
  auto data = kscope::testing::make_synthetic(n);
  std::string err = kscope::testing::write_synthetic(argv[1], data);
  if (!err.empty()) {
    std::fprintf(stderr, "synth_recording: %s\n", err.c_str());
    return 1;
  }
  return 0;
}
