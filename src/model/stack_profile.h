// A symbolized stack profile: the common currency between the producers (kscope top's on-CPU
// accounts, kscope faults' fault locations) and the consumers (folded stacks, pprof, flame
// graphs in the HTML report). Frames are resolved once and shared by index.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kscope {

struct ProfileFrame {
  uint64_t addr = 0;        // the instruction address (user: as sampled; kernel: kernel VA)
  std::string function;     // demangled; empty when not resolved
  uint64_t offset = 0;      // addr - function start when resolved, else offset in module
  std::string module;       // "kernel", a kernel module name, or a binary's basename
  std::string module_path;  // full path of the binary; empty for kernel code
  std::string build_id;     // hex GNU build-id of module_path when known
  bool kernel = false;      // a kernel frame
  bool resolved = false;    // function is set
  bool inlined = false;     // an inlined function shown as its own frame (no own address)

  // "function+0xoff" when resolved, else "module+0xoff" (or "0xaddr" when nothing is known).
  std::string label() const;
  // "function+0xoff [module]": the display form used by kscope top.
  std::string display() const;
};

// One stack with its values. frames index into StackProfile::frames, LEAF FIRST (as
// bpf_get_stack returns them); kernel frames come before user frames of the same stack.
struct ProfileSample {
  std::vector<uint32_t> frames;
  std::vector<int64_t> values;  // one per StackProfile::value_types
  uint32_t pid = 0;
  uint32_t tid = 0;
  std::string comm;
};

struct ProfileValueType {
  std::string type;  // pprof sample type, e.g. "oncpu", "switches", "faults"
  std::string unit;  // pprof unit, e.g. "nanoseconds", "count"
  bool operator==(const ProfileValueType&) const = default;
};

struct StackProfile {
  std::vector<ProfileValueType> value_types;  // the first one is the default (flame graph width)
  // Index of the value type named `type` (ProfileValueType::type), if the profile has it.
  std::optional<size_t> value_index(std::string_view type) const {
    for (size_t i = 0; i < value_types.size(); ++i)
      if (value_types[i].type == type) return i;
    return std::nullopt;
  }
  std::vector<ProfileFrame> frames;
  std::vector<ProfileSample> samples;
  uint64_t duration_ns = 0;    // measured interval
  uint64_t start_wall_ns = 0;  // wall-clock start (ns since the Unix epoch), 0 when unknown
};

}  // namespace kscope
