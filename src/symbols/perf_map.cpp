#include "symbols/perf_map.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "util/fd.h"

namespace kscope {
namespace {

bool parse_hex(std::string_view& text, uint64_t& out) {
  if (text.starts_with("0x") || text.starts_with("0X")) text.remove_prefix(2);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  if (ec != std::errc() || end == text.data()) return false;
  text.remove_prefix(static_cast<size_t>(end - text.data()));
  return true;
}

}  // namespace

size_t PerfMap::append(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t newline = text.find('\n', pos);
    if (newline == std::string_view::npos) break;  // partial line: the runtime is writing it
    std::string_view line = text.substr(pos, newline - pos);
    pos = newline + 1;
    uint64_t start = 0, length = 0;
    bool ok = line.size() <= kMaxLineBytes && entries_.size() < kMaxEntries &&
              parse_hex(line, start) && line.starts_with(' ');
    if (ok) {
      line.remove_prefix(1);
      ok = parse_hex(line, length) && line.starts_with(' ') && length > 0 && start + length > start;
    }
    if (ok) {
      line.remove_prefix(1);
      if (line.ends_with('\r')) line.remove_suffix(1);
      ok = !line.empty() && names_.size() + line.size() <= UINT32_MAX;
    }
    if (!ok) {
      ++skipped_;
      continue;
    }
    Entry entry{start, start + length, static_cast<uint32_t>(entries_.size()),
                static_cast<uint32_t>(names_.size()), static_cast<uint32_t>(line.size())};
    if (!entries_.empty() && start < entries_.back().start) sorted_ = false;
    entries_.push_back(entry);
    names_.append(line);
    max_length_ = std::max(max_length_, length);
  }
  return text.size() - pos;
}

void PerfMap::sort_if_needed() {
  if (sorted_) return;
  std::stable_sort(entries_.begin(), entries_.end(),
                   [](const Entry& a, const Entry& b) { return a.start < b.start; });
  sorted_ = true;
}

std::optional<PerfMap::Hit> PerfMap::lookup(uint64_t addr) {
  sort_if_needed();
  auto it = std::upper_bound(entries_.begin(), entries_.end(), addr,
                             [](uint64_t a, const Entry& e) { return a < e.start; });
  // Every entry starting in [addr - max_length_, addr] may cover addr; the newest one wins.
  // Bounded to a few hundred steps so a hostile map cannot make each lookup linear.
  const Entry* best = nullptr;
  for (int steps = 0; it != entries_.begin() && steps < 256; ++steps) {
    --it;
    if (addr - it->start >= max_length_) break;
    if (addr < it->end && (!best || it->seq > best->seq)) best = &*it;
  }
  if (!best) return std::nullopt;
  return Hit{std::string_view(names_).substr(best->name_offset, best->name_length), best->start};
}

Status PerfMapFile::refresh() {
  Fd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) return {};  // the runtime has not written one (yet)
    return errno_error(fmt::format("cannot open {}", path_));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error(fmt::format("cannot stat {}", path_));
  // Like perf (dso__load_perf_map): only a file of the process's owner or root. A second link
  // could make a root-only file look like a map, so there must be exactly one.
  if (!S_ISREG(st.st_mode)) return make_error(fmt::format("{} is not a regular file", path_));
  if (st.st_nlink != 1) return make_error(fmt::format("{} has more than one link", path_));
  if (owner_ >= 0 && st.st_uid != 0 && static_cast<int64_t>(st.st_uid) != owner_) {
    return make_error(fmt::format("{} belongs to uid {}, not to the process's owner (uid {})",
                                  path_, st.st_uid, owner_));
  }
  if (static_cast<uint64_t>(st.st_size) > PerfMap::kMaxFileBytes) {
    return make_error(fmt::format("{} is larger than {} MiB", path_, PerfMap::kMaxFileBytes >> 20));
  }
  if (inode_ != 0 && st.st_ino != inode_) {
    map_ = PerfMap();  // another file now (a new process with the same pid)
    consumed_ = 0;
  }
  inode_ = st.st_ino;
  if (static_cast<uint64_t>(st.st_size) <= consumed_) return {};
  std::string text(static_cast<size_t>(st.st_size - consumed_), '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::pread(fd.get(), text.data() + got, text.size() - got,
                        static_cast<off_t>(consumed_ + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(fmt::format("cannot read {}", path_));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  size_t left = map_.append(text);
  // An unfinished last line is read again next time, unless it is already too long to be a
  // line: then it is skipped, so a hostile writer cannot make every refresh re-read it.
  if (left > PerfMap::kMaxLineBytes) left = 0;
  consumed_ += got - left;
  return {};
}

}  // namespace kscope
