#include "model/fault_stacks.h"

#include <fmt/format.h>

namespace kscope {

using namespace wire;

bool valid_stack_status(uint8_t status) {
  return status < kStackStatusUnwindReasonMax || status == kStackStatusFramePointers ||
         status == kStackStatusNone || status == kStackStatusPresent ||
         status == kStackStatusLostCollision || status == kStackStatusLostError ||
         status == kStackStatusLostDamaged;
}

const char* unwind_reason_text(uint8_t reason) {
  // The words of enum kscope_unwind_reason (include/kscope/abi/unwind.h), as kscope top prints
  // them.
  static const char* const kWords[kStackStatusUnwindReasonMax] = {
      "complete",
      "process tables not loaded yet",
      "pc outside executable mappings",
      "no unwind table for mapping",
      "no unwind row for pc",
      "unsupported unwind rule",
      "stack memory unreadable",
      "bad frame",
      "depth limit",
      "verifier budget",
  };
  return reason < kStackStatusUnwindReasonMax ? kWords[reason] : "unknown";
}

const char* stack_lost_reason(uint8_t status) {
  switch (status) {
    case kStackStatusLostCollision:
      return "stack map collision";
    case kStackStatusLostError:
      return "stack map full or walk failed";
    case kStackStatusLostDamaged:
      return "damaged recording";
    default:
      return "unknown";
  }
}

std::string user_stack_marker(uint8_t status) {
  if (stack_status_lost(status)) return fmt::format("[stack lost: {}]", stack_lost_reason(status));
  if (status != kStackStatusComplete && status < kStackStatusUnwindReasonMax)
    return fmt::format("[incomplete: {}]", unwind_reason_text(status));
  return {};
}

std::string kernel_stack_marker(uint8_t status) {
  if (stack_status_lost(status))
    return fmt::format("[kernel stack lost: {}]", stack_lost_reason(status));
  return {};
}

namespace {
void put_frames(Bytes& out, const std::vector<uint64_t>& ips) {
  put_varint(out, ips.size());
  uint64_t prev = 0;
  for (uint64_t ip : ips) {
    put_varint(out, zigzag(ip - prev));
    prev = ip;
  }
}

void get_frames(PayloadCursor& c, std::vector<uint64_t>& ips, const char* what) {
  uint64_t n = c.varint(what);
  if (!c.ok()) return;
  if (n > kMaxStackFrames) {
    c.fail(
        fmt::format("{}: {} frames, more than the {} a stack can have", what, n, kMaxStackFrames));
    return;
  }
  if (n > c.remaining()) {
    c.fail(fmt::format("{}: {} frames cannot fit in the {} bytes left", what, n, c.remaining()));
    return;
  }
  uint64_t prev = 0;
  ips.reserve(n);
  for (uint64_t i = 0; i < n && c.ok(); ++i) {
    prev += unzigzag(c.varint("frame address delta"));
    ips.push_back(prev);
  }
}
}  // namespace

// Entry: id, pid (varints), user status (u8), user frames (count + zigzag deltas, the first
// from 0), kernel status (u8), kernel frames (same).
void encode_fault_stack(Bytes& out, const FaultStack& s) {
  put_varint(out, s.id);
  put_varint(out, s.pid);
  out.push_back(s.user_status);
  put_frames(out, s.user);
  out.push_back(s.kernel_status);
  put_frames(out, s.kernel);
}

void decode_fault_stacks(PayloadCursor& c, uint32_t count, std::vector<FaultStack>& out) {
  // 6 bytes per entry at least: a count beyond that is corrupt, whatever the header said.
  if (count > kMaxStacksPerBlock || count > c.remaining() / 6) {
    c.fail(
        fmt::format("impossible stack count {} for a {}-byte stacks block", count, c.remaining()));
    return;
  }
  for (uint32_t i = 0; i < count && c.ok(); ++i) {
    FaultStack s;
    s.id = c.varint32("stack id");
    s.pid = c.varint32("stack pid");
    s.user_status = c.u8("user stack status");
    get_frames(c, s.user, "user stack");
    s.kernel_status = c.u8("kernel stack status");
    get_frames(c, s.kernel, "kernel stack");
    if (!c.ok()) return;
    if (s.id == 0) {
      c.fail("stack id 0 (reserved for 'no stack')");
      return;
    }
    if (!valid_stack_status(s.user_status) || !valid_stack_status(s.kernel_status) ||
        s.user_status == kStackStatusPresent || s.kernel_status < kStackStatusNone ||
        s.kernel_status == kStackStatusLostDamaged || s.user_status == kStackStatusLostDamaged) {
      c.fail(fmt::format("stack {} has invalid statuses 0x{:02x}/0x{:02x}", s.id, s.user_status,
                         s.kernel_status));
      return;
    }
    out.push_back(std::move(s));
  }
}

}  // namespace kscope
