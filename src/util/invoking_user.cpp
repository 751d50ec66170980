#include "util/invoking_user.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace kscope {

namespace {

bool parse_id(const char* text, unsigned long& out) {
  if (!text || !*text) return false;
  const char* end = text + std::strlen(text);
  auto [p, ec] = std::from_chars(text, end, out);
  return ec == std::errc() && p == end && out < 0xffffffffUL;  // (uid_t)-1 means "unchanged"
}

}  // namespace

std::optional<InvokingUser> sudo_invoking_user() {
  if (::geteuid() != 0) return std::nullopt;
  unsigned long uid = 0, gid = 0;
  if (!parse_id(std::getenv("SUDO_UID"), uid) || !parse_id(std::getenv("SUDO_GID"), gid))
    return std::nullopt;
  if (uid == 0) return std::nullopt;
  return InvokingUser{static_cast<uid_t>(uid), static_cast<gid_t>(gid)};
}

Result<Fd> create_output_file(const std::string& path, unsigned mode) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (fd) {
    if (auto user = sudo_invoking_user(); user && ::fchown(fd.get(), user->uid, user->gid) != 0)
      return errno_error(fmt::format("cannot give {} to uid {} (SUDO_UID)", path, user->uid));
    return fd;
  }
  if (errno != EEXIST) return errno_error(fmt::format("cannot write {}", path));
  fd.reset(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (!fd) return errno_error(fmt::format("cannot write {}", path));
  return fd;
}

Status create_output_dir(const std::string& path, unsigned mode) {
  if (::mkdir(path.c_str(), mode) != 0) {
    if (errno == EEXIST) return {};
    return errno_error(fmt::format("cannot create directory {}", path));
  }
  auto user = sudo_invoking_user();
  // lchown: never follow a symlink someone swapped in after the mkdir.
  if (user && ::lchown(path.c_str(), user->uid, user->gid) != 0)
    return errno_error(fmt::format("cannot give {} to uid {} (SUDO_UID)", path, user->uid));
  return {};
}

}  // namespace kscope
