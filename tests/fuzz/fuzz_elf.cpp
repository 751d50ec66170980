// The ELF/DWARF symbolizer on mutated ELF images (symbols/elf_binary.h): the image is opened as
// a file (as a traced process's binary is) and as an in-memory image (as the vDSO is), then a
// few addresses are resolved: each segment's start and middle, and each function's start, with
// source lines and inline frames (DWARF is read on first use).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_support.h"
#include "symbols/elf_binary.h"

namespace {

void exercise(kscope::ElfBinary& elf, const uint8_t* data, size_t size) {
  // Candidate addresses: file offsets through the segments, plus the first words of the input
  // (so the fuzzer can steer addresses too).
  std::vector<uint64_t> addrs;
  for (uint64_t off : {uint64_t{0}, uint64_t{0x40}, uint64_t{0x1000}, uint64_t{size / 2}})
    for (bool exec : {true, false})
      if (auto v = elf.file_offset_to_vaddr(off, exec)) addrs.push_back(*v);
  for (size_t i = 0; i + 8 <= size && i < 64; i += 8) {
    uint64_t v = 0;
    for (int b = 0; b < 8; ++b) v |= uint64_t{data[i + b]} << (8 * b);
    addrs.push_back(v);
  }
  int resolved = 0;
  for (uint64_t a : addrs) {
    auto f = elf.find_function(a);
    if (f && f->start > a) __builtin_trap();  // the covering function starts at or below a
    kscope::Symbol s;
    s.addr = a;
    elf.describe_source(a, /*inline_frames=*/true, s);
    if (f && ++resolved > 16) break;  // DWARF lookups are the slow part; a few are enough
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    kscope::fuzz::MemFile f(data, size);
    kscope::DebugSearchPaths none;  // never wander into the host's /usr/lib/debug
    none.debug_dirs.clear();
    none.use_debuglink = false;
    if (auto elf = kscope::ElfBinary::open(f.path(), none)) exercise(**elf, data, size);
  }
  std::vector<char> image(data, data + size);
  if (auto elf = kscope::ElfBinary::from_image("[fuzz]", std::move(image)))
    exercise(**elf, data, size);
  return 0;
}
