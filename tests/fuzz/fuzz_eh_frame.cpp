// The unwind-table builder (unwind/eh_frame.h, unwind/unwind_table.h) on mutated input: the
// call-frame sections of files any user controls, decoded by kscope running as root.
//
// Input: one flags byte, a 16-bit split offset, then the bytes. Flags bit 0: the first section
// is .debug_frame (else .eh_frame); bit 1: the bytes from the split offset on are a second
// section of the other kind (.debug_frame filling in what the first lacks); bit 2: the bytes
// are an ELF image instead (read_unwind_source_image + build_file_table: section lookup,
// compressed .debug_frame, .gnu_debuglink). Checked: the rows are sorted by pc, neighbours
// differ, and every row packs for the BPF map.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "unwind/eh_frame.h"
#include "unwind/unwind_table.h"

namespace {

using kscope::unwind::FrameSection;

void check(const kscope::unwind::EhFrameTable& table) {
  for (size_t i = 0; i < table.rows.size(); ++i) {
    if (i > 0 && table.rows[i - 1].pc >= table.rows[i].pc) __builtin_trap();
    if (i > 0 && table.rows[i - 1].same_rule(table.rows[i])) __builtin_trap();
    bool did_not_fit = false;
    kscope_unwind_row packed = kscope::unwind::pack_row(table.rows[i], &did_not_fit);
    if (!did_not_fit && packed.pc != table.rows[i].pc) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  uint8_t flags = data[0];
  size_t split = data[1] | (size_t{data[2]} << 8);
  std::span<const uint8_t> bytes(data + 3, size - 3);
  if (flags & 4) {
    auto source = kscope::unwind::read_unwind_source_image(bytes);
    if (source) {
      auto table = kscope::unwind::build_file_table(*source, "fuzz", &*source);
      if (table && table->rows.empty()) __builtin_trap();  // an empty table is an error
    }
    return 0;
  }
  FrameSection::Kind first =
      (flags & 1) ? FrameSection::Kind::kDebugFrame : FrameSection::Kind::kEhFrame;
  FrameSection::Kind second =
      (flags & 1) ? FrameSection::Kind::kEhFrame : FrameSection::Kind::kDebugFrame;
  std::vector<FrameSection> sections;
  if ((flags & 2) && split < bytes.size()) {
    sections.push_back({bytes.first(split), 0x10000, first});
    sections.push_back({bytes.subspan(split), 0x80000, second});
  } else {
    sections.push_back({bytes, 0x10000, first});
  }
  if (auto table = kscope::unwind::decode_frames(sections)) check(*table);
  return 0;
}
