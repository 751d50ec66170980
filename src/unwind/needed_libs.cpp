#include "unwind/needed_libs.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <set>
#include <sstream>

namespace kscope::unwind {

namespace {

constexpr size_t kMaxCacheBytes = 64u << 20;
constexpr size_t kMaxNeeded = 1024;  // DT_NEEDED entries read per file

// ld.so's default directories on x86-64 Debian (multiarch first, as its ld.so is built).
const char* const kDefaultDirs[] = {"/lib/x86_64-linux-gnu",
                                    "/usr/lib/x86_64-linux-gnu",
                                    "/lib64",
                                    "/usr/lib64",
                                    "/lib",
                                    "/usr/lib"};

struct DynInfo {
  bool ok = false;  // an x86-64 ELF file
  std::string interp;
  std::vector<std::string> needed;
  std::string rpath, runpath;
};

DynInfo read_dyn(const std::string& path) {
  DynInfo out;
  if (elf_version(EV_CURRENT) == EV_NONE) return out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  Elf* elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
  if (!elf) {
    ::close(fd);
    return out;
  }
  GElf_Ehdr ehdr;
  if (elf_kind(elf) == ELF_K_ELF && gelf_getehdr(elf, &ehdr) &&
      ehdr.e_ident[EI_CLASS] == ELFCLASS64 && ehdr.e_machine == EM_X86_64) {
    out.ok = true;
    size_t size = 0;
    const char* raw = elf_rawfile(elf, &size);
    size_t phnum = 0;
    if (raw && elf_getphdrnum(elf, &phnum) == 0) {
      for (size_t i = 0; i < phnum && i < 4096; ++i) {
        GElf_Phdr ph;
        if (!gelf_getphdr(elf, static_cast<int>(i), &ph) || ph.p_type != PT_INTERP) continue;
        // Bounds-checked: the path lies inside the file and is at most 4 KiB.
        if (ph.p_offset >= size || ph.p_filesz > 4096 || ph.p_filesz > size - ph.p_offset) break;
        out.interp.assign(raw + ph.p_offset, strnlen(raw + ph.p_offset, ph.p_filesz));
        break;
      }
    }
    Elf_Scn* scn = nullptr;
    while ((scn = elf_nextscn(elf, scn)) != nullptr) {
      GElf_Shdr shdr;
      if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_DYNAMIC) continue;
      Elf_Data* data = elf_getdata(scn, nullptr);  // libelf checks it lies inside the file
      if (!data || shdr.sh_entsize == 0) break;
      size_t n = shdr.sh_size / shdr.sh_entsize;  // gelf_getdyn refuses an index past the data
      for (size_t i = 0; i < n; ++i) {
        GElf_Dyn dyn;
        if (!gelf_getdyn(data, static_cast<int>(i), &dyn) || dyn.d_tag == DT_NULL) break;
        if (dyn.d_tag != DT_NEEDED && dyn.d_tag != DT_RPATH && dyn.d_tag != DT_RUNPATH) continue;
        // elf_strptr checks the offset against the string section.
        const char* s = elf_strptr(elf, shdr.sh_link, dyn.d_un.d_val);
        if (!s) continue;
        if (dyn.d_tag == DT_NEEDED && out.needed.size() < kMaxNeeded)
          out.needed.emplace_back(s);
        else if (dyn.d_tag == DT_RPATH)
          out.rpath = s;
        else if (dyn.d_tag == DT_RUNPATH)
          out.runpath = s;
      }
      break;
    }
  }
  elf_end(elf);
  ::close(fd);
  return out;
}

// One name per file: PT_INTERP's /lib64/ld-linux-x86-64.so.2 and libc's DT_NEEDED resolved in
// /lib/x86_64-linux-gnu are the same file.
std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : path;
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// A colon-separated search path with $ORIGIN / ${ORIGIN} expanded; other dynamic string tokens
// ($LIB, $PLATFORM) make an entry unusable here: it is left out.
std::vector<std::string> split_path(const std::string& list, const std::string& origin) {
  std::vector<std::string> out;
  std::stringstream in(list);
  std::string entry;
  while (std::getline(in, entry, ':')) {
    if (entry.empty()) continue;
    for (const char* token : {"${ORIGIN}", "$ORIGIN"}) {
      for (size_t at; (at = entry.find(token)) != std::string::npos;)
        entry.replace(at, std::strlen(token), origin);
    }
    if (entry.find('$') != std::string::npos) continue;
    out.push_back(entry);
  }
  return out;
}

bool is_x86_64_elf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  unsigned char h[20] = {};
  bool ok = ::pread(fd, h, sizeof(h), 0) == static_cast<ssize_t>(sizeof(h)) &&
            std::memcmp(h, ELFMAG, SELFMAG) == 0 && h[EI_CLASS] == ELFCLASS64 &&
            (h[18] | (h[19] << 8)) == EM_X86_64;
  ::close(fd);
  return ok;
}

}  // namespace

std::map<std::string, std::string> parse_ld_so_cache(const std::string& bytes) {
  std::map<std::string, std::string> out;
  static constexpr char kMagic[] = "glibc-ld.so.cache1.1";
  constexpr size_t kHeader = 48, kEntry = 24;
  if (bytes.size() < kHeader || bytes.compare(0, sizeof(kMagic) - 1, kMagic) != 0) return out;
  auto u32 = [&](size_t at) {
    uint32_t v;
    std::memcpy(&v, bytes.data() + at, sizeof(v));
    return v;
  };
  uint32_t nlibs = u32(20);
  if (nlibs > (bytes.size() - kHeader) / kEntry) return out;  // more entries than bytes
  auto str = [&](uint32_t off, std::string* s) {
    if (off >= bytes.size()) return false;
    size_t end = bytes.find('\0', off);
    if (end == std::string::npos) return false;
    s->assign(bytes, off, end - off);
    return true;
  };
  constexpr int32_t kX8664Libc6 = 0x0303;  // FLAG_ELF_LIBC6 | FLAG_X8664_LIB64
  for (uint32_t i = 0; i < nlibs; ++i) {
    size_t at = kHeader + static_cast<size_t>(i) * kEntry;
    int32_t flags = static_cast<int32_t>(u32(at));
    if ((flags & 0xffff) != kX8664Libc6) continue;
    std::string key, value;
    if (!str(u32(at + 4), &key) || !str(u32(at + 8), &value)) continue;
    out.emplace(std::move(key), std::move(value));  // the first of a name wins
  }
  return out;
}

std::map<std::string, std::string> read_ld_so_cache(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::string bytes;
  char buf[65536];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    bytes.append(buf, static_cast<size_t>(in.gcount()));
    if (bytes.size() > kMaxCacheBytes) return {};
  }
  return parse_ld_so_cache(bytes);
}

NeededFiles needed_files(const std::string& program, const std::string& ld_library_path,
                         size_t max_files, std::chrono::milliseconds budget) {
  NeededFiles out;
  auto deadline = std::chrono::steady_clock::now() + budget;
  std::set<std::string> seen_files, seen_names;
  std::map<std::string, std::string> cache;
  bool cache_read = false;
  DynInfo exe = read_dyn(program);
  if (!exe.ok) return out;
  out.files.push_back(program);
  seen_files.insert(real_path(program));
  if (!exe.interp.empty() && is_x86_64_elf(exe.interp) &&
      seen_files.insert(real_path(exe.interp)).second)
    out.files.push_back(exe.interp);
  const std::vector<std::string> env_dirs = split_path(ld_library_path, dir_of(program));
  const std::vector<std::string> exe_rpath =
      exe.runpath.empty() ? split_path(exe.rpath, dir_of(program)) : std::vector<std::string>{};

  std::deque<DynInfo> infos;  // stable addresses
  infos.push_back(std::move(exe));
  std::deque<std::pair<std::string, DynInfo*>> queue{{program, &infos.back()}};
  while (!queue.empty()) {
    auto [loader, info] = queue.front();
    queue.pop_front();
    for (const std::string& name : info->needed) {
      if (!seen_names.insert(name).second) continue;
      if (out.files.size() >= max_files || std::chrono::steady_clock::now() > deadline) {
        out.capped = true;
        return out;
      }
      std::string found;
      auto try_dirs = [&](const std::vector<std::string>& dirs) {
        for (const std::string& d : dirs) {
          std::string p = d + "/" + name;
          if (is_x86_64_elf(p)) {
            found = p;
            return true;
          }
        }
        return false;
      };
      if (name.find('/') != std::string::npos) {
        if (is_x86_64_elf(name)) found = name;
      } else {
        std::string origin = dir_of(loader);
        // DT_RPATH (of this object, then of the program) only when it has no DT_RUNPATH.
        if (info->runpath.empty() && try_dirs(split_path(info->rpath, origin))) {
        } else if (info->runpath.empty() && try_dirs(exe_rpath)) {
        } else if (try_dirs(env_dirs)) {
        } else if (try_dirs(split_path(info->runpath, origin))) {
        } else {
          if (!cache_read) {
            cache = read_ld_so_cache();
            cache_read = true;
          }
          if (auto it = cache.find(name); it != cache.end() && is_x86_64_elf(it->second))
            found = it->second;
          else {
            std::vector<std::string> defaults(std::begin(kDefaultDirs), std::end(kDefaultDirs));
            try_dirs(defaults);
          }
        }
      }
      if (found.empty()) {
        out.missing.push_back(name);
        continue;
      }
      if (!seen_files.insert(real_path(found)).second) continue;
      out.files.push_back(found);
      infos.push_back(read_dyn(found));
      if (infos.back().ok) queue.emplace_back(found, &infos.back());
    }
  }
  return out;
}

}  // namespace kscope::unwind
