#include "unwind/eh_frame.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <iterator>
#include <optional>

namespace kscope::unwind {

namespace {

// x86-64 DWARF register numbers (System V psABI, figure 3.36).
constexpr uint64_t kRegRbx = 3;
constexpr uint64_t kRegRbp = 6;
constexpr uint64_t kRegRsp = 7;
constexpr uint64_t kRegRip = 16;  // the return address column

// Bounds: a CFA program is tiny; these only stop hostile input from costing memory or time.
constexpr size_t kMaxStateStack = 64;  // DW_CFA_remember_state nesting
constexpr size_t kMaxRowsPerFde = 1 << 16;
constexpr size_t kMaxRows = KSCOPE_UNWIND_MAX_FILE_ROWS;

// A bounds-checked reader over [pos, end) of the section.
class Reader {
 public:
  Reader(std::span<const uint8_t> data, size_t pos, size_t end)
      : data_(data), pos_(pos), end_(std::min(end, data.size())) {}

  bool ok() const { return ok_; }
  size_t pos() const { return pos_; }
  bool at_end() const { return pos_ >= end_; }
  void fail() { ok_ = false; }

  template <typename T>
  T fixed() {
    T v{};
    if (!ok_ || end_ - pos_ < sizeof(T) || pos_ > end_) {
      ok_ = false;
      return v;
    }
    std::memcpy(&v, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  uint8_t u8() { return fixed<uint8_t>(); }

  uint64_t uleb() {
    uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
      uint8_t b = u8();
      if (!ok_) return 0;
      if (shift < 64) v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
      if (shift > 70) {  // longer than any 64-bit value
        ok_ = false;
        return 0;
      }
    }
  }
  int64_t sleb() {
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0;
    do {
      b = u8();
      if (!ok_) return 0;
      if (shift < 64) v |= uint64_t{b & 0x7fu} << shift;
      shift += 7;
      if (shift > 77) {
        ok_ = false;
        return 0;
      }
    } while (b & 0x80);
    if (shift < 64 && (b & 0x40)) v |= ~uint64_t{0} << shift;
    return static_cast<int64_t>(v);
  }
  // Skips n bytes; returns the span skipped.
  std::span<const uint8_t> bytes(uint64_t n) {
    if (!ok_ || n > end_ - pos_) {
      ok_ = false;
      return {};
    }
    auto s = data_.subspan(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  // A NUL-terminated string.
  std::string cstr() {
    std::string s;
    while (true) {
      uint8_t c = u8();
      if (!ok_) return {};
      if (c == 0) return s;
      if (s.size() > 16) {  // no known augmentation string is this long
        ok_ = false;
        return {};
      }
      s.push_back(static_cast<char>(c));
    }
  }

  // A pointer in DW_EH_PE_* encoding; pcrel is relative to the field's link-time address.
  std::optional<uint64_t> encoded(uint8_t enc, uint64_t section_vaddr, bool value_only = false) {
    if (enc == 0xff) return std::nullopt;  // DW_EH_PE_omit
    size_t field = pos_;
    uint64_t v = 0;
    switch (enc & 0x0f) {
      case 0x00:
        v = fixed<uint64_t>();
        break;  // absptr (8 bytes on x86-64)
      case 0x01:
        v = uleb();
        break;
      case 0x02:
        v = fixed<uint16_t>();
        break;
      case 0x03:
        v = fixed<uint32_t>();
        break;
      case 0x04:
        v = fixed<uint64_t>();
        break;
      case 0x09:
        v = static_cast<uint64_t>(sleb());
        break;
      case 0x0a:
        v = static_cast<uint64_t>(static_cast<int64_t>(fixed<int16_t>()));
        break;
      case 0x0b:
        v = static_cast<uint64_t>(static_cast<int64_t>(fixed<int32_t>()));
        break;
      case 0x0c:
        v = fixed<uint64_t>();
        break;
      default:
        ok_ = false;
        return std::nullopt;
    }
    if (!ok_) return std::nullopt;
    if (value_only) return v;
    switch (enc & 0x70) {
      case 0x00:
        return v;
      case 0x10:
        return v + section_vaddr + field;  // pcrel
      default:
        ok_ = false;
        return std::nullopt;  // textrel/datarel/funcrel: not in x86-64 .eh_frame
    }
  }

 private:
  std::span<const uint8_t> data_;
  size_t pos_;
  size_t end_;
  bool ok_ = true;
};

struct Cie {
  uint64_t code_align = 1;
  int64_t data_align = -8;
  uint64_t ra_register = kRegRip;
  uint8_t fde_encoding = 0;  // absptr
  bool has_augmentation_data = false;
  bool signal_frame = false;
  std::span<const uint8_t> initial_instructions;
};

// The rule of one register: only what the walker can use is kept.
struct RegRule {
  enum Kind : uint8_t { kSame, kUndefined, kOffset, kOther } kind = kSame;
  int64_t offset = 0;
  bool operator==(const RegRule&) const = default;
};

struct CfaState {
  enum Kind : uint8_t { kRegOffset, kExpression } kind = kRegOffset;
  uint64_t reg = kRegRsp;
  int64_t offset = 8;
  std::span<const uint8_t> expr;
};

struct State {
  CfaState cfa;
  RegRule rbp;
  RegRule rbx;
  RegRule ra;
};

bool matches(std::span<const uint8_t> expr, std::initializer_list<int> pattern) {
  if (expr.size() != pattern.size()) return false;
  size_t i = 0;
  for (int b : pattern) {
    if (b >= 0 && expr[i] != static_cast<uint8_t>(b)) return false;
    ++i;
  }
  return true;
}

// The PLT's CFA: DW_OP_breg7 (rsp) N; DW_OP_breg16 (rip) 0; DW_OP_lit15; DW_OP_and; DW_OP_litK;
// DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus. Each 16-byte PLT entry pushes a word at offset
// K (11 for .plt, 10 for some linkers' layouts): CFA = rsp + N + 8 once past the push. The same
// fixed form the OpenTelemetry and Parca profilers recognise. N is a one-byte SLEB here.
bool plt_expression(std::span<const uint8_t> expr, int64_t* base, int* threshold) {
  if (!matches(expr, {0x77, -1, 0x80, 0x00, 0x3f, 0x1a, -1, 0x2a, 0x33, 0x24, 0x22})) return false;
  uint8_t n = expr[1];
  uint8_t lit = expr[6];
  if ((n & 0x80) || lit < 0x30 || lit > 0x4f) return false;
  *base = (n & 0x40) ? static_cast<int64_t>(n) - 128 : n;
  *threshold = lit - 0x30;
  return true;
}

// glibc's __restore_rt: DW_OP_breg7 (rsp) 160; DW_OP_deref: the CFA is the interrupted rsp saved
// in the ucontext_t the kernel put at rsp (uc_mcontext.gregs[REG_RSP], x86-64 rt_sigframe).
bool signal_expression(std::span<const uint8_t> expr) {
  return matches(expr, {0x77, 0xa0, 0x01, 0x06});
}

class FdeDecoder {
 public:
  FdeDecoder(const Cie& cie, uint64_t section_vaddr, std::span<const uint8_t> section,
             EhFrameStats& stats)
      : cie_(cie), section_vaddr_(section_vaddr), section_(section), stats_(stats) {}

  // Runs the CIE's initial instructions then the FDE's; emits one row per location.
  void run(uint64_t pc_begin, uint64_t pc_end, std::span<const uint8_t> fde_program,
           size_t fde_program_pos, size_t cie_program_pos, std::vector<UnwindRow>& out) {
    State st;
    st.ra.kind = RegRule::kSame;
    fde_first_row_ = out.size();
    loc_ = pc_begin;
    end_ = pc_end;
    initial_ = st;
    bool ok = execute(cie_.initial_instructions, cie_program_pos, st, /*in_cie=*/true, out);
    initial_ = st;
    if (ok) ok = execute(fde_program, fde_program_pos, st, /*in_cie=*/false, out);
    if (!ok) {
      ++stats_.bad_programs;
      // The rows before the bad instruction are right; from it on nothing is known.
      UnwindRow r;
      r.pc = loc_;
      r.cfa = CfaRule::kUnsupported;
      if (loc_ < end_) emit_raw(r, out);
      return;
    }
    emit(st, out);
  }

 private:
  void emit(const State& st, std::vector<UnwindRow>& out) {
    if (loc_ >= end_) return;
    emit_raw(to_row(st), out);
  }
  void emit_raw(UnwindRow r, std::vector<UnwindRow>& out) {
    r.pc = loc_;
    // A later row at the same location replaces the earlier one (advance by 0).
    if (!out.empty() && out.size() > fde_first_row_ && out.back().pc == r.pc) {
      out.back() = r;
      return;
    }
    if (out.size() - fde_first_row_ >= kMaxRowsPerFde) return;
    out.push_back(r);
  }

  UnwindRow to_row(const State& st) const {
    UnwindRow r;
    if (st.cfa.kind == CfaState::kExpression) {
      int64_t base = 0;
      int threshold = 0;
      if (plt_expression(st.cfa.expr, &base, &threshold)) {
        r.cfa = CfaRule::kPlt;
        r.cfa_offset = base;
        r.plt_threshold = threshold;
      } else if (cie_.signal_frame && signal_expression(st.cfa.expr)) {
        r.cfa = CfaRule::kSignal;
      } else {
        r.cfa = CfaRule::kUnsupported;
      }
    } else if (st.cfa.reg == kRegRsp) {
      r.cfa = CfaRule::kRsp;
      r.cfa_offset = st.cfa.offset;
    } else if (st.cfa.reg == kRegRbp) {
      r.cfa = CfaRule::kRbp;
      r.cfa_offset = st.cfa.offset;
    } else if (st.cfa.reg == kRegRbx) {
      r.cfa = CfaRule::kRbx;
      r.cfa_offset = st.cfa.offset;
    } else {
      r.cfa = CfaRule::kUnsupported;
    }
    to_saved(st.rbp, &r.rbp, &r.rbp_offset);
    to_saved(st.rbx, &r.rbx, &r.rbx_offset);
    if (r.cfa == CfaRule::kSignal) {  // the walker reads the ucontext
      r.rbp = RbpRule::kUnknown;
      r.rbx = RbpRule::kUnknown;
      r.rbx_offset = 0;
    }
    if (st.ra.kind == RegRule::kUndefined) {
      r.ra_undefined = true;
    } else if (r.cfa != CfaRule::kSignal &&
               !(st.ra.kind == RegRule::kOffset && st.ra.offset == -8)) {
      r.ra_unsupported = true;
    }
    return r;
  }

  static void to_saved(const RegRule& rule, RbpRule* kind, int64_t* offset) {
    switch (rule.kind) {
      case RegRule::kSame:
      case RegRule::kUndefined:
        *kind = RbpRule::kUnchanged;
        break;
      case RegRule::kOffset:
        *kind = RbpRule::kOffset;
        *offset = rule.offset;
        break;
      case RegRule::kOther:
        *kind = RbpRule::kUnknown;
        break;
    }
  }

  RegRule* rule_for(uint64_t reg, State& st) {
    if (reg == kRegRbp) return &st.rbp;
    if (reg == kRegRbx) return &st.rbx;
    if (reg == cie_.ra_register) return &st.ra;
    return nullptr;
  }
  const RegRule* initial_rule(uint64_t reg) const {
    if (reg == kRegRbp) return &initial_.rbp;
    if (reg == kRegRbx) return &initial_.rbx;
    if (reg == cie_.ra_register) return &initial_.ra;
    return nullptr;
  }

  bool advance(uint64_t delta, const State& st, std::vector<UnwindRow>& out) {
    emit(st, out);
    uint64_t d = delta * cie_.code_align;
    if (cie_.code_align != 0 && d / cie_.code_align != delta) return false;
    if (loc_ + d < loc_) return false;
    loc_ += d;
    return true;
  }

  bool execute(std::span<const uint8_t> program, size_t program_pos, State& st, bool in_cie,
               std::vector<UnwindRow>& out) {
    if (!in_cie) fde_first_row_ = out.size();
    Reader r(section_, program_pos, program_pos + program.size());
    std::vector<State> saved;
    while (!r.at_end()) {
      uint8_t op = r.u8();
      if (!r.ok()) return false;
      uint8_t high = op & 0xc0, low = op & 0x3f;
      if (high == 0x40) {  // DW_CFA_advance_loc
        if (in_cie || !advance(low, st, out)) return false;
        continue;
      }
      if (high == 0x80) {  // DW_CFA_offset
        int64_t off = 0;
        if (!scaled(static_cast<int64_t>(r.uleb()), &off)) return false;
        if (RegRule* rule = rule_for(low, st)) *rule = {RegRule::kOffset, off};
        continue;
      }
      if (high == 0xc0) {  // DW_CFA_restore
        if (RegRule* rule = rule_for(low, st)) *rule = *initial_rule(low);
        continue;
      }
      switch (op) {
        case 0x00:
          break;      // nop
        case 0x01: {  // set_loc
          auto v = r.encoded(cie_.fde_encoding, section_vaddr_);
          if (!v || in_cie || *v < loc_) return false;
          emit(st, out);
          loc_ = *v;
          break;
        }
        case 0x02:
          if (in_cie || !advance(r.u8(), st, out)) return false;
          break;
        case 0x03:
          if (in_cie || !advance(r.fixed<uint16_t>(), st, out)) return false;
          break;
        case 0x04:
          if (in_cie || !advance(r.fixed<uint32_t>(), st, out)) return false;
          break;
        case 0x05: {  // offset_extended
          uint64_t reg = r.uleb();
          int64_t off = 0;
          if (!scaled(static_cast<int64_t>(r.uleb()), &off)) return false;
          if (RegRule* rule = rule_for(reg, st)) *rule = {RegRule::kOffset, off};
          break;
        }
        case 0x06: {  // restore_extended
          uint64_t reg = r.uleb();
          if (RegRule* rule = rule_for(reg, st)) *rule = *initial_rule(reg);
          break;
        }
        case 0x07: {  // undefined
          uint64_t reg = r.uleb();
          if (RegRule* rule = rule_for(reg, st)) *rule = {RegRule::kUndefined, 0};
          break;
        }
        case 0x08: {  // same_value
          uint64_t reg = r.uleb();
          if (RegRule* rule = rule_for(reg, st)) *rule = {RegRule::kSame, 0};
          break;
        }
        case 0x09: {  // register
          uint64_t reg = r.uleb();
          r.uleb();
          if (RegRule* rule = rule_for(reg, st)) *rule = {RegRule::kOther, 0};
          break;
        }
        case 0x0a:  // remember_state
          if (saved.size() >= kMaxStateStack) return false;
          saved.push_back(st);
          break;
        case 0x0b:  // restore_state: the CFA and the registers, not the location
          if (saved.empty()) return false;
          st = saved.back();
          saved.pop_back();
          break;
        case 0x0c:  // def_cfa
          st.cfa.reg = r.uleb();
          st.cfa.offset = static_cast<int64_t>(r.uleb());
          st.cfa.kind = CfaState::kRegOffset;
          break;
        case 0x0d:  // def_cfa_register
          st.cfa.reg = r.uleb();
          st.cfa.kind = CfaState::kRegOffset;
          break;
        case 0x0e:  // def_cfa_offset
          st.cfa.offset = static_cast<int64_t>(r.uleb());
          break;
        case 0x0f:  // def_cfa_expression
          st.cfa.kind = CfaState::kExpression;
          st.cfa.expr = r.bytes(r.uleb());
          break;
        case 0x10: {  // expression
          uint64_t reg = r.uleb();
          r.bytes(r.uleb());
          if (RegRule* rule = rule_for(reg, st)) *rule = {RegRule::kOther, 0};
          break;
        }
        case 0x11: {  // offset_extended_sf
          uint64_t reg = r.uleb();
          int64_t off = 0;
          if (!scaled(r.sleb(), &off)) return false;
          if (RegRule* rule = rule_for(reg, st)) *rule = {RegRule::kOffset, off};
          break;
        }
        case 0x12:  // def_cfa_sf
          st.cfa.reg = r.uleb();
          if (!scaled(r.sleb(), &st.cfa.offset)) return false;
          st.cfa.kind = CfaState::kRegOffset;
          break;
        case 0x13:  // def_cfa_offset_sf
          if (!scaled(r.sleb(), &st.cfa.offset)) return false;
          break;
        case 0x14:    // val_offset
        case 0x15: {  // val_offset_sf
          uint64_t reg = r.uleb();
          if (op == 0x14)
            r.uleb();
          else
            r.sleb();
          if (RegRule* rule = rule_for(reg, st)) *rule = {RegRule::kOther, 0};
          break;
        }
        case 0x16: {  // val_expression
          uint64_t reg = r.uleb();
          r.bytes(r.uleb());
          if (RegRule* rule = rule_for(reg, st)) *rule = {RegRule::kOther, 0};
          break;
        }
        case 0x2e:  // GNU_args_size
          r.uleb();
          break;
        case 0x2f: {  // GNU_negative_offset_extended
          uint64_t reg = r.uleb();
          int64_t off = 0;
          if (!scaled(static_cast<int64_t>(r.uleb()), &off) || off == INT64_MIN) return false;
          if (RegRule* rule = rule_for(reg, st)) *rule = {RegRule::kOffset, -off};
          break;
        }
        default:
          return false;
      }
      if (!r.ok()) return false;
    }
    return r.ok();
  }

  // value * data alignment; false when it overflows (a hostile CIE or operand).
  bool scaled(int64_t v, int64_t* out) const {
    return !__builtin_mul_overflow(v, cie_.data_align, out);
  }

  const Cie& cie_;
  uint64_t section_vaddr_;
  std::span<const uint8_t> section_;
  EhFrameStats& stats_;
  State initial_;
  uint64_t loc_ = 0;
  uint64_t end_ = 0;
  size_t fde_first_row_ = 0;
};

// Parses the CIE at `pos` (the start of its length field).
// In .debug_frame a CIE's id field is all ones (DWARF's CIE_id), in .eh_frame it is 0.
std::optional<Cie> parse_cie(std::span<const uint8_t> section, size_t pos, uint64_t section_vaddr,
                             bool debug_frame, size_t* program_pos) {
  Reader r(section, pos, section.size());
  uint64_t length = r.fixed<uint32_t>();
  bool is64 = length == 0xffffffffu;
  if (is64) length = r.fixed<uint64_t>();
  if (!r.ok() || length == 0 || length > section.size() - r.pos()) return std::nullopt;
  size_t end = r.pos() + static_cast<size_t>(length);
  Reader c(section, r.pos(), end);
  uint64_t id = is64 ? c.fixed<uint64_t>() : c.fixed<uint32_t>();
  uint64_t cie_id = !debug_frame ? 0 : is64 ? ~uint64_t{0} : 0xffffffffu;
  if (!c.ok() || id != cie_id) return std::nullopt;
  uint8_t version = c.u8();
  if (version != 1 && version != 3 && version != 4) return std::nullopt;
  std::string aug = c.cstr();
  if (!c.ok()) return std::nullopt;
  if (version == 4) {
    uint8_t address_size = c.u8();
    c.u8();  // segment selector size
    if (address_size != 8) return std::nullopt;
  }
  Cie cie;
  cie.code_align = c.uleb();
  cie.data_align = c.sleb();
  cie.ra_register = version == 1 ? c.u8() : c.uleb();
  if (!c.ok()) return std::nullopt;
  if (!aug.empty() && aug[0] == 'z') {
    cie.has_augmentation_data = true;
    uint64_t aug_len = c.uleb();
    size_t aug_end = c.pos() + static_cast<size_t>(std::min<uint64_t>(aug_len, end - c.pos()));
    if (!c.ok() || aug_len > end - c.pos()) return std::nullopt;
    Reader a(section, c.pos(), aug_end);
    for (size_t i = 1; i < aug.size(); ++i) {
      switch (aug[i]) {
        case 'L':
          a.u8();
          break;
        case 'R':
          cie.fde_encoding = a.u8();
          break;
        case 'P': {
          uint8_t enc = a.u8();
          if (enc != 0xff) a.encoded(enc & 0x7f, section_vaddr);
          break;
        }
        case 'S':
          cie.signal_frame = true;
          break;
        case 'B':
        case 'G':
          break;
        default:
          return std::nullopt;  // unknown: the FDE layout cannot be known
      }
      if (!a.ok()) return std::nullopt;
    }
    c.bytes(aug_len);
  } else if (!aug.empty()) {
    // "eh" (an old GCC pointer) and others: the instruction layout is unknown.
    return std::nullopt;
  }
  if (!c.ok()) return std::nullopt;
  *program_pos = c.pos();
  cie.initial_instructions = section.subspan(c.pos(), end - c.pos());
  return cie;
}

}  // namespace

bool UnwindRow::same_rule(const UnwindRow& o) const {
  UnwindRow a = *this, b = o;
  a.pc = b.pc = 0;
  return a == b;
}

namespace {

struct Range {
  uint64_t begin, end;
};

// Sorted, disjoint union of ranges.
std::vector<Range> union_of(std::vector<Range> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  std::vector<Range> out;
  for (const Range& r : ranges) {
    if (!out.empty() && r.begin <= out.back().end)
      out.back().end = std::max(out.back().end, r.end);
    else
      out.push_back(r);
  }
  return out;
}

bool overlaps(const std::vector<Range>& disjoint, uint64_t begin, uint64_t end) {
  auto it = std::lower_bound(disjoint.begin(), disjoint.end(), end,
                             [](const Range& r, uint64_t e) { return r.begin < e; });
  return it != disjoint.begin() && std::prev(it)->end > begin;
}

// Decodes the FDEs of one section into `rows` and their ranges into `ranges`; an FDE that
// overlaps `shadow` (what an earlier section already covers) is left out and counted.
// Returns the number of entries decoded, or an error when the table grows too large.
Result<size_t> collect(const FrameSection& in, const std::vector<Range>& shadow,
                       std::vector<UnwindRow>& rows, std::vector<Range>& ranges,
                       EhFrameStats& stats) {
  std::span<const uint8_t> section = in.bytes;
  uint64_t section_vaddr = in.vaddr;
  bool debug = in.kind == FrameSection::Kind::kDebugFrame;
  const char* name = debug ? ".debug_frame" : ".eh_frame";
  struct CieEntry {
    Cie cie;
    size_t program_pos;
  };
  std::vector<std::pair<size_t, std::optional<CieEntry>>> cie_cache;  // by offset
  auto cie_at = [&](size_t off) -> const CieEntry* {
    for (auto& [o, e] : cie_cache)
      if (o == off) return e ? &*e : nullptr;
    size_t program_pos = 0;
    auto cie = parse_cie(section, off, section_vaddr, debug, &program_pos);
    if (cie) ++stats.cies;
    if (cie_cache.size() > 4096) cie_cache.erase(cie_cache.begin());
    cie_cache.emplace_back(
        off, cie ? std::optional<CieEntry>(CieEntry{*cie, program_pos}) : std::nullopt);
    return cie_cache.back().second ? &*cie_cache.back().second : nullptr;
  };

  size_t pos = 0;
  size_t decoded = 0;
  while (pos + 4 <= section.size()) {
    Reader r(section, pos, section.size());
    uint64_t length = r.fixed<uint32_t>();
    if (length == 0) {
      if (!debug) break;  // .eh_frame's terminator
      pos = r.pos();      // .debug_frame has none; a zero length is padding
      continue;
    }
    bool is64 = length == 0xffffffffu;
    if (is64) length = r.fixed<uint64_t>();
    if (!r.ok() || length > section.size() - r.pos()) {
      ++stats.bad_entries;
      break;  // the rest of the section cannot be framed
    }
    size_t body = r.pos();
    size_t end = body + static_cast<size_t>(length);
    size_t next = end;
    Reader e(section, body, end);
    uint64_t id = is64 ? e.fixed<uint64_t>() : e.fixed<uint32_t>();
    if (!e.ok()) {
      ++stats.bad_entries;
      pos = next;
      continue;
    }
    uint64_t cie_id = !debug ? 0 : is64 ? ~uint64_t{0} : 0xffffffffu;
    if (id == cie_id) {  // a CIE: parsed when an FDE refers to it
      pos = next;
      continue;
    }
    // An FDE: in .eh_frame `id` is the distance from this field back to its CIE, in
    // .debug_frame the CIE's offset in the section.
    if (debug ? id >= section.size() : id > body) {
      ++stats.bad_entries;
      pos = next;
      continue;
    }
    const CieEntry* cie = cie_at(debug ? static_cast<size_t>(id) : body - static_cast<size_t>(id));
    if (!cie) {
      ++stats.bad_entries;
      pos = next;
      continue;
    }
    auto begin = e.encoded(cie->cie.fde_encoding, section_vaddr);
    auto range = e.encoded(cie->cie.fde_encoding & 0x0f, section_vaddr, /*value_only=*/true);
    if (!begin || !range || *begin + *range < *begin) {
      ++stats.bad_entries;
      pos = next;
      continue;
    }
    if (cie->cie.has_augmentation_data) e.bytes(e.uleb());
    if (!e.ok()) {
      ++stats.bad_entries;
      pos = next;
      continue;
    }
    ++decoded;
    if (*range == 0) {
      ++stats.fdes;
      pos = next;
      continue;
    }
    if (overlaps(shadow, *begin, *begin + *range)) {
      ++stats.shadowed_fdes;
      pos = next;
      continue;
    }
    ++stats.fdes;
    if (debug) ++stats.debug_frame_fdes;
    size_t program_pos = e.pos();
    FdeDecoder dec(cie->cie, section_vaddr, section, stats);
    dec.run(*begin, *begin + *range, section.subspan(program_pos, end - program_pos), program_pos,
            cie->program_pos, rows);
    ranges.push_back({*begin, *begin + *range});
    if (rows.size() > kMaxRows)
      return make_error(fmt::format("{} has more than {} rows", name, kMaxRows));
    pos = next;
  }
  if (decoded == 0 && !section.empty() && stats.bad_entries > 0)
    return make_error(fmt::format("no entry of {} could be decoded", name));
  return decoded;
}

}  // namespace

Result<EhFrameTable> decode_eh_frame(std::span<const uint8_t> section, uint64_t section_vaddr) {
  FrameSection in{section, section_vaddr, FrameSection::Kind::kEhFrame};
  return decode_frames({&in, 1});
}

Result<EhFrameTable> decode_frames(std::span<const FrameSection> sections) {
  EhFrameTable table;
  EhFrameStats& stats = table.stats;
  std::vector<Range> ranges;
  std::vector<UnwindRow> rows;
  std::optional<Error> first_error;
  size_t decoded = 0;
  for (const FrameSection& in : sections) {
    std::vector<Range> shadow = union_of(ranges);
    auto n = collect(in, shadow, rows, ranges, stats);
    if (!n) {
      if (rows.size() > kMaxRows) return n.error();  // too large: not a table we can use
      if (!first_error) first_error = n.error();
      continue;
    }
    decoded += *n;
  }
  if (decoded == 0 && first_error) return *first_error;

  // Gaps: where an FDE ends and no other begins, no rule applies.
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  std::vector<uint64_t> starts;
  starts.reserve(ranges.size());
  for (const auto& rg : ranges) starts.push_back(rg.begin);
  for (const auto& rg : ranges) {
    if (std::binary_search(starts.begin(), starts.end(), rg.end)) continue;
    UnwindRow gap;
    gap.pc = rg.end;
    gap.cfa = CfaRule::kNone;
    rows.push_back(gap);
  }
  // A real row wins over a gap marker at the same PC.
  std::stable_sort(rows.begin(), rows.end(), [](const UnwindRow& a, const UnwindRow& b) {
    if (a.pc != b.pc) return a.pc < b.pc;
    return (a.cfa == CfaRule::kNone) < (b.cfa == CfaRule::kNone);
  });
  std::vector<UnwindRow> merged;
  merged.reserve(rows.size());
  for (const auto& row : rows) {
    if (!merged.empty() && merged.back().pc == row.pc) continue;
    if (!merged.empty() && merged.back().same_rule(row)) continue;
    merged.push_back(row);
  }
  for (const auto& row : merged) {
    if (row.cfa == CfaRule::kUnsupported || row.ra_unsupported) ++stats.unsupported_rows;
    if (row.cfa == CfaRule::kPlt) ++stats.plt_rows;
    if (row.cfa == CfaRule::kSignal) ++stats.signal_rows;
  }
  table.rows = std::move(merged);
  return table;
}

namespace {

// A saved register's slot for a row's aux nibble: 1..max when it is at CFA - 8 * slot, else 0.
uint8_t save_slot(int64_t offset, uint8_t max) {
  if (offset >= 0 || offset % 8 != 0 || -offset / 8 > max) return 0;
  return static_cast<uint8_t>(-offset / 8);
}

}  // namespace

kscope_unwind_row pack_row(const UnwindRow& row, bool* did_not_fit) {
  kscope_unwind_row out{};
  out.pc = static_cast<uint32_t>(row.pc);
  uint8_t cfa = static_cast<uint8_t>(row.cfa);
  uint8_t rbp = static_cast<uint8_t>(row.rbp);
  bool fits = row.pc <= UINT32_MAX;
  switch (row.cfa) {
    case CfaRule::kRsp:
    case CfaRule::kRbp:
    case CfaRule::kRbx:
    case CfaRule::kPlt:
      if (row.cfa_offset < 0 || row.cfa_offset > UINT16_MAX) fits = false;
      out.cfa_off = static_cast<uint16_t>(row.cfa_offset);
      break;
    default:
      break;
  }
  if (row.cfa == CfaRule::kPlt) {
    // The PLT saves neither register; aux holds the expression's threshold.
    out.aux = static_cast<uint8_t>(row.plt_threshold);
    rbp = KSCOPE_RBP_UNCHANGED;
    if (row.rbp != RbpRule::kUnchanged) rbp = KSCOPE_RBP_UNKNOWN;
  } else {
    uint8_t rbp_slot = 0, rbx_slot = KSCOPE_UNWIND_RBX_UNCHANGED;
    if (row.rbp == RbpRule::kOffset) {
      rbp_slot = save_slot(row.rbp_offset, 15);
      if (rbp_slot == 0) rbp = KSCOPE_RBP_UNKNOWN;  // the caller's rbp becomes unknown, not wrong
    }
    if (row.rbx == RbpRule::kOffset) {
      rbx_slot = save_slot(row.rbx_offset, KSCOPE_UNWIND_RBX_UNKNOWN - 1);
      if (rbx_slot == 0) rbx_slot = KSCOPE_UNWIND_RBX_UNKNOWN;
    } else if (row.rbx == RbpRule::kUnknown) {
      rbx_slot = KSCOPE_UNWIND_RBX_UNKNOWN;
    }
    out.aux = static_cast<uint8_t>(rbp_slot | (rbx_slot << 4));
  }
  if (!fits) {
    cfa = KSCOPE_CFA_UNSUPPORTED;
    out.cfa_off = 0;
  }
  if (did_not_fit) *did_not_fit = !fits;
  out.kind = static_cast<uint8_t>(cfa | (rbp << KSCOPE_UNWIND_RBP_SHIFT));
  if (row.ra_undefined) out.kind |= KSCOPE_UNWIND_RA_UNDEFINED;
  if (row.ra_unsupported) out.kind |= KSCOPE_UNWIND_RA_UNSUPPORTED;
  return out;
}

std::string describe_cfa(const UnwindRow& row) {
  switch (row.cfa) {
    case CfaRule::kRsp:
      return fmt::format("rsp+{}", row.cfa_offset);
    case CfaRule::kRbp:
      return fmt::format("rbp+{}", row.cfa_offset);
    case CfaRule::kRbx:
      return fmt::format("rbx+{}", row.cfa_offset);
    case CfaRule::kNone:
      return "u";
    default:
      return "exp";
  }
}

}  // namespace kscope::unwind
