// The user kscope works for. Run through sudo, kscope is root but acts for the user who typed
// the command (SUDO_UID/SUDO_GID): the files it creates belong to that user, and a COMMAND it
// starts runs as that user, with that user's HOME, as `sudo -H` would.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "util/fd.h"
#include "util/result.h"

namespace kscope {

struct InvokingUser {
  uid_t uid = 0;
  gid_t gid = 0;
};

// SUDO_UID/SUDO_GID when this process runs as root and both parse as numbers; nullopt otherwise
// (not root, not through sudo, or sudo's own user root).
std::optional<InvokingUser> sudo_invoking_user();

// Opens PATH for writing (truncating it), creating it with `mode` when it does not exist. A file
// this call creates is handed to the sudo user (mode unchanged); an existing file (or /dev/stdout,
// a FIFO) keeps its owner: kscope never gives away what it did not create.
Result<Fd> create_output_file(const std::string& path, unsigned mode);

// Creates directory PATH (mode minus umask) for the sudo user; an existing one is left as it is.
Status create_output_dir(const std::string& path, unsigned mode);

}  // namespace kscope
