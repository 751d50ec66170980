#include "model/stack_profile.h"

#include <fmt/format.h>

namespace kscope {

std::string ProfileFrame::label() const {
  if (resolved) return offset ? fmt::format("{}+{:#x}", function, offset) : function;
  if (!module.empty()) return fmt::format("{}+{:#x}", module, offset);
  return fmt::format("{:#x}", addr);
}

std::string ProfileFrame::display() const {
  if (resolved && !module.empty()) return fmt::format("{} [{}]", label(), module);
  return label();
}

}  // namespace kscope
