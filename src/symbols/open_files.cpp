#include "symbols/open_files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <functional>

namespace kscope {

FileIdentity FileIdentity::of(const struct stat& st) {
  return FileIdentity{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                      static_cast<uint64_t>(st.st_size),
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

size_t FileIdentityHash::operator()(const FileIdentity& id) const {
  size_t h = std::hash<uint64_t>()(id.dev);
  h = h * 31 + std::hash<uint64_t>()(id.ino);
  h = h * 31 + std::hash<uint64_t>()(id.size);
  return h * 31 + std::hash<int64_t>()(id.mtime_ns);
}

namespace {

// Whether `st` is the file the mapping describes (see MappedFileCheck); the reason when not.
Status check_file(const std::string& path, const struct stat& st, const MappedFileCheck& check) {
  if (!S_ISREG(st.st_mode)) return make_error(fmt::format("{} is not a regular file", path));
  if (check.inode != 0 && static_cast<uint64_t>(st.st_ino) != check.inode)
    return make_error(fmt::format("{} is not the file that was mapped (inode {}, the mapping's {})",
                                  path, static_cast<uint64_t>(st.st_ino), check.inode));
  bool block_device = major(st.st_dev) != 0;
  bool mapping_dev = check.dev_major != 0 || check.dev_minor != 0;
  if (check.inode != 0 && block_device && mapping_dev &&
      (major(st.st_dev) != check.dev_major || minor(st.st_dev) != check.dev_minor))
    return make_error(
        fmt::format("{} is not the file that was mapped (device {}:{}, the "
                    "mapping's {}:{})",
                    path, major(st.st_dev), minor(st.st_dev), check.dev_major, check.dev_minor));
  return {};
}

}  // namespace

OpenFiles::OpenFiles(size_t capacity) : capacity_(capacity) { stats_.capacity = capacity_; }

std::shared_ptr<const OpenFile> OpenFiles::touch(Lru::iterator it) {
  lru_.splice(lru_.begin(), lru_, it);
  ++stats_.reused;
  return *it;
}

void OpenFiles::insert(std::shared_ptr<const OpenFile> file) {
  if (capacity_ == 0) return;  // holds nothing: the caller's handle is the only one
  FileIdentity id = file->identity();
  lru_.push_front(std::move(file));
  by_identity_[id] = lru_.begin();
  while (lru_.size() > capacity_) {
    by_identity_.erase(lru_.back()->identity());
    if (dropped_.insert(lru_.back()->identity()).second) {
      dropped_order_.push_back(lru_.back()->identity());
      if (dropped_order_.size() > kRememberDropped) {
        dropped_.erase(dropped_order_.front());
        dropped_order_.pop_front();
      }
    }
    lru_.pop_back();
    ++stats_.evicted;
  }
  stats_.held = lru_.size();
}

Result<std::shared_ptr<const OpenFile>> OpenFiles::open(const std::string& path,
                                                        const MappedFileCheck& check) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error(fmt::format("cannot open {}", path));
  KSCOPE_TRY(check_file(path, st, check));
  if (auto it = by_identity_.find(FileIdentity::of(st)); it != by_identity_.end())
    return touch(it->second);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error(fmt::format("cannot open {}", path));
  // The path may name another file than the one stat() saw (replaced in between): what counts
  // is the file opened.
  if (::fstat(fd.get(), &st) != 0) return errno_error(fmt::format("cannot stat {}", path));
  KSCOPE_TRY(check_file(path, st, check));
  FileIdentity id = FileIdentity::of(st);
  if (auto it = by_identity_.find(id); it != by_identity_.end()) return touch(it->second);
  ++stats_.opened;
  if (dropped_.count(id)) ++stats_.reopened;
  auto file = std::make_shared<const OpenFile>(std::move(fd), id, st.st_uid, path);
  insert(file);
  return file;
}

Result<std::shared_ptr<const OpenFile>> OpenFiles::open_first(std::span<const std::string> paths,
                                                              const MappedFileCheck& check) {
  Result<std::shared_ptr<const OpenFile>> last = make_error("no path to open");
  for (const std::string& path : paths) {
    last = open(path, check);
    if (last) return last;
  }
  return last;
}

}  // namespace kscope
