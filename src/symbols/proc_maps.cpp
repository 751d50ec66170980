#include "symbols/proc_maps.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "util/file.h"

namespace kscope {
namespace {

// A cursor over one line. Each take_* consumes a field and fails without consuming on bad input.
class LineReader {
 public:
  explicit LineReader(std::string_view line) : rest_(line) {}

  bool take_hex(uint64_t& out) { return take_number(out, 16); }
  bool take_dec(uint64_t& out) { return take_number(out, 10); }
  bool take_char(char c) {
    if (rest_.empty() || rest_.front() != c) return false;
    rest_.remove_prefix(1);
    return true;
  }
  // One or more spaces or tabs.
  bool take_blanks() {
    size_t n = 0;
    while (n < rest_.size() && (rest_[n] == ' ' || rest_[n] == '\t')) ++n;
    rest_.remove_prefix(n);
    return n > 0;
  }
  // Exactly n characters up to the next blank or the end.
  bool take_word(size_t n, std::string_view& out) {
    size_t len = 0;
    while (len < rest_.size() && rest_[len] != ' ' && rest_[len] != '\t') ++len;
    if (len != n) return false;
    out = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return true;
  }
  std::string_view rest() const { return rest_; }

 private:
  bool take_number(uint64_t& out, int base) {
    // from_chars rejects signs, and reports overflow instead of wrapping.
    auto [ptr, ec] = std::from_chars(rest_.data(), rest_.data() + rest_.size(), out, base);
    if (ec != std::errc() || ptr == rest_.data()) return false;
    rest_.remove_prefix(static_cast<size_t>(ptr - rest_.data()));
    return true;
  }

  std::string_view rest_;
};

bool valid_perms(std::string_view p) {
  return p.size() == 4 && (p[0] == 'r' || p[0] == '-') && (p[1] == 'w' || p[1] == '-') &&
         (p[2] == 'x' || p[2] == '-') && (p[3] == 'p' || p[3] == 's');
}

bool parse_line(std::string_view line, Mapping& m) {
  LineReader r(line);
  uint64_t major = 0, minor = 0;
  std::string_view perms;
  if (!r.take_hex(m.start) || !r.take_char('-') || !r.take_hex(m.end) || !r.take_blanks() ||
      !r.take_word(4, perms) || !valid_perms(perms) || !r.take_blanks() || !r.take_hex(m.offset) ||
      !r.take_blanks() || !r.take_hex(major) || !r.take_char(':') || !r.take_hex(minor) ||
      !r.take_blanks() || !r.take_dec(m.inode)) {
    return false;
  }
  if (m.start >= m.end || major > UINT32_MAX || minor > UINT32_MAX) return false;
  m.dev_major = static_cast<uint32_t>(major);
  m.dev_minor = static_cast<uint32_t>(minor);
  m.perms = std::string(perms);
  // After the inode the kernel pads to a column, then prints the path to the end of the line.
  std::string_view rest = r.rest();
  if (!rest.empty() && !r.take_blanks()) return false;  // e.g. "123abc": inode glued to junk
  m.path = std::string(r.rest());
  return true;
}

}  // namespace

Result<std::vector<Mapping>> parse_proc_maps(std::string_view text, size_t* malformed_lines) {
  std::vector<Mapping> mappings;
  size_t malformed = 0;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (line.empty()) continue;
    Mapping m;
    if (parse_line(line, m)) {
      mappings.push_back(std::move(m));
    } else {
      ++malformed;
    }
  }
  if (malformed_lines) *malformed_lines = malformed;
  if (mappings.empty() && malformed > 0) {
    return make_error(
        fmt::format("not a /proc/PID/maps text: none of its {} lines parse", malformed));
  }
  return mappings;
}

Result<std::vector<Mapping>> read_proc_maps(uint32_t pid, size_t* malformed_lines) {
  std::string path = fmt::format("/proc/{}/maps", pid);
  // The file has no size (st_size is 0); the kernel hands it out in chunks. A process that
  // exits while it is read gives ESRCH or an empty read; both mean "gone".
  auto text = read_file(path, size_t{1} << 30);
  if (!text) {
    const int err = text.error().sys_errno;
    if (err == ENOENT || err == ESRCH)
      return make_error(
          fmt::format("cannot read the mappings of process {}: it does not exist", pid), err);
    if (err == EACCES)
      return Error{fmt::format("cannot open {}", path), err, ExitCode::kFailure,
                   "run kscope as root (or with CAP_SYS_PTRACE)"};
    return text.error();
  }
  return parse_proc_maps(*text, malformed_lines);
}

bool path_is_deleted(std::string_view path) {
  return path.size() > kDeletedSuffix.size() && path.ends_with(kDeletedSuffix);
}

std::string_view path_without_deleted(std::string_view path) {
  if (path_is_deleted(path)) path.remove_suffix(kDeletedSuffix.size());
  return path;
}

bool is_file_mapping(const Mapping& mapping) {
  return !mapping.path.empty() && mapping.path.front() == '/';
}

}  // namespace kscope
