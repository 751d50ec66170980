#include "symbols/symbolizer.h"

#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "symbols/proc_maps.h"

namespace kscope {
namespace {

constexpr std::string_view kVdsoPath = "[vdso]";

// How often a perf map that did not name an address is checked for growth.
constexpr int64_t kPerfMapRecheckNs = 100'000'000;

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string_view basename_of(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

struct Symbolizer::Process {
  uint32_t pid = 0;
  std::vector<Mapping> mappings;     // sorted by start
  std::vector<ElfBinary*> binaries;  // per mapping, valid when looked_up
  std::vector<bool> looked_up;
  size_t last = SIZE_MAX;  // index of the mapping that held the previous address
};

size_t Symbolizer::FileKeyHash::operator()(const FileKey& k) const {
  size_t h = std::hash<uint64_t>()(k.dev);
  h = h * 31 + std::hash<uint64_t>()(k.inode);
  h = h * 31 + std::hash<uint64_t>()(k.size);
  return h * 31 + std::hash<int64_t>()(k.mtime_ns);
}

Symbolizer::Symbolizer(SymbolizerOptions options) : options_(std::move(options)) {
  debuginfod_ = DebuginfodClient::create(options_.debuginfod);
  options_.debug_search.debuginfod = debuginfod_.get();
  // Alone (nothing to share with), it holds no descriptors: binaries are cached once read.
  open_files_ = options_.open_files ? options_.open_files : std::make_shared<OpenFiles>(0);
  options_.debug_search.files = open_files_.get();
}
Symbolizer::~Symbolizer() = default;

void Symbolizer::set_mappings(uint32_t pid, std::vector<Mapping> mappings) {
  std::sort(mappings.begin(), mappings.end(),
            [](const Mapping& a, const Mapping& b) { return a.start < b.start; });
  auto process = std::make_unique<Process>();
  process->pid = pid;
  process->binaries.assign(mappings.size(), nullptr);
  process->looked_up.assign(mappings.size(), false);
  process->mappings = std::move(mappings);
  processes_[pid] = std::move(process);
  if (last_ && last_->pid == pid) last_.reset();
}

void Symbolizer::set_mappings(const MappingSnapshot& snapshot) {
  set_mappings(snapshot.pid, snapshot.mappings);
}

void Symbolizer::forget_process(uint32_t pid) {
  processes_.erase(pid);
  named_.erase(pid);
  if (auto it = jit_maps_.find(pid); it != jit_maps_.end()) {
    named_count_.erase(it->second.file.get());  // its address may be another file's later
    jit_maps_.erase(it);
  }
  owners_.erase(pid);
  if (last_ && last_->pid == pid) last_.reset();
}

void Symbolizer::add_stored_symbols(const std::vector<StoredSymbol>& symbols) {
  for (const StoredSymbol& s : symbols) {
    Symbol& symbol = stored_[StoredKey{s.kernel ? 0 : s.pid, s.ip, s.kernel}];
    symbol = Symbol{};
    symbol.addr = s.ip;
    symbol.function = s.function;
    symbol.offset = s.offset;
    symbol.module = s.module;
    symbol.module_path = s.module_path;
    symbol.build_id = s.build_id;
    symbol.resolved = s.resolved;
  }
  last_.reset();
}

Symbol Symbolizer::resolve_user(uint32_t pid, uint64_t ip, SymbolDetail detail) {
  if (!stored_.empty()) {
    if (auto it = stored_.find(StoredKey{pid, ip, false}); it != stored_.end()) {
      ++stored_used_;
      return it->second;
    }
  }
  if (last_ && last_->pid == pid && last_->ip == ip && last_->detail == detail) {
    return last_->symbol;
  }
  jit_lookup_ = false;
  Symbol symbol = resolve_user_uncached(pid, ip, detail);
  // Not JIT code's: its perf map may be read again before the next call, and name it anew.
  if (!jit_lookup_) last_ = LastResult{pid, ip, detail, symbol};
  return symbol;
}

Symbol Symbolizer::resolve_user_uncached(uint32_t pid, uint64_t ip, SymbolDetail detail) {
  Symbol symbol = unknown_symbol(ip);
  auto found = processes_.find(pid);
  if (found == processes_.end()) return symbol;
  Process& process = *found->second;

  size_t index = process.last;
  if (index >= process.mappings.size() || !process.mappings[index].contains(ip)) {
    auto it = std::upper_bound(process.mappings.begin(), process.mappings.end(), ip,
                               [](uint64_t a, const Mapping& m) { return a < m.start; });
    // An instruction outside every known mapping: JIT code in memory mapped after the last
    // snapshot (runtimes map code space as they go; only its perf map can name it).
    if (it == process.mappings.begin() || !(it - 1)->contains(ip)) {
      return resolve_jit(pid, ip, std::move(symbol));
    }
    index = static_cast<size_t>(it - 1 - process.mappings.begin());
    process.last = index;
  }
  const Mapping& mapping = process.mappings[index];
  bool vdso = mapping.path == kVdsoPath;
  // Code in anonymous memory is JIT code, named (if at all) by the runtime's perf map. The
  // permissions are not checked: runtimes flip code pages between writable and executable
  // (W^X), so a snapshot may show them either way, and an instruction address was executed.
  // Nothing names code in [heap], [stack] and the like.
  if (!vdso && !is_file_mapping(mapping)) {
    bool anonymous = mapping.path.empty() || mapping.path.starts_with("[anon");
    return anonymous ? resolve_jit(pid, ip, std::move(symbol)) : symbol;
  }

  // From here on the module is known; the file offset identifies the code even if the file
  // cannot be read (it is stable across runs and processes, unlike the address).
  std::string_view path = vdso ? kVdsoPath : path_without_deleted(mapping.path);
  uint64_t file_offset = ip - mapping.start + mapping.offset;
  symbol.module_path = std::string(path);
  symbol.module = std::string(basename_of(path));
  symbol.offset = file_offset;

  ElfBinary* binary = binary_for(process, index);
  if (!binary) return symbol;
  symbol.build_id = binary->build_id();
  std::optional<uint64_t> vaddr = binary->file_offset_to_vaddr(file_offset, mapping.executable());
  if (!vaddr) return symbol;
  std::optional<ElfBinary::Function> function = binary->find_function(*vaddr);
  if (!function) return symbol;
  symbol.function = std::string(function->name);
  symbol.offset = *vaddr - function->start;
  symbol.resolved = true;
  count_named(pid, ip, binary);
  if (detail != SymbolDetail::kFunction) {
    binary->describe_source(*vaddr, detail == SymbolDetail::kInlineFrames, symbol);
  }
  return symbol;
}

Symbol Symbolizer::resolve_jit(uint32_t pid, uint64_t ip, Symbol symbol) {
  if (options_.perf_map_dir.empty()) return symbol;
  jit_lookup_ = true;
  JitMap& jit = jit_maps_[pid];
  if (jit.refused) return symbol;
  int64_t now = monotonic_ns();
  if (!jit.file) {
    int64_t owner = -1;
    if (auto it = owners_.find(pid); it != owners_.end()) {
      owner = it->second;
    } else if (struct stat st{}; ::stat(fmt::format("/proc/{}", pid).c_str(), &st) == 0) {
      owner = st.st_uid;
    }
    jit.file = std::make_unique<PerfMapFile>(
        fmt::format("{}/perf-{}.map", options_.perf_map_dir, pid), owner);
    jit.checked_ns = now - kPerfMapRecheckNs;
  }
  // The runtime appends as it compiles (and may buffer its writes), so what was appended since
  // is read, at most every kPerfMapRecheckNs, whether the address is named yet or not: a
  // region written later may cover code freed and reused since, and the newest names it. (Read
  // on misses only, a hot loop's faults were once all named after the function whose freed
  // code its own had replaced: node wrote the new region after kscope had last read the file.)
  if (now - jit.checked_ns >= kPerfMapRecheckNs) {
    jit.checked_ns = now;
    if (Status st = jit.file->refresh(); !st) {
      jit.refused = true;
      if (options_.messages) {
        std::fprintf(options_.messages, "kscope: ignoring JIT symbols: %s\n",
                     st.error().describe().c_str());
      }
      return symbol;
    }
  }
  std::optional<PerfMap::Hit> hit = jit.file->lookup(ip);
  if (!hit) return symbol;
  symbol.function = std::string(hit->name);
  symbol.offset = ip - hit->start;
  symbol.module = "[jit]";
  symbol.module_path = jit.file->path();
  symbol.resolved = true;
  count_named(pid, ip, jit.file.get());
  return symbol;
}

void Symbolizer::count_named(uint32_t pid, uint64_t ip, const void* named_by) {
  if (named_[pid].insert(ip).second) ++named_count_[named_by];
}

ElfBinary* Symbolizer::binary_for(Process& process, size_t index) {
  if (!process.looked_up[index]) {
    const Mapping& mapping = process.mappings[index];
    process.binaries[index] =
        mapping.path == kVdsoPath ? load_vdso(mapping) : load_file(process.pid, mapping);
    process.looked_up[index] = true;
  }
  return process.binaries[index];
}

ElfBinary* Symbolizer::load_file(uint32_t pid, const Mapping& mapping) {
  std::string key = fmt::format("{:x}:{:x}:{}:{}", mapping.dev_major, mapping.dev_minor,
                                mapping.inode, mapping.path);
  if (auto it = by_mapping_.find(key); it != by_mapping_.end()) return it->second;

  ElfBinary* binary = nullptr;
  std::string path(path_without_deleted(mapping.path));
  MappedFileCheck mapped{mapping.inode, mapping.dev_major, mapping.dev_minor};
  // While the process lives, map_files names exactly the file it mapped (also when deleted or
  // replaced since), and the unwinder may have opened it that way already (one open per file).
  auto file = open_files_->open(
      fmt::format("/proc/{}/map_files/{:x}-{:x}", pid, mapping.start, mapping.end), mapped);
  if (!file) {
    // A deleted file's path may now name its replacement (an upgraded library): use it only if
    // it is still the very file that was mapped.
    bool check_inode = options_.require_same_inode || path_is_deleted(mapping.path);
    file = open_files_->open(path, check_inode ? mapped : MappedFileCheck{});
  }
  if (file) {
    const FileIdentity& id = (*file)->identity();
    FileKey file_key{id.dev, id.ino, id.size, id.mtime_ns};
    auto it = binaries_.find(file_key);
    binary = it != binaries_.end() ? it->second : open_binary(path, file_key, **file);
  } else {
    const Error& e = file.error();
    unavailable_.emplace(path, e.sys_errno
                                   ? fmt::format("cannot open: {}", std::strerror(e.sys_errno))
                                   : e.describe());
  }
  if (!binary) ++unavailable_files_;
  by_mapping_.emplace(std::move(key), binary);
  return binary;
}

ElfBinary* Symbolizer::open_binary(const std::string& path, const FileKey& file_key,
                                   const OpenFile& file) {
  auto opened = ElfBinary::begin_open(path, options_.debug_search, &file);
  if (!opened) {
    unavailable_.emplace(path, opened.error().describe());
    binaries_.emplace(file_key, nullptr);
    return nullptr;
  }
  std::string id_key;
  if (!(*opened)->build_id().empty()) {
    id_key = fmt::format("{}:{}:{}", (*opened)->build_id(), (*opened)->file_owner(),
                         (*opened)->file_size());
    if (auto same = by_build_id_.find(id_key); same != by_build_id_.end()) {
      binaries_.emplace(file_key, same->second);  // a copy: named by the binary already read
      return same->second;
    }
  }
  if (Status st = (*opened)->finish_open(); !st) {
    unavailable_.emplace(path, st.error().describe());
    binaries_.emplace(file_key, nullptr);
    return nullptr;
  }
  ElfBinary* binary = owned_.emplace_back(std::move(*opened)).get();
  binaries_.emplace(file_key, binary);
  if (!id_key.empty()) by_build_id_.emplace(id_key, binary);
  return binary;
}

ElfBinary* Symbolizer::load_vdso(const Mapping& mapping) {
  if (!vdso_tried_) {
    vdso_tried_ = true;
    // The vDSO is an image built into the kernel and mapped into every process of one ABI, so
    // our own copy describes the traced processes' (our own mappings, not /proc/PID).
    uint64_t base = getauxval(AT_SYSINFO_EHDR);
    auto own = read_proc_maps(static_cast<uint32_t>(::getpid()));
    if (base != 0 && own) {
      for (const Mapping& m : *own) {
        if (m.path != kVdsoPath || m.start != base) continue;
        std::vector<char> image(m.end - m.start);
        std::memcpy(image.data(), reinterpret_cast<const void*>(m.start), image.size());
        auto binary = ElfBinary::from_image(std::string(kVdsoPath), std::move(image));
        if (binary) {
          vdso_ = std::move(*binary);
          vdso_size_ = m.end - m.start;
        }
        break;
      }
    }
  }
  // A vDSO of another size is another image (a 32-bit process's, another kernel's).
  if (!vdso_ || mapping.end - mapping.start != vdso_size_) return nullptr;
  return vdso_.get();
}

Symbol Symbolizer::resolve_kernel(uint64_t ip) {
  if (!stored_.empty()) {
    if (auto it = stored_.find(StoredKey{0, ip, true}); it != stored_.end()) {
      ++stored_used_;
      return it->second;
    }
  }
  const KernelSymbols* symbols = kernel_symbols();
  return symbols ? symbols->resolve(ip) : unknown_symbol(ip);
}

void Symbolizer::set_kernel_symbols(KernelSymbols symbols) { kernel_.emplace(std::move(symbols)); }

Status Symbolizer::kernel_symbols_status() {
  if (kernel_symbols()) return {};
  return kernel_->error();
}

const KernelSymbols* Symbolizer::kernel_symbols() {
  if (!kernel_) kernel_.emplace(KernelSymbols::load(options_.kallsyms_path));
  return kernel_->ok() ? &kernel_->value() : nullptr;
}

SymbolizerStats Symbolizer::stats() const {
  SymbolizerStats stats;
  stats.processes = processes_.size();
  stats.binaries_loaded = owned_.size();
  stats.binaries_unavailable = unavailable_files_;
  for (const auto& [pid, jit] : jit_maps_) {
    if (jit.file && jit.file->map().size() > 0) {
      ++stats.jit_maps;
      stats.jit_symbols += jit.file->map().size();
    }
  }
  stats.debuginfod_fetched = debuginfod_ ? debuginfod_->fetched() : 0;
  return stats;
}

BinarySource Symbolizer::source_of(const ElfBinary& binary) const {
  BinarySource out;
  out.path = binary.path();
  out.build_id = binary.build_id();
  out.description = binary.describe_sources();
  switch (binary.symbol_source()) {
    case ElfBinary::SymbolSource::kNone:
      out.source = "none";
      break;
    case ElfBinary::SymbolSource::kSymtab:
      out.source = "symtab";
      break;
    case ElfBinary::SymbolSource::kDebugFileSymtab:
      switch (binary.debug_origin()) {
        case ElfBinary::DebugOrigin::kBuildIdDir:
        case ElfBinary::DebugOrigin::kNone:
          out.source = "build-id debug file";
          out.detail = binary.debug_file();
          break;
        case ElfBinary::DebugOrigin::kDebugLink:
          out.source = "debuglink";
          out.detail = binary.debug_file();
          break;
        case ElfBinary::DebugOrigin::kDebuginfod:
          out.source = "debuginfod";
          out.detail = fmt::format("{} (cached as {})", debuginfod_ ? debuginfod_->urls() : "?",
                                   binary.debug_file());
          break;
      }
      break;
    case ElfBinary::SymbolSource::kMiniDebugInfo:
      out.source = "minidebuginfo";
      break;
    case ElfBinary::SymbolSource::kDynsym:
      out.source = "dynsym";
      break;
  }
  if (auto it = named_count_.find(&binary); it != named_count_.end()) {
    out.addresses_named = it->second;
  }
  return out;
}

std::vector<BinarySource> Symbolizer::binary_sources() const {
  std::vector<BinarySource> out;
  for (const auto& binary : owned_) out.push_back(source_of(*binary));
  if (vdso_) out.push_back(source_of(*vdso_));
  for (const auto& [path, why] : unavailable_) {
    BinarySource none;
    none.path = path;
    none.source = "none";
    none.detail = why;
    out.push_back(std::move(none));
  }
  for (const auto& [pid, jit] : jit_maps_) {
    if (jit.file && jit.file->map().size() > 0) {
      BinarySource map;
      map.path = jit.file->path();
      map.source = "perf map";
      map.description = fmt::format("JIT perf map, {} regions", jit.file->map().size());
      if (auto it = named_count_.find(jit.file.get()); it != named_count_.end()) {
        map.addresses_named = it->second;
      }
      out.push_back(std::move(map));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const BinarySource& a, const BinarySource& b) { return a.path < b.path; });
  return out;
}

}  // namespace kscope
