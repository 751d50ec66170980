// The faults recording reader through its public path (read_recording on a file): file header,
// block framing, checksums, varints and every block decoder.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz_support.h"
#include "model/recording.h"

namespace {

void read_one(const uint8_t* data, size_t size) {
  kscope::fuzz::MemFile f(data, size);
  auto r = kscope::read_recording(f.path());
  if (r) {
    // What the reader promises of a file it accepted.
    if (r->summary.complete != r->trailer.has_value()) __builtin_trap();
    // Fault records are lost only to damage the reader reports, and a surviving trailer makes
    // the loss exact: recorded = read + lost (so, without damage, recorded = read).
    if (r->summary.faults_lost > 0 && r->summary.damage.empty()) __builtin_trap();
    if (r->trailer && r->trailer->faults_recorded != r->faults.size() + r->summary.faults_lost)
      __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  read_one(data, size);
  auto fixed = kscope::fuzz::with_checksums_fixed(data, size);
  if (size && std::memcmp(fixed.data(), data, size) != 0) read_one(fixed.data(), fixed.size());
  return 0;
}
