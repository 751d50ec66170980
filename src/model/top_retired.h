// What exited threads left behind for kscope top's whole-run profile, held without their
// processes: the final account values, the thread names, and the user stacks symbolized while
// the mappings still existed. The session drops a process's mappings, symbolizer state, unwind
// tables and kernel map entries once it has exited; what it needs later is here, compactly:
// frames are interned (strings stored once), a stack is a list of frame indices.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/top_model.h"

namespace kscope {

class TopRetired {
 public:
  // An exited thread's final values (added to those already kept under the same key).
  void add_values(const TopAccountKey& key, const TopValues& values);
  // The name an exited thread had (the last one set wins).
  void set_comm(uint32_t pid, uint32_t tid, const std::string& comm);
  // A user stack of process `pid`, symbolized before its mappings were dropped. The first
  // stack kept for (pid, ustack) stays.
  void keep_user_stack(uint32_t pid, int32_t ustack, const std::vector<TopFrameView>& frames);

  // A kernel stack of an exited thread's account, symbolized while its id was the kernel's:
  // the kernel reclaims the id once no live account refers to it, and may give it to another
  // stack. The retired account is keyed with the id returned (same frames, same id), from
  // kRetiredKernelStackBase up, above every id of the kernel's stack map (--max-stacks is at
  // most 2^22) and of the KSCOPE_STACK_* values.
  static constexpr int32_t kRetiredKernelStackBase = 1 << 30;
  static bool is_kernel_stack_id(int32_t id) { return id >= kRetiredKernelStackBase; }
  int32_t keep_kernel_stack(const std::vector<TopFrameView>& frames);
  std::optional<std::vector<TopFrameView>> kernel_stack(int32_t id) const;

  bool has_user_stack(uint32_t pid, int32_t ustack) const;
  std::optional<std::vector<TopFrameView>> user_stack(uint32_t pid, int32_t ustack) const;
  std::optional<std::string> comm(uint32_t pid, uint32_t tid) const;
  const std::unordered_map<TopAccountKey, TopValues, TopAccountKeyHash>& values() const {
    return values_;
  }

  // Sizes, for tests and the soak: what the store holds grows with the distinct stacks and
  // threads of the run, never with mappings or binaries.
  struct Sizes {
    size_t accounts = 0, threads = 0, stacks = 0, frames = 0, strings = 0, kernel_stacks = 0;
  };
  Sizes sizes() const;

 private:
  struct Frame {
    uint64_t addr = 0;
    uint64_t offset = 0;
    uint32_t symbol = 0, module = 0, module_path = 0;  // indices into strings_
    uint8_t flags = 0;                                 // kernel, resolved, inlined, marker
    auto operator<=>(const Frame&) const = default;
  };
  uint32_t intern_string(const std::string& s);
  uint32_t intern_frame(const TopFrameView& f);
  TopFrameView frame_view(uint32_t index) const;

  std::unordered_map<TopAccountKey, TopValues, TopAccountKeyHash> values_;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> comms_;  // (pid, tid) -> string
  std::map<std::pair<uint32_t, int32_t>, std::vector<uint32_t>> stacks_;
  std::vector<std::vector<uint32_t>> kernel_stacks_;  // by id - kRetiredKernelStackBase
  std::map<std::vector<uint32_t>, int32_t> kernel_stack_ids_;
  std::vector<Frame> frames_;
  std::map<Frame, uint32_t> frame_index_;
  std::vector<std::string> strings_;
  std::unordered_map<std::string, uint32_t> string_index_;
};

}  // namespace kscope
