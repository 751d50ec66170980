// The files one run reads symbols and unwind tables from, each opened once: the symbolizer
// (symbols/elf_binary.h) and the unwinder (unwind/table_loader.h) ask this cache for a file by
// path, and a path that names a file already open (through any other path: a hard link,
// /proc/PID/map_files, /proc/PID/root/...) gets that file's descriptor instead of a new open.
// A file is known by its identity (device, inode, size, mtime), taken with stat() before the
// open and checked again with fstat() after it, so a path that names another file by now (an
// upgraded library, a rebuilt binary) is never given the old file's descriptor.
//
// Bounded: at most `capacity` descriptors are held. Beyond it the least recently used one is
// dropped (counted); a handle a caller still holds stays valid, and the file is opened again if
// it is asked for later (counted), through the first path the caller gives that still names it
// (callers give /proc/PID/map_files first while the process lives).
//
// Not thread-safe: one instance per thread, or serialize calls (kscope's tracers call it from
// their one event loop).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "util/fd.h"
#include "util/result.h"

struct stat;

namespace kscope {

struct FileIdentity {
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  static FileIdentity of(const struct stat& st);
  bool operator==(const FileIdentity&) const = default;
};

struct FileIdentityHash {
  size_t operator()(const FileIdentity& id) const;
};

// What a mapping (/proc/PID/maps, a perf mmap record) says about its file, to check a path
// against; zeros are not checked. The inode must match. The device is compared when the file
// is on a block device (stat's major number is not 0); a filesystem on an anonymous device
// (btrfs subvolumes, overlayfs) reports another device to stat() than the one the mapping
// shows, so there only the inode is checked.
struct MappedFileCheck {
  uint64_t inode = 0;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
};

// An open regular file, shared by its users; the descriptor closes when the cache and every
// user have dropped it. Read it with pread() or mmap(), never read(): the offset is shared.
class OpenFile {
 public:
  OpenFile(Fd fd, FileIdentity identity, uint32_t owner, std::string opened_as)
      : fd_(std::move(fd)), identity_(identity), owner_(owner), opened_as_(std::move(opened_as)) {}
  int fd() const { return fd_.get(); }
  const FileIdentity& identity() const { return identity_; }
  uint32_t owner() const { return owner_; }                    // st_uid
  const std::string& opened_as() const { return opened_as_; }  // the path it was opened by

 private:
  Fd fd_;
  FileIdentity identity_;
  uint32_t owner_;
  std::string opened_as_;
};

struct OpenFilesStats {
  size_t opened = 0;    // open() calls that opened a file
  size_t reused = 0;    // open() calls answered with a file already open
  size_t evicted = 0;   // descriptors dropped to stay within the capacity
  size_t reopened = 0;  // of `opened`, files opened again after they were dropped (among the
                        // last kRememberDropped dropped)
  size_t held = 0;      // descriptors the cache holds now
  size_t capacity = 0;
};

class OpenFiles {
 public:
  // The descriptors held at most: well under the usual 1,024 limit, next to the BPF objects'
  // maps, links and perf events.
  static constexpr size_t kDefaultCapacity = 128;
  // Identities of dropped files remembered for `reopened`: the newest ones, so a long run over
  // ever-new files holds a bounded set.
  static constexpr size_t kRememberDropped = 1024;
  // capacity 0: nothing is held (each open is the caller's alone), for a user with no one to
  // share with.
  explicit OpenFiles(size_t capacity = kDefaultCapacity);

  // The regular file `path` names now, opened, or the one already open with its identity.
  // Fails when the path cannot be opened, is not a regular file, or fails `check`.
  Result<std::shared_ptr<const OpenFile>> open(const std::string& path,
                                               const MappedFileCheck& check = {});
  // The first of `paths` that names a regular file passing `check` (e.g. map_files, then the
  // process's root, then the path): errors of the earlier ones are skipped; the last one's is
  // returned when none does.
  Result<std::shared_ptr<const OpenFile>> open_first(std::span<const std::string> paths,
                                                     const MappedFileCheck& check = {});

  const OpenFilesStats& stats() const { return stats_; }

 private:
  using Lru = std::list<std::shared_ptr<const OpenFile>>;  // most recently used first
  std::shared_ptr<const OpenFile> touch(Lru::iterator it);
  void insert(std::shared_ptr<const OpenFile> file);

  size_t capacity_;
  Lru lru_;
  std::unordered_map<FileIdentity, Lru::iterator, FileIdentityHash> by_identity_;
  std::unordered_set<FileIdentity, FileIdentityHash> dropped_;  // evicted once (for `reopened`)
  std::deque<FileIdentity> dropped_order_;                      // dropped_, oldest first
  OpenFilesStats stats_;
};

}  // namespace kscope
