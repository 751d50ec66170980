#include "unwind/table_loader.h"

#include <fmt/format.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>

namespace kscope::unwind {

namespace {

constexpr const char* kVdso = "[vdso]";

// The kernel's encoding of a device number (MKDEV: major << 20 | minor), as vma->vm_file's
// inode has it in i_sb->s_dev.
uint32_t kernel_dev(uint32_t major, uint32_t minor) { return (major << 20) | (minor & 0xfffff); }

kscope_unwind_file_key file_key(uint32_t dev, uint64_t ino, const struct stat& st) {
  kscope_unwind_file_key k{};
  k.ino = ino;
  k.size = static_cast<uint64_t>(st.st_size);
  k.mtime_sec = st.st_mtim.tv_sec;
  k.mtime_nsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  k.dev = dev;
  return k;
}

bool same_key(const kscope_unwind_file_key& a, const kscope_unwind_file_key& b) {
  return a.ino == b.ino && a.size == b.size && a.mtime_sec == b.mtime_sec &&
         a.mtime_nsec == b.mtime_nsec && a.dev == b.dev;
}

std::string inode_key(const struct stat& st) {
  return fmt::format("{}:{}:{}:{}.{}", static_cast<uint64_t>(st.st_dev),
                     static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
                     static_cast<int64_t>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec);
}

// Our own [vdso] mapping: the kernel maps the same image into every 64-bit process.
bool own_vdso(uint64_t* start, uint64_t* end) {
  uint64_t base = getauxval(AT_SYSINFO_EHDR);
  if (base == 0) return false;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("[vdso]") == std::string::npos) continue;
    unsigned long long s = 0, e = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx", &s, &e) != 2 || s != base || e <= s) return false;
    *start = s;
    *end = e;
    return true;
  }
  return false;
}

}  // namespace

TableLoader::TableLoader(UnwindMapWriter& writer, uint32_t rows_capacity, uint32_t files_capacity,
                         std::shared_ptr<OpenFiles> files)
    : writer_(writer),
      rows_capacity_(rows_capacity),
      files_capacity_(files_capacity),
      // Alone it holds no descriptors: tables are kept once built.
      files_(files ? std::move(files) : std::make_shared<OpenFiles>(0)) {
  stats_.rows_capacity = rows_capacity;
}

std::shared_ptr<TableLoader::LoadedFile> TableLoader::install(const std::string& key,
                                                              Result<ElfUnwindSource> source,
                                                              const std::string& what,
                                                              const std::string& link_dir_path) {
  auto fail = [&](std::string why) {
    failures_[what] = std::move(why);
    ++stats_.files_no_table;
    auto none = std::make_shared<LoadedFile>();
    by_key_[key] = none;
    return none;
  };
  if (!source) return fail(source.error().describe());
  std::string full_key = source->build_id.empty() ? key : "build-id:" + source->build_id;
  if (auto it = by_key_.find(full_key); it != by_key_.end()) return it->second;
  // A file without .eh_frame: its separate debug file's .debug_frame, if there is one.
  std::optional<ElfUnwindSource> debug;
  if (source->eh_frame.empty() && !link_dir_path.empty()) {
    std::string debug_path = find_debug_file(*source, link_dir_path, debug_dirs_, files_.get());
    if (!debug_path.empty())
      if (auto d = read_unwind_source(debug_path, files_.get())) debug = std::move(*d);
  }
  auto table = build_file_table(*source, full_key, debug ? &*debug : nullptr);
  if (!table) return fail(table.error().describe());
  auto loaded = std::make_shared<LoadedFile>();
  loaded->loads = table->loads;
  auto skip = [&](std::string why) {
    failures_[what] = std::move(why);
    by_key_[full_key] = loaded;  // file_id stays NO_FILE: counted once, not retried
    return loaded;
  };
  // The file's elements of the rows map: its row index, then its rows.
  RowIndex index = build_row_index(table->rows);
  uint32_t index_count = static_cast<uint32_t>(index.buckets.size());
  uint32_t count = static_cast<uint32_t>(table->rows.size());
  uint64_t elements = uint64_t{count} + index_count;
  std::optional<uint32_t> id;
  std::optional<uint32_t> first;
  if (elements <= rows_capacity_) {
    while (!id) {
      if (!free_ids_.empty()) {
        id = free_ids_.back();
        free_ids_.pop_back();
      } else if (next_file_ < files_capacity_) {
        id = next_file_++;
      } else if (!free_one_unused()) {
        break;
      }
    }
    if (id) first = allocate_rows(static_cast<uint32_t>(elements));
  }
  if (!id || !first) {
    if (id) free_ids_.push_back(*id);
    ++stats_.files_no_room;
    return skip(fmt::format("no room: {} rows and {} index entries needed, {} of {} used",
                            table->rows.size(), index_count, stats_.rows + stats_.index_entries,
                            rows_capacity_));
  }
  auto give_back = [&] {
    free_ids_.push_back(*id);
    free_range(*first, static_cast<uint32_t>(elements));
  };
  std::vector<kscope_unwind_row> index_elements(index_count);
  static_assert(sizeof(kscope_unwind_index_entry) == sizeof(kscope_unwind_row));
  if (index_count > 0)
    std::memcpy(index_elements.data(), index.buckets.data(),
                index_count * sizeof(kscope_unwind_index_entry));
  Status written = writer_.write_rows(*first, index_elements);
  if (written) written = writer_.write_rows(*first + index_count, table->rows);
  if (!written) {
    give_back();
    ++stats_.files_no_table;
    return skip(written.error().describe());
  }
  kscope_unwind_file f{};
  f.first_row = *first + index_count;
  f.row_count = count;
  f.index_first = *first;
  f.index_count = index_count;
  f.index_base = index.base;
  f.index_shift = index.shift;
  if (auto st = writer_.write_file(*id, f); !st) {
    give_back();
    ++stats_.files_no_table;
    return skip(st.error().describe());
  }
  loaded->file_id = *id;
  loaded->first_element = *first;
  loaded->row_count = count;
  loaded->index_count = index_count;
  loaded->unused_since = std::chrono::steady_clock::now();
  tables_.push_back(loaded);
  ++stats_.files;
  stats_.rows += count;
  stats_.index_entries += index_count;
  stats_.unsupported_rows += table->stats.unsupported_rows + table->rows_did_not_fit;
  if (table->stats.debug_frame_fdes > 0) ++stats_.files_debug_frame;
  if (debug) ++stats_.debug_files;
  failures_.erase(what);
  by_key_[full_key] = loaded;
  return loaded;
}

void TableLoader::free_range(uint32_t first, uint32_t count) {
  if (count == 0) return;
  auto [it, inserted] = free_rows_.emplace(first, count);
  if (!inserted) return;  // cannot happen: ranges are disjoint
  // Merge with the next range, then with the previous one.
  if (auto next = std::next(it);
      next != free_rows_.end() && it->first + it->second == next->first) {
    it->second += next->second;
    free_rows_.erase(next);
  }
  if (it != free_rows_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second == it->first) {
      prev->second += it->second;
      free_rows_.erase(it);
      it = prev;
    }
  }
  // A free range that reaches the never-used tail joins it.
  if (it->first + it->second == next_row_) {
    next_row_ = it->first;
    free_rows_.erase(it);
  }
}

std::optional<uint32_t> TableLoader::allocate_rows(uint32_t count) {
  while (true) {
    for (auto it = free_rows_.begin(); it != free_rows_.end(); ++it) {
      if (it->second < count) continue;
      uint32_t first = it->first, left = it->second - count;
      free_rows_.erase(it);
      if (left > 0) free_rows_.emplace(first + count, left);
      return first;
    }
    if (next_row_ <= rows_capacity_ && rows_capacity_ - next_row_ >= count) {
      uint32_t first = next_row_;
      next_row_ += count;
      return first;
    }
    if (!free_one_unused()) return std::nullopt;
  }
}

bool TableLoader::free_one_unused() {
  auto now = std::chrono::steady_clock::now();
  auto oldest = tables_.end();
  for (auto it = tables_.begin(); it != tables_.end(); ++it) {
    const LoadedFile& f = **it;
    if (f.users > 0 || f.pinned || now - f.unused_since < reuse_delay_) continue;
    if (oldest == tables_.end() || f.unused_since < (*oldest)->unused_since) oldest = it;
  }
  if (oldest == tables_.end()) return false;
  std::shared_ptr<LoadedFile> f = *oldest;
  tables_.erase(oldest);
  // No process entry refers to it; an empty entry keeps a stale id from finding rows.
  for (const auto& key : f->identities) writer_.delete_identity(key);
  stats_.identities -= f->identities.size();
  f->identities.clear();
  (void)writer_.write_file(f->file_id, kscope_unwind_file{});
  free_ids_.push_back(f->file_id);
  free_range(f->first_element, f->row_count + f->index_count);
  for (auto* index : {&by_key_, &by_inode_})
    for (auto it = index->begin(); it != index->end();)
      it = it->second == f ? index->erase(it) : std::next(it);
  --stats_.files;
  stats_.rows -= f->row_count;
  stats_.index_entries -= f->index_count;
  ++stats_.files_freed;
  stats_.rows_freed += f->row_count;
  f->file_id = KSCOPE_UNWIND_NO_FILE;
  return true;
}

void TableLoader::release(const std::vector<std::shared_ptr<LoadedFile>>& files) {
  auto now = std::chrono::steady_clock::now();
  for (const auto& f : files)
    if (f->users > 0 && --f->users == 0) f->unused_since = now;
}

void TableLoader::add_identity(LoadedFile& f, const kscope_unwind_file_key& key) {
  if (f.file_id == KSCOPE_UNWIND_NO_FILE) return;
  for (const auto& k : f.identities)
    if (same_key(k, key)) return;
  kscope_unwind_file_info info{};
  info.file_id = f.file_id;
  for (const LoadSegment& seg : f.loads) {
    if (!seg.executable) continue;
    if (info.segment_count >= KSCOPE_UNWIND_FILE_SEGMENTS) break;
    info.segments[info.segment_count++] = {seg.offset, seg.vaddr, seg.filesz};
  }
  if (info.segment_count == 0) return;
  // A failed write only loses the early lookup of this file (its walks end as before).
  if (!writer_.write_identity(key, info)) return;
  f.identities.push_back(key);
  ++stats_.identities;
}

bool TableLoader::preload(const std::string& path) {
  struct stat st {};
  auto file = files_->open(path);
  if (!file || ::fstat((*file)->fd(), &st) != 0) {
    failures_[path] = "cannot open the file";
    return false;
  }
  std::string ikey = inode_key(st);
  std::shared_ptr<LoadedFile> f;
  if (auto it = by_inode_.find(ikey); it != by_inode_.end()) {
    f = it->second;
  } else {
    f = install("inode:" + ikey, read_unwind_source_fd((*file)->fd(), path), path, path);
    by_inode_[ikey] = f;
  }
  if (!f || f->file_id == KSCOPE_UNWIND_NO_FILE) return false;
  add_identity(*f, file_key(kernel_dev(major(st.st_dev), minor(st.st_dev)), st.st_ino, st));
  if (std::find(preloaded_.begin(), preloaded_.end(), f) == preloaded_.end()) {
    ++f->users;  // held for the run: the command maps it as soon as it starts
    preloaded_.push_back(f);
    ++stats_.preloaded_files;
  }
  return true;
}

std::shared_ptr<TableLoader::LoadedFile> TableLoader::vdso_file(const ExecMapping& m) {
  if (!vdso_tried_) {
    vdso_tried_ = true;
    uint64_t start = 0, end = 0;
    if (own_vdso(&start, &end)) {
      std::span<const uint8_t> image(reinterpret_cast<const uint8_t*>(start), end - start);
      vdso_ = install("vdso", read_unwind_source_image(image), kVdso);
      vdso_->pinned = true;
      vdso_size_ = end - start;
      kscope_unwind_file_key key{};
      key.size = vdso_size_;  // the vDSO has no file: known by its size (bpf/unwind.bpf.h)
      add_identity(*vdso_, key);
    }
  }
  // A vDSO of another size is another image (a 32-bit process's): no table.
  if (!vdso_ || m.end - m.start != vdso_size_) return nullptr;
  return vdso_;
}

std::shared_ptr<TableLoader::LoadedFile> TableLoader::file_for(uint32_t pid, const ExecMapping& m) {
  if (m.path == kVdso) return vdso_file(m);
  if (m.path.empty() || m.path[0] != '/') return nullptr;
  // The process's own view of the file: map_files names exactly the mapped inode (also when it
  // was deleted or replaced since), root/ follows its mount namespace.
  std::string path = m.path;
  constexpr std::string_view kDeleted = " (deleted)";
  if (path.size() > kDeleted.size() && path.ends_with(kDeleted))
    path.resize(path.size() - kDeleted.size());
  std::vector<std::string> candidates = {
      fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, m.start, m.end),
      fmt::format("/proc/{}/root{}", pid, path), path};
  // Through the run's open files: a file the symbolizer (or another process's mapping) opened
  // already is not opened again. A path that names another file by now is skipped.
  auto file = files_->open_first(candidates, {m.inode, m.dev_major, m.dev_minor});
  struct stat st {};
  if (file && ::fstat((*file)->fd(), &st) == 0) {
    const std::string& candidate = (*file)->opened_as();
    std::string ikey = inode_key(st);
    std::shared_ptr<LoadedFile> f;
    if (auto it = by_inode_.find(ikey); it != by_inode_.end()) {
      f = it->second;
    } else {
      // Debug files are looked for by the mapped path (kscope's mount namespace).
      f = install("inode:" + ikey, read_unwind_source_fd((*file)->fd(), candidate), m.path, path);
      by_inode_[ikey] = f;
    }
    // The identity the kernel's VMA has: the mapping's device and inode (as /proc/PID/maps
    // prints them), the file's size and mtime.
    if (f && m.inode != 0)
      add_identity(*f, file_key(kernel_dev(m.dev_major, m.dev_minor), m.inode, st));
    return f;
  }
  if (!failures_.count(m.path)) {
    failures_[m.path] = "cannot open the file";
    ++stats_.files_no_table;
  }
  return nullptr;
}

Status TableLoader::load_process(uint32_t pid, const std::vector<ExecMapping>& mappings) {
  auto proc = std::make_unique<kscope_unwind_process>();
  std::memset(proc.get(), 0, sizeof(*proc));
  std::vector<ExecMapping> sorted = mappings;
  std::sort(sorted.begin(), sorted.end(),
            [](const ExecMapping& a, const ExecMapping& b) { return a.start < b.start; });
  // The tables this entry uses, held from the moment they are found: loading a later file of
  // the same process must not free an earlier one.
  std::vector<std::shared_ptr<LoadedFile>> used;
  uint32_t n = 0;
  for (const ExecMapping& m : sorted) {
    if (m.end <= m.start) continue;
    if (n >= KSCOPE_UNWIND_MAX_MAPPINGS) {
      ++stats_.mappings_dropped;
      continue;
    }
    kscope_unwind_mapping& out = proc->mappings[n++];
    out.start = m.start;
    out.end = m.end;
    out.file_id = KSCOPE_UNWIND_NO_FILE;
    auto f = file_for(pid, m);
    if (f && f->file_id != KSCOPE_UNWIND_NO_FILE) {
      if (std::find(used.begin(), used.end(), f) == used.end()) {
        ++f->users;
        used.push_back(f);
      }
      auto bias = load_bias(f->loads, m.start, m.path == kVdso ? 0 : m.offset);
      if (bias) {
        out.bias = *bias;
        out.file_id = f->file_id;
      }
    }
  }
  proc->count = n;
  if (auto st = writer_.write_process(pid, *proc); !st) {
    release(used);
    return st;
  }
  auto& entry = pids_[pid];
  release(entry);  // what the process no longer maps
  entry = std::move(used);
  stats_.processes = pids_.size();
  return {};
}

void TableLoader::forget_process(uint32_t pid) {
  writer_.delete_process(pid);
  if (auto it = pids_.find(pid); it != pids_.end()) {
    release(it->second);
    pids_.erase(it);
  }
  stats_.processes = pids_.size();
}

}  // namespace kscope::unwind
