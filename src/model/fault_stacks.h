// The call stacks of faults (`kscope faults --stacks`): each distinct (process, user stack,
// kernel stack) once, referenced by id from the fault records, in the tracer's output and in
// recordings (the stacks block, type 7, format 1.2; docs/recording-format.md).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/wire.h"

namespace kscope {

// How a stack part ended or why it is missing (FaultStack::user_status / kernel_status). Values
// below kStackStatusFramePointers are the native walker's reasons (enum kscope_unwind_reason:
// 0 complete). The values are part of the recording format.
inline constexpr uint8_t kStackStatusComplete = 0;
inline constexpr uint8_t kStackStatusUnwindReasonMax = 10;  // reasons are < this
inline constexpr uint8_t kStackStatusFramePointers = 0x20;  // walked by frame pointers: end unknown
inline constexpr uint8_t kStackStatusNone = 0x30;     // not collected (user-mode fault: kernel)
inline constexpr uint8_t kStackStatusPresent = 0x31;  // a kernel stack, as the kernel gave it
inline constexpr uint8_t kStackStatusLostCollision = 0x40;  // another stack held its map slot
inline constexpr uint8_t kStackStatusLostError = 0x41;      // stack map full, or the walk failed
inline constexpr uint8_t kStackStatusLostDamaged = 0x42;  // reader only: its stacks block was lost

// One distinct stack of a run: frames LEAF FIRST. user[0] is where the thread was in user space
// (the faulting instruction for a user-mode fault), then return addresses; kernel[0] likewise.
struct FaultStack {
  uint32_t id = 0;  // >= 1; FaultRecord::stack
  uint32_t pid = 0;
  uint8_t user_status = kStackStatusNone;
  uint8_t kernel_status = kStackStatusNone;
  std::vector<uint64_t> user;
  std::vector<uint64_t> kernel;
  bool operator==(const FaultStack&) const = default;
};

// A status is a lost stack (nothing stored for this part).
inline bool stack_status_lost(uint8_t status) { return status >= kStackStatusLostCollision; }
bool valid_stack_status(uint8_t status);

// The native walker's words for a reason: "no unwind table for mapping", "depth limit", ...
const char* unwind_reason_text(uint8_t reason);

// The marker frame that ends a user stack that is not whole: "[incomplete: REASON]" for a native
// walk that stopped early, "[stack lost: REASON]" for a lost stack; empty when complete, walked
// by frame pointers, or not collected.
std::string user_stack_marker(uint8_t user_status);
// "[kernel stack lost: REASON]" for a lost kernel stack, else empty.
std::string kernel_stack_marker(uint8_t kernel_status);
// "stack map collision", "stack map full or walk failed", "damaged recording".
const char* stack_lost_reason(uint8_t status);

// Frames per part a block accepts (the walker's limit and the kernel's stack depth).
inline constexpr size_t kMaxStackFrames = 127;
inline constexpr uint32_t kMaxStacksPerBlock = 65536;
inline constexpr size_t kStacksBlockBytes = size_t{4} << 20;

// Encodes stacks as one block payload (the writer keeps blocks under kStacksBlockBytes).
void encode_fault_stack(wire::Bytes& out, const FaultStack& stack);
// Decodes a payload of `count` entries, appending to `out`. Errors go to the cursor.
void decode_fault_stacks(wire::PayloadCursor& c, uint32_t count, std::vector<FaultStack>& out);

}  // namespace kscope
