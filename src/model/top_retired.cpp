#include "model/top_retired.h"

namespace kscope {

namespace {
constexpr uint8_t kKernel = 1, kResolved = 2, kInlined = 4, kMarker = 8;
}  // namespace

void TopRetired::add_values(const TopAccountKey& key, const TopValues& values) {
  values_[key] += values;
}

void TopRetired::set_comm(uint32_t pid, uint32_t tid, const std::string& comm) {
  comms_[{pid, tid}] = intern_string(comm);
}

uint32_t TopRetired::intern_string(const std::string& s) {
  auto it = string_index_.find(s);
  if (it != string_index_.end()) return it->second;
  uint32_t index = static_cast<uint32_t>(strings_.size());
  strings_.push_back(s);
  string_index_.emplace(s, index);
  return index;
}

uint32_t TopRetired::intern_frame(const TopFrameView& f) {
  Frame frame;
  frame.addr = f.addr;
  frame.offset = f.offset;
  frame.symbol = intern_string(f.symbol);
  frame.module = intern_string(f.module);
  frame.module_path = intern_string(f.module_path);
  frame.flags = static_cast<uint8_t>((f.kernel ? kKernel : 0) | (f.resolved ? kResolved : 0) |
                                     (f.inlined ? kInlined : 0) | (f.marker ? kMarker : 0));
  auto it = frame_index_.find(frame);
  if (it != frame_index_.end()) return it->second;
  uint32_t index = static_cast<uint32_t>(frames_.size());
  frames_.push_back(frame);
  frame_index_.emplace(frame, index);
  return index;
}

TopFrameView TopRetired::frame_view(uint32_t index) const {
  const Frame& frame = frames_[index];
  TopFrameView f;
  f.addr = frame.addr;
  f.offset = frame.offset;
  f.symbol = strings_[frame.symbol];
  f.module = strings_[frame.module];
  f.module_path = strings_[frame.module_path];
  f.kernel = frame.flags & kKernel;
  f.resolved = frame.flags & kResolved;
  f.inlined = frame.flags & kInlined;
  f.marker = frame.flags & kMarker;
  return f;
}

void TopRetired::keep_user_stack(uint32_t pid, int32_t ustack,
                                 const std::vector<TopFrameView>& frames) {
  auto key = std::make_pair(pid, ustack);
  if (stacks_.count(key)) return;
  std::vector<uint32_t> indices;
  indices.reserve(frames.size());
  for (const TopFrameView& f : frames) indices.push_back(intern_frame(f));
  stacks_.emplace(key, std::move(indices));
}

int32_t TopRetired::keep_kernel_stack(const std::vector<TopFrameView>& frames) {
  std::vector<uint32_t> indices;
  indices.reserve(frames.size());
  for (const TopFrameView& f : frames) indices.push_back(intern_frame(f));
  auto it = kernel_stack_ids_.find(indices);
  if (it != kernel_stack_ids_.end()) return it->second;
  int32_t id = kRetiredKernelStackBase + static_cast<int32_t>(kernel_stacks_.size());
  kernel_stacks_.push_back(indices);
  kernel_stack_ids_.emplace(std::move(indices), id);
  return id;
}

std::optional<std::vector<TopFrameView>> TopRetired::kernel_stack(int32_t id) const {
  if (!is_kernel_stack_id(id)) return std::nullopt;
  size_t index = static_cast<size_t>(id - kRetiredKernelStackBase);
  if (index >= kernel_stacks_.size()) return std::nullopt;
  std::vector<TopFrameView> out;
  out.reserve(kernel_stacks_[index].size());
  for (uint32_t f : kernel_stacks_[index]) out.push_back(frame_view(f));
  return out;
}

bool TopRetired::has_user_stack(uint32_t pid, int32_t ustack) const {
  return stacks_.count({pid, ustack}) != 0;
}

std::optional<std::vector<TopFrameView>> TopRetired::user_stack(uint32_t pid,
                                                                int32_t ustack) const {
  auto it = stacks_.find({pid, ustack});
  if (it == stacks_.end()) return std::nullopt;
  std::vector<TopFrameView> out;
  out.reserve(it->second.size());
  for (uint32_t index : it->second) out.push_back(frame_view(index));
  return out;
}

std::optional<std::string> TopRetired::comm(uint32_t pid, uint32_t tid) const {
  auto it = comms_.find({pid, tid});
  if (it == comms_.end()) return std::nullopt;
  return strings_[it->second];
}

TopRetired::Sizes TopRetired::sizes() const {
  return Sizes{values_.size(), comms_.size(),   stacks_.size(),
               frames_.size(), strings_.size(), kernel_stacks_.size()};
}

}  // namespace kscope
