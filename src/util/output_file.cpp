#include "util/output_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "util/invoking_user.h"

namespace kscope {

unsigned current_umask() {
  mode_t m = ::umask(0);
  ::umask(m);
  return m;
}

Result<OutputFile> OutputFile::open(const std::string& path, bool allow_stdout) {
  if (path.empty()) return usage_error("no output file given (-o FILE)");
  if (path == "-") {
    if (!allow_stdout) return usage_error("this format cannot be written to stdout; give -o FILE");
    return OutputFile(stdout, "-");
  }
  // Through sudo, a file kscope creates belongs to the user who ran it.
  KSCOPE_ASSIGN_OR_RETURN(Fd owned, create_output_file(path, 0666));
  int fd = owned.release();
  std::FILE* f = ::fdopen(fd, "w");
  if (!f) {
    ::close(fd);
    return errno_error("fdopen");
  }
  return OutputFile(f, path);
}

OutputFile::OutputFile(OutputFile&& o) noexcept
    : file_(std::exchange(o.file_, nullptr)), path_(std::move(o.path_)) {}

OutputFile::~OutputFile() { (void)close(); }

Status OutputFile::write(std::string_view data) {
  if (std::fwrite(data.data(), 1, data.size(), file_) != data.size())
    return errno_error(fmt::format("cannot write {}", path_));
  return {};
}

Status OutputFile::close() {
  if (!file_) return {};
  std::FILE* f = std::exchange(file_, nullptr);
  bool failed = std::ferror(f) != 0;
  if (f == stdout) {
    if (std::fflush(f) != 0) failed = true;
  } else if (std::fclose(f) != 0) {
    failed = true;
  }
  if (failed) return errno_error(fmt::format("cannot write {}", path_));
  return {};
}

}  // namespace kscope
