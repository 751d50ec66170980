// The top recording reader through its public path (read_top_recording on a file): the common
// container plus the interval, slice and profile blocks.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz_support.h"
#include "model/top_recording.h"

namespace {

void read_one(const uint8_t* data, size_t size) {
  kscope::fuzz::MemFile f(data, size);
  (void)kscope::recording_kind(f.path());
  auto r = kscope::read_top_recording(f.path());
  if (r) {
    // Every frame index a sample names must exist (renderers index with them unchecked), and
    // every sample has one value per value type.
    for (const auto& s : r->profile.samples) {
      for (auto i : s.frames)
        if (i >= r->profile.frames.size()) __builtin_trap();
      if (s.values.size() != r->profile.value_types.size()) __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  read_one(data, size);
  auto fixed = kscope::fuzz::with_checksums_fixed(data, size);
  if (size && std::memcmp(fixed.data(), data, size) != 0) read_one(fixed.data(), fixed.size());
  return 0;
}
