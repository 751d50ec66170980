#include "unwind/table_loader.h"

#include <fmt/format.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace kscope::unwind {

namespace {

constexpr const char* kVdso = "[vdso]";

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

TableLoader::TableLoader(UnwindMapWriter& writer, uint32_t rows_capacity, uint32_t files_capacity)
    : writer_(writer), rows_capacity_(rows_capacity), files_capacity_(files_capacity) {
  stats_.rows_capacity = rows_capacity;
}

const TableLoader::LoadedFile* TableLoader::install(const std::string& key,
                                                    Result<ElfUnwindSource> source,
                                                    const std::string& what) {
  auto fail = [&](std::string why) -> const LoadedFile* {
    failures_[what] = std::move(why);
    ++stats_.files_no_table;
    auto none = std::make_shared<LoadedFile>();
    by_key_[key] = none;
    return none.get();
  };
  if (!source) return fail(source.error().describe());
  std::string full_key = source->build_id.empty() ? key : "build-id:" + source->build_id;
  if (auto it = by_key_.find(full_key); it != by_key_.end()) return it->second.get();
  auto table = build_file_table(*source, full_key);
  if (!table) return fail(table.error().describe());
  auto loaded = std::make_shared<LoadedFile>();
  loaded->loads = table->loads;
  if (table->rows.size() > rows_capacity_ - std::min(next_row_, rows_capacity_) ||
      next_file_ >= files_capacity_) {
    failures_[what] = fmt::format("no room: {} rows needed, {} of {} used", table->rows.size(),
                                  next_row_, rows_capacity_);
    ++stats_.files_no_room;
    by_key_[full_key] = loaded;  // file_id stays NO_FILE: counted once, not retried
    return loaded.get();
  }
  if (auto st = writer_.write_rows(next_row_, table->rows); !st) {
    failures_[what] = st.error().describe();
    ++stats_.files_no_table;
    by_key_[full_key] = loaded;
    return loaded.get();
  }
  kscope_unwind_file f{next_row_, static_cast<uint32_t>(table->rows.size())};
  uint32_t id = next_file_;
  if (auto st = writer_.write_file(id, f); !st) {
    failures_[what] = st.error().describe();
    ++stats_.files_no_table;
    by_key_[full_key] = loaded;
    return loaded.get();
  }
  ++next_file_;
  next_row_ += f.row_count;
  loaded->file_id = id;
  ++stats_.files;
  stats_.rows += f.row_count;
  stats_.unsupported_rows += table->stats.unsupported_rows + table->rows_did_not_fit;
  failures_.erase(what);
  by_key_[full_key] = loaded;
  return loaded.get();
}

const TableLoader::LoadedFile* TableLoader::vdso_file(const ExecMapping& m) {
  if (!vdso_tried_) {
    vdso_tried_ = true;
    uint64_t start = 0, end = 0;
    if (own_vdso(&start, &end)) {
      std::span<const uint8_t> image(reinterpret_cast<const uint8_t*>(start), end - start);
      const LoadedFile* f = install("vdso", read_unwind_source_image(image), kVdso);
      for (auto& [k, v] : by_key_)
        if (v.get() == f) vdso_ = v;
      vdso_size_ = end - start;
    }
  }
  // A vDSO of another size is another image (a 32-bit process's): no table.
  if (!vdso_ || m.end - m.start != vdso_size_) return nullptr;
  return vdso_.get();
}

const TableLoader::LoadedFile* TableLoader::file_for(uint32_t pid, const ExecMapping& m) {
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
  for (const std::string& candidate : candidates) {
    struct stat st {};
    if (::stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (m.inode != 0 && st.st_ino != m.inode) continue;  // another file by now
    std::string ikey = inode_key(st);
    if (auto it = by_inode_.find(ikey); it != by_inode_.end()) return it->second.get();
    const LoadedFile* f = install("inode:" + ikey, read_unwind_source(candidate), m.path);
    for (auto& [k, v] : by_key_)
      if (v.get() == f) by_inode_[ikey] = v;
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
    const LoadedFile* f = file_for(pid, m);
    if (f && f->file_id != KSCOPE_UNWIND_NO_FILE) {
      auto bias = load_bias(f->loads, m.start, m.path == kVdso ? 0 : m.offset);
      if (bias) {
        out.bias = *bias;
        out.file_id = f->file_id;
      }
    }
  }
  proc->count = n;
  KSCOPE_TRY(writer_.write_process(pid, *proc));
  pids_[pid] = true;
  stats_.processes = pids_.size();
  return {};
}

void TableLoader::forget_process(uint32_t pid) {
  writer_.delete_process(pid);
  pids_.erase(pid);
  stats_.processes = pids_.size();
}

}  // namespace kscope::unwind
