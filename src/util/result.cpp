#include "util/result.h"

#include <cstring>

namespace kscope {

std::string Error::describe() const {
  if (sys_errno == 0) return message;
  return fmt::format("{}: {}", message, std::strerror(sys_errno));
}

}  // namespace kscope
