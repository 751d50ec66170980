// Decodes an x86-64 .eh_frame or .debug_frame section (CIEs, FDEs and their call-frame programs)
// into the rows the BPF walker follows: "from this PC on, CFA = rsp|rbp + offset, rbp saved at CFA
// + offset or unchanged, return address at CFA-8", with every rule the walker cannot follow marked
// as such.
//
// The section comes from files any user controls while kscope runs as root: every read is
// bounds-checked against the section, every count and nesting is bounded, and a malformed entry
// is skipped and counted, never undefined behaviour (tests/unit/eh_frame_fuzz.cpp fuzzes this).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kscope/abi/unwind.h"
#include "util/result.h"

namespace kscope::unwind {

enum class CfaRule : uint8_t {
  kNone = KSCOPE_CFA_NONE,
  kRsp = KSCOPE_CFA_RSP,
  kRbp = KSCOPE_CFA_RBP,
  kPlt = KSCOPE_CFA_PLT,
  kSignal = KSCOPE_CFA_SIGNAL,
  kUnsupported = KSCOPE_CFA_UNSUPPORTED,
  kRbx = KSCOPE_CFA_RBX,
};

enum class RbpRule : uint8_t {
  kUnchanged = KSCOPE_RBP_UNCHANGED,
  kOffset = KSCOPE_RBP_OFFSET,
  kUnknown = KSCOPE_RBP_UNKNOWN,
};

// One decoded row, before packing into kscope_unwind_row.
struct UnwindRow {
  uint64_t pc = 0;  // link-time address where the row starts
  CfaRule cfa = CfaRule::kNone;
  int64_t cfa_offset = 0;  // kRsp/kRbp/kRbx/kPlt: bytes added to the register
  RbpRule rbp = RbpRule::kUnchanged;
  int64_t rbp_offset = 0;             // kOffset: caller's rbp is at CFA + rbp_offset
  RbpRule rbx = RbpRule::kUnchanged;  // the same for rbx (ld.so's CFA = rbx + N needs it)
  int64_t rbx_offset = 0;
  int plt_threshold = 0;      // kPlt: (rip & 15) >= this adds 8
  bool ra_undefined = false;  // the outermost frame (DW_CFA_undefined rip)
  bool ra_unsupported = false;
  bool operator==(const UnwindRow&) const = default;
  // Same rule (the pc aside).
  bool same_rule(const UnwindRow& o) const;
};

// What decoding found, counted.
struct EhFrameStats {
  size_t cies = 0;
  size_t fdes = 0;
  size_t bad_entries = 0;       // CIEs/FDEs that are malformed (skipped)
  size_t bad_programs = 0;      // FDEs whose CFA program stopped at an unknown or bad instruction
  size_t unsupported_rows = 0;  // rows with a rule the walker cannot follow
  size_t plt_rows = 0;
  size_t signal_rows = 0;
  size_t debug_frame_fdes = 0;  // FDEs taken from .debug_frame
  size_t shadowed_fdes = 0;     // FDEs left out: an earlier section already covers their range
};

struct EhFrameTable {
  std::vector<UnwindRow> rows;  // sorted by pc, consecutive rows differ in their rule
  EhFrameStats stats;
};

// Decodes `section` (the bytes of .eh_frame) loaded at link-time address `section_vaddr`.
// Rows are sorted, gaps between FDEs get a kNone row, identical neighbours are merged.
// Fails only when not one entry could be decoded from a non-empty section.
Result<EhFrameTable> decode_eh_frame(std::span<const uint8_t> section, uint64_t section_vaddr);

// One section of call-frame information: .eh_frame (CIE id 0, CIE pointers relative, pointer
// encodings from the augmentation) or .debug_frame (DWARF's: CIE id all ones, CIE pointers are
// section offsets, addresses are absolute).
struct FrameSection {
  enum class Kind : uint8_t { kEhFrame, kDebugFrame };
  std::span<const uint8_t> bytes;
  uint64_t vaddr = 0;  // link-time address of the section (.eh_frame's pc-relative pointers)
  Kind kind = Kind::kEhFrame;
};

// Decodes several sections into one table: an FDE of a later section whose range overlaps
// what an earlier one covers is left out (counted), so .debug_frame fills in only what
// .eh_frame lacks. Fails only when not one entry of any section could be decoded.
Result<EhFrameTable> decode_frames(std::span<const FrameSection> sections);

// Packs a row for the BPF map; a row whose numbers do not fit becomes kUnsupported (counted by
// the caller via the returned flag).
kscope_unwind_row pack_row(const UnwindRow& row, bool* did_not_fit);

// "rsp+16", "rbp+16", "rbx+56", "exp" (PLT, signal, other expressions), "u" (none); for tests and
// -v.
std::string describe_cfa(const UnwindRow& row);

}  // namespace kscope::unwind
