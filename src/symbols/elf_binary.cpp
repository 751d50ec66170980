#include "symbols/elf_binary.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <lzma.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "symbols/debuginfod.h"
#include "symbols/open_files.h"
#include "util/fd.h"

namespace kscope {
namespace {

void ensure_libelf() {
  static const bool ready = elf_version(EV_CURRENT) != EV_NONE;
  (void)ready;
}

std::string libelf_error() {
  const char* msg = elf_errmsg(-1);
  return msg ? msg : "unknown libelf error";
}

struct ElfCloser {
  void operator()(Elf* elf) const { elf_end(elf); }
};
using ElfHandle = std::unique_ptr<Elf, ElfCloser>;

// Reads an ELF file from `fd`. libelf maps the whole file (ELF_C_READ_MMAP) and is then told to
// stop using the descriptor (ELF_C_FDREAD), so a cache of many binaries holds no open fds.
Result<ElfHandle> open_elf_fd(int fd, const std::string& path, struct stat* st_out) {
  ensure_libelf();
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_error(fmt::format("cannot stat {}", path));
  if (!S_ISREG(st.st_mode)) return make_error(fmt::format("{} is not a regular file", path));
  ElfHandle elf(elf_begin(fd, ELF_C_READ_MMAP, nullptr));
  if (!elf) return make_error(fmt::format("cannot read {}: {}", path, libelf_error()));
  if (elf_kind(elf.get()) != ELF_K_ELF) return make_error(fmt::format("{} is not ELF", path));
  if (elf_cntl(elf.get(), ELF_C_FDREAD) != 0) {
    return make_error(fmt::format("cannot read {}: {}", path, libelf_error()));
  }
  if (st_out) *st_out = st;
  return elf;
}

// Opens an ELF file through the run's open files (a file already open is not opened again) or,
// without them, by itself.
Result<ElfHandle> open_elf_file(const std::string& path, struct stat* st_out = nullptr,
                                OpenFiles* files = nullptr) {
  if (files) {
    KSCOPE_ASSIGN_OR_RETURN(std::shared_ptr<const OpenFile> file, files->open(path));
    return open_elf_fd(file->fd(), path, st_out);
  }
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error(fmt::format("cannot open {}", path));
  return open_elf_fd(fd.get(), path, st_out);
}

std::string to_hex(const unsigned char* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

std::string build_id_in_notes(Elf_Data* data) {
  if (!data || !data->d_buf) return {};
  const auto* base = static_cast<const unsigned char*>(data->d_buf);
  size_t offset = 0;
  GElf_Nhdr note;
  size_t name_offset = 0, desc_offset = 0;
  for (;;) {
    size_t next = gelf_getnote(data, offset, &note, &name_offset, &desc_offset);
    if (next == 0) break;
    if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == sizeof(ELF_NOTE_GNU) &&
        std::memcmp(base + name_offset, ELF_NOTE_GNU, sizeof(ELF_NOTE_GNU)) == 0 &&
        note.n_descsz > 0) {
      return to_hex(base + desc_offset, note.n_descsz);
    }
    offset = next;
  }
  return {};
}

std::string find_build_id(Elf* elf) {
  // Note sections first: a debug file made by `objcopy --only-keep-debug` keeps the note
  // section, but its PT_NOTE segment may point at bytes that are no longer there.
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE) continue;
    std::string id = build_id_in_notes(elf_getdata(scn, nullptr));
    if (!id.empty()) return id;
  }
  // Then the segments, which survive even when section headers were stripped.
  size_t phnum = 0;
  if (elf_getphdrnum(elf, &phnum) != 0) return {};
  for (size_t i = 0; i < phnum; ++i) {
    GElf_Phdr phdr;
    if (!gelf_getphdr(elf, static_cast<int>(i), &phdr) || phdr.p_type != PT_NOTE) continue;
    Elf_Data* data = elf_getdata_rawchunk(elf, static_cast<int64_t>(phdr.p_offset), phdr.p_filesz,
                                          phdr.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR);
    std::string id = build_id_in_notes(data);
    if (!id.empty()) return id;
  }
  return {};
}

struct DebugLink {
  std::string name;
  uint32_t crc = 0;
};

// .gnu_debuglink: a NUL-terminated file name, padding to 4 bytes, then a CRC-32 of the debug
// file in the ELF file's byte order.
std::optional<DebugLink> parse_debuglink(Elf_Data* data, bool big_endian) {
  if (!data || !data->d_buf) return std::nullopt;
  const auto* p = static_cast<const unsigned char*>(data->d_buf);
  size_t size = data->d_size;
  size_t len = strnlen(reinterpret_cast<const char*>(p), size);
  if (len == 0 || len == size) return std::nullopt;
  size_t crc_at = (len + 1 + 3) & ~size_t{3};
  if (crc_at + 4 > size) return std::nullopt;
  const unsigned char* c = p + crc_at;
  uint32_t crc = big_endian
                     ? (uint32_t{c[0]} << 24 | uint32_t{c[1]} << 16 | uint32_t{c[2]} << 8 | c[3])
                     : (uint32_t{c[3]} << 24 | uint32_t{c[2]} << 16 | uint32_t{c[1]} << 8 | c[0]);
  std::string name(reinterpret_cast<const char*>(p), len);
  // Only a file name is meaningful here; refuse anything that walks directories.
  if (name.find('/') != std::string::npos || name == "." || name == "..") return std::nullopt;
  return DebugLink{std::move(name), crc};
}

struct SectionBounds {
  uint64_t start = 0;
  uint64_t end = 0;
  bool executable = false;
};

struct SectionScan {
  Elf_Scn* symtab = nullptr;
  Elf_Scn* dynsym = nullptr;
  bool has_debug_info = false;  // .debug_info with contents (not SHT_NOBITS)
  std::optional<DebugLink> debuglink;
  Elf_Scn* debugdata = nullptr;                 // .gnu_debugdata (MiniDebugInfo)
  std::vector<unsigned char> altlink_build_id;  // from .gnu_debugaltlink (dwz)
  std::string altlink_name;
  std::vector<SectionBounds> bounds;  // by section index
};

SectionScan scan_sections(Elf* elf) {
  SectionScan scan;
  size_t shstrndx = 0, shnum = 0;
  if (elf_getshdrstrndx(elf, &shstrndx) != 0 || elf_getshdrnum(elf, &shnum) != 0) return scan;
  scan.bounds.resize(shnum);
  GElf_Ehdr ehdr;
  bool big_endian = gelf_getehdr(elf, &ehdr) && ehdr.e_ident[EI_DATA] == ELFDATA2MSB;
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr)) continue;
    size_t index = elf_ndxscn(scn);
    if (index < shnum && (shdr.sh_flags & SHF_ALLOC)) {
      scan.bounds[index] = {shdr.sh_addr, shdr.sh_addr + shdr.sh_size,
                            (shdr.sh_flags & SHF_EXECINSTR) != 0};
    }
    if (shdr.sh_type == SHT_SYMTAB) scan.symtab = scn;
    if (shdr.sh_type == SHT_DYNSYM) scan.dynsym = scn;
    const char* name = elf_strptr(elf, shstrndx, shdr.sh_name);
    if (!name) continue;
    std::string_view section(name);
    if ((section == ".debug_info" || section == ".zdebug_info") && shdr.sh_type != SHT_NOBITS &&
        shdr.sh_size > 0) {
      scan.has_debug_info = true;
    } else if (section == ".gnu_debugdata" && shdr.sh_type == SHT_PROGBITS) {
      scan.debugdata = scn;
    } else if (section == ".gnu_debuglink") {
      scan.debuglink = parse_debuglink(elf_getdata(scn, nullptr), big_endian);
    } else if (section == ".gnu_debugaltlink") {
      Elf_Data* data = elf_getdata(scn, nullptr);
      if (data && data->d_buf) {
        const auto* p = static_cast<const unsigned char*>(data->d_buf);
        size_t len = strnlen(reinterpret_cast<const char*>(p), data->d_size);
        if (len < data->d_size) {
          scan.altlink_name.assign(reinterpret_cast<const char*>(p), len);
          scan.altlink_build_id.assign(p + len + 1, p + data->d_size);
        }
      }
    }
  }
  return scan;
}

struct RawFunction {
  uint64_t start;
  uint64_t end;    // 0 when the symbol has no size
  uint64_t limit;  // end of its section: a size-less symbol never extends past it
  std::string_view name;
  uint32_t rank;  // lower is preferred among symbols at one address
};

// Function symbols of one symbol table. Names point into `elf`'s data.
void collect_functions(Elf* elf, Elf_Scn* scn, const std::vector<SectionBounds>& bounds,
                       std::vector<RawFunction>& out) {
  GElf_Shdr shdr;
  Elf_Data* data = elf_getdata(scn, nullptr);
  size_t sym_size = gelf_fsize(elf, ELF_T_SYM, 1, EV_CURRENT);
  if (!gelf_getshdr(scn, &shdr) || !data || sym_size == 0) return;
  size_t count = data->d_size / sym_size;
  out.reserve(out.size() + count);
  for (size_t i = 1; i < count; ++i) {  // entry 0 is the reserved null symbol
    GElf_Sym sym;
    if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
    int type = GELF_ST_TYPE(sym.st_info);
    if (sym.st_shndx == SHN_UNDEF || sym.st_shndx >= SHN_LORESERVE || sym.st_value == 0) {
      continue;  // imports, absolute and special symbols
    }
    const SectionBounds* section = sym.st_shndx < bounds.size() ? &bounds[sym.st_shndx] : nullptr;
    bool is_function = type == STT_FUNC || type == STT_GNU_IFUNC;
    // Hand-written assembly often has untyped labels for its entry points; they count when
    // they sit in code.
    bool code_label = type == STT_NOTYPE && section && section->executable;
    if (!is_function && !code_label) continue;
    const char* raw_name = elf_strptr(elf, shdr.sh_link, sym.st_name);
    if (!raw_name || raw_name[0] == '\0' || raw_name[0] == '$') continue;  // $x/$d: ARM mapping
    std::string_view name(raw_name);
    // The .symtab of versioned libraries spells some names "memcpy@GLIBC_2.2.5" or "f@@V1".
    if (size_t at = name.find('@'); at != std::string_view::npos && at > 0) {
      name = name.substr(0, at);
    }
    // Among aliases at one address prefer real functions, then the name with the fewest
    // leading underscores (getpid over __getpid; libc's public name is often the weak one),
    // then global over weak over local.
    size_t underscores = 0;
    while (underscores < name.size() && name[underscores] == '_') ++underscores;
    int binding = GELF_ST_BIND(sym.st_info);
    uint32_t binding_rank = binding == STB_GLOBAL ? 0 : binding == STB_WEAK ? 1 : 2;
    uint32_t rank = (is_function ? 0 : 100000) +
                    static_cast<uint32_t>(std::min<size_t>(underscores, 9)) * 1000 + binding_rank;
    uint64_t limit = section && section->end > sym.st_value ? section->end : UINT64_MAX;
    uint64_t end = sym.st_size ? sym.st_value + sym.st_size : 0;
    out.push_back(RawFunction{sym.st_value, end, limit, name, rank});
  }
}

// CRC-32 (zlib's, which is the one .gnu_debuglink uses) of a whole file.
std::optional<uint32_t> file_crc32(const std::string& path, OpenFiles* files) {
  std::shared_ptr<const OpenFile> shared;
  Fd own;
  int fd = -1;
  if (files) {
    auto file = files->open(path);
    if (!file) return std::nullopt;
    shared = std::move(*file);
    fd = shared->fd();
  } else {
    own.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!own) return std::nullopt;
    fd = own.get();
  }
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<unsigned char> buf(1 << 20);
  off_t at = 0;  // pread: a shared descriptor's offset is not ours to move
  for (;;) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), at);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    if (n == 0) break;
    crc = crc32(crc, buf.data(), static_cast<uInt>(n));
    at += n;
  }
  return static_cast<uint32_t>(crc);
}

// The largest MiniDebugInfo image accepted: real ones hold a symbol table and are a few MiB;
// the section is untrusted input and a small xz stream can expand without bound.
constexpr size_t kMaxMiniDebugInfoBytes = size_t{256} << 20;

// Decompresses the xz stream of a .gnu_debugdata section; empty when it is not valid xz or
// expands past kMaxMiniDebugInfoBytes.
std::vector<char> decompress_xz(const unsigned char* data, size_t size) {
  lzma_stream stream = LZMA_STREAM_INIT;
  // The stream's header chooses the dictionary size: cap the decoder's memory too.
  if (lzma_stream_decoder(&stream, uint64_t{128} << 20, 0) != LZMA_OK) return {};
  std::vector<char> out(
      std::min<size_t>(std::max<size_t>(size * 4, 1 << 16), kMaxMiniDebugInfoBytes));
  stream.next_in = data;
  stream.avail_in = size;
  lzma_ret ret = LZMA_OK;
  size_t produced = 0;
  while (true) {
    if (produced == out.size()) {
      if (out.size() >= kMaxMiniDebugInfoBytes) break;
      out.resize(std::min(out.size() * 2, kMaxMiniDebugInfoBytes));
    }
    stream.next_out = reinterpret_cast<uint8_t*>(out.data() + produced);
    stream.avail_out = out.size() - produced;
    ret = lzma_code(&stream, LZMA_FINISH);
    produced = out.size() - stream.avail_out;
    if (ret != LZMA_OK) break;
  }
  lzma_end(&stream);
  if (ret != LZMA_STREAM_END) return {};
  out.resize(produced);
  return out;
}

std::string dirname_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Opens `candidate` if it is the debug file of the binary: same build-id when both have one,
// else (for .gnu_debuglink) the CRC the link records.
ElfHandle open_matching_debug_file(const std::string& candidate, const std::string& build_id,
                                   std::optional<uint32_t> crc, const struct stat& binary,
                                   OpenFiles* files) {
  struct stat st {};
  if (::stat(candidate.c_str(), &st) != 0) return nullptr;
  if (st.st_dev == binary.st_dev && st.st_ino == binary.st_ino) return nullptr;  // itself
  auto elf = open_elf_file(candidate, nullptr, files);
  if (!elf) return nullptr;
  std::string id = find_build_id(elf->get());
  if (!build_id.empty() && !id.empty()) {
    return id == build_id ? std::move(*elf) : nullptr;
  }
  if (crc && file_crc32(candidate, files) == crc) return std::move(*elf);
  return nullptr;
}

struct FoundDebugFile {
  ElfHandle elf;
  std::string path;
  ElfBinary::DebugOrigin origin = ElfBinary::DebugOrigin::kNone;
};

FoundDebugFile find_debug_file(const std::string& binary_path, const struct stat& binary,
                               const std::string& build_id, const std::optional<DebugLink>& link,
                               const DebugSearchPaths& search) {
  // By build-id: <root>/.build-id/ab/cdef....debug
  if (build_id.size() > 2) {
    for (const std::string& root : search.debug_dirs) {
      std::string candidate =
          fmt::format("{}/.build-id/{}/{}.debug", root, build_id.substr(0, 2), build_id.substr(2));
      if (ElfHandle elf =
              open_matching_debug_file(candidate, build_id, std::nullopt, binary, search.files)) {
        return {std::move(elf), candidate, ElfBinary::DebugOrigin::kBuildIdDir};
      }
    }
  }
  // By .gnu_debuglink, in GDB's order: next to the binary, in .debug/, under each root.
  if (search.use_debuglink && link) {
    std::string dir = dirname_of(binary_path);
    std::vector<std::string> candidates = {fmt::format("{}/{}", dir, link->name),
                                           fmt::format("{}/.debug/{}", dir, link->name)};
    for (const std::string& root : search.debug_dirs) {
      candidates.push_back(fmt::format("{}{}/{}", root, dir == "/" ? "" : dir, link->name));
    }
    for (const std::string& candidate : candidates) {
      if (ElfHandle elf =
              open_matching_debug_file(candidate, build_id, link->crc, binary, search.files)) {
        return {std::move(elf), candidate, ElfBinary::DebugOrigin::kDebugLink};
      }
    }
  }
  return {};
}

// From debuginfod, into its cache. What comes back must carry the build-id asked for: a server
// may be wrong or hostile, and a proxy may answer with an HTML page.
FoundDebugFile fetch_debug_file(DebuginfodClient& debuginfod, const std::string& binary_path,
                                const struct stat& binary, const std::string& build_id,
                                OpenFiles* files) {
  auto path = debuginfod.find_debuginfo(build_id, binary_path);
  if (!path) return {};
  struct stat st {};
  if (::stat(path->c_str(), &st) != 0 ||
      (st.st_dev == binary.st_dev && st.st_ino == binary.st_ino)) {
    return {};
  }
  auto elf = open_elf_file(*path, nullptr, files);
  if (!elf) {
    debuginfod.reject(*path, elf.error().describe());
    return {};
  }
  std::string id = find_build_id(elf->get());
  if (id != build_id) {
    debuginfod.reject(*path, id.empty() ? "no build-id" : fmt::format("build-id {}", id));
    return {};
  }
  return {std::move(*elf), *path, ElfBinary::DebugOrigin::kDebuginfod};
}

// Name of a DWARF function DIE, following DW_AT_abstract_origin/specification: the demangled
// linkage name when there is one (it carries namespaces and parameter types, like the symbol
// table name does), else DW_AT_name.
std::string die_function_name(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  for (int name_attr : {DW_AT_linkage_name, DW_AT_MIPS_linkage_name}) {
    if (dwarf_attr_integrate(die, name_attr, &attr)) {
      if (const char* s = dwarf_formstring(&attr)) return demangle(s);
    }
  }
  if (dwarf_attr_integrate(die, DW_AT_name, &attr)) {
    if (const char* s = dwarf_formstring(&attr)) return s;
  }
  return "??";
}

}  // namespace

struct ElfBinary::CuRange {
  uint64_t low;
  uint64_t high;
  Dwarf_Die cu;
};

struct ElfBinary::DwarfState {
  Dwarf* dwarf = nullptr;
  Dwarf* alt = nullptr;
  Elf* alt_elf = nullptr;
  std::vector<CuRange> ranges;  // sorted by low
  ~DwarfState() {
    if (dwarf) dwarf_end(dwarf);
    if (alt) dwarf_end(alt);
    if (alt_elf) elf_end(alt_elf);
  }
};

Result<std::string> read_build_id(const std::string& path) {
  KSCOPE_ASSIGN_OR_RETURN(ElfHandle elf, open_elf_file(path));
  std::string id = find_build_id(elf.get());
  if (id.empty()) return make_error(fmt::format("{} has no build-id note", path));
  return id;
}

ElfBinary::~ElfBinary() {
  dwarf_.reset();  // before the Elf it reads from
  if (debug_elf_) elf_end(debug_elf_);
  if (main_elf_) elf_end(main_elf_);
}

Result<std::unique_ptr<ElfBinary>> ElfBinary::open(const std::string& path,
                                                   const DebugSearchPaths& search) {
  KSCOPE_ASSIGN_OR_RETURN(std::unique_ptr<ElfBinary> binary, begin_open(path, search));
  KSCOPE_TRY(binary->finish_open());
  return binary;
}

Result<std::unique_ptr<ElfBinary>> ElfBinary::begin_open(const std::string& path,
                                                         const DebugSearchPaths& search,
                                                         const OpenFile* file) {
  auto st = std::make_unique<struct stat>();
  KSCOPE_ASSIGN_OR_RETURN(ElfHandle elf, file ? open_elf_fd(file->fd(), path, st.get())
                                              : open_elf_file(path, st.get(), search.files));
  std::unique_ptr<ElfBinary> binary(new ElfBinary());
  binary->path_ = path;
  binary->search_ = search;
  binary->main_elf_ = elf.release();
  binary->build_id_ = find_build_id(binary->main_elf_);
  binary->file_owner_ = st->st_uid;
  binary->file_size_ = static_cast<uint64_t>(st->st_size);
  binary->file_ = std::move(st);
  return binary;
}

Status ElfBinary::finish_open() {
  if (!file_) return make_error(fmt::format("{}: finish_open() without begin_open()", path_));
  Status st = load(file_.get());
  file_.reset();
  return st;
}

Result<std::unique_ptr<ElfBinary>> ElfBinary::from_image(std::string name,
                                                         std::vector<char> image) {
  ensure_libelf();
  std::unique_ptr<ElfBinary> binary(new ElfBinary());
  binary->path_ = std::move(name);
  binary->image_ = std::move(image);
  binary->main_elf_ = elf_memory(binary->image_.data(), binary->image_.size());
  if (!binary->main_elf_ || elf_kind(binary->main_elf_) != ELF_K_ELF) {
    return make_error(fmt::format("{} is not an ELF image", binary->path_));
  }
  KSCOPE_TRY(binary->load(nullptr));
  return binary;
}

Status ElfBinary::load(const struct stat* file) {
  Elf* elf = main_elf_;
  GElf_Ehdr ehdr;
  if (!gelf_getehdr(elf, &ehdr)) {
    return make_error(fmt::format("cannot read the ELF header of {}: {}", path_, libelf_error()));
  }
  size_t phnum = 0;
  if (elf_getphdrnum(elf, &phnum) == 0) {
    for (size_t i = 0; i < phnum; ++i) {
      GElf_Phdr phdr;
      if (!gelf_getphdr(elf, static_cast<int>(i), &phdr) || phdr.p_type != PT_LOAD) continue;
      segments_.push_back(Segment{phdr.p_offset, phdr.p_filesz, phdr.p_vaddr, phdr.p_memsz,
                                  (phdr.p_flags & PF_X) != 0});
    }
  }
  build_id_ = find_build_id(elf);
  SectionScan main_scan = scan_sections(elf);

  // A separate debug file is worth finding when this file lacks a full symbol table or DWARF:
  // first on disk (build-id directory, then .gnu_debuglink), then from debuginfod.
  SectionScan debug_scan;
  if (file && (!main_scan.symtab || !main_scan.has_debug_info)) {
    FoundDebugFile found = find_debug_file(path_, *file, build_id_, main_scan.debuglink, search_);
    if (!found.elf && !main_scan.has_debug_info && search_.debuginfod && !build_id_.empty()) {
      found = fetch_debug_file(*search_.debuginfod, path_, *file, build_id_, search_.files);
    }
    if (found.elf) {
      debug_elf_ = found.elf.release();
      debug_path_ = std::move(found.path);
      debug_origin_ = found.origin;
      debug_scan = scan_sections(debug_elf_);
    }
  }

  // .symtab is the full table; MiniDebugInfo adds the local functions to .dynsym; .dynsym alone
  // has only exported symbols, the last resort.
  std::vector<RawFunction> raw;
  if (main_scan.symtab) {
    collect_functions(elf, main_scan.symtab, main_scan.bounds, raw);
    if (!raw.empty()) symbol_source_ = SymbolSource::kSymtab;
  }
  if (raw.empty() && debug_scan.symtab) {
    collect_functions(debug_elf_, debug_scan.symtab, debug_scan.bounds, raw);
    if (!raw.empty()) symbol_source_ = SymbolSource::kDebugFileSymtab;
  }
  // The decompressed MiniDebugInfo image; names in `raw` point into it until they are copied.
  std::vector<char> mini_image;
  ElfHandle mini_elf;
  if (raw.empty() && main_scan.debugdata && search_.use_minidebuginfo) {
    Elf_Data* data = elf_rawdata(main_scan.debugdata, nullptr);
    if (data && data->d_buf && data->d_size > 0) {
      mini_image = decompress_xz(static_cast<const unsigned char*>(data->d_buf), data->d_size);
    }
    if (!mini_image.empty()) mini_elf.reset(elf_memory(mini_image.data(), mini_image.size()));
    if (mini_elf && elf_kind(mini_elf.get()) == ELF_K_ELF) {
      SectionScan mini_scan = scan_sections(mini_elf.get());
      if (mini_scan.symtab)
        collect_functions(mini_elf.get(), mini_scan.symtab, mini_scan.bounds, raw);
      if (!raw.empty()) {
        symbol_source_ = SymbolSource::kMiniDebugInfo;
        if (main_scan.dynsym) collect_functions(elf, main_scan.dynsym, main_scan.bounds, raw);
      }
    }
  }
  if (raw.empty() && main_scan.dynsym) {
    collect_functions(elf, main_scan.dynsym, main_scan.bounds, raw);
    if (!raw.empty()) symbol_source_ = SymbolSource::kDynsym;
  }

  std::sort(raw.begin(), raw.end(), [](const RawFunction& a, const RawFunction& b) {
    if (a.start != b.start) return a.start < b.start;
    if (a.rank != b.rank) return a.rank < b.rank;
    return a.name < b.name;
  });
  functions_.reserve(raw.size());
  std::vector<uint64_t> limits;
  limits.reserve(raw.size());
  for (const RawFunction& f : raw) {
    if (!functions_.empty() && functions_.back().start == f.start) {
      // An alias of the preferred name: only its size may add something.
      functions_.back().end = std::max(functions_.back().end, f.end);
      continue;
    }
    if (names_.size() + f.name.size() > UINT32_MAX) break;
    functions_.push_back(FunctionEntry{f.start, f.end, static_cast<uint32_t>(names_.size()),
                                       static_cast<uint32_t>(f.name.size())});
    limits.push_back(f.limit);
    names_.append(f.name);
  }
  // Size-less symbols (assembly labels) extend to the next symbol, within their section.
  for (size_t i = 0; i < functions_.size(); ++i) {
    FunctionEntry& f = functions_[i];
    if (f.end != 0) continue;
    uint64_t next = i + 1 < functions_.size() ? functions_[i + 1].start : UINT64_MAX;
    f.end = std::min(next, limits[i]);
    if (f.end == UINT64_MAX) f.end = f.start + 1;  // nothing bounds it: only its first byte
  }

  // Keep only the ELF that holds the DWARF (mapped, not read, so this costs address space).
  if (main_scan.has_debug_info) {
    dwarf_elf_ = main_elf_;
  } else if (debug_elf_ && debug_scan.has_debug_info) {
    dwarf_elf_ = debug_elf_;
  }
  if (dwarf_elf_ != main_elf_) {
    elf_end(main_elf_);
    main_elf_ = nullptr;
  }
  if (dwarf_elf_ != debug_elf_ && debug_elf_) {
    elf_end(debug_elf_);
    debug_elf_ = nullptr;
  }
  return {};
}

std::string ElfBinary::describe_sources() const {
  std::string debug;
  switch (debug_origin_) {
    case DebugOrigin::kNone:
      break;
    case DebugOrigin::kBuildIdDir:
      debug = fmt::format("debug file by build-id {}", debug_path_);
      break;
    case DebugOrigin::kDebugLink:
      debug = fmt::format("debug file by .gnu_debuglink {}", debug_path_);
      break;
    case DebugOrigin::kDebuginfod:
      debug = fmt::format("debug file from debuginfod {}", debug_path_);
      break;
  }
  std::string symbols;
  switch (symbol_source_) {
    case SymbolSource::kNone:
      symbols = "no symbols";
      break;
    case SymbolSource::kSymtab:
      symbols = "own .symtab";
      break;
    case SymbolSource::kDebugFileSymtab:
      symbols = "symbols from the " + debug;
      break;
    case SymbolSource::kMiniDebugInfo:
      symbols = ".gnu_debugdata (MiniDebugInfo) + .dynsym";
      break;
    case SymbolSource::kDynsym:
      symbols = ".dynsym only (exported functions)";
      break;
  }
  std::string lines;
  if (!dwarf_elf_) {
    lines = "no line info";
  } else if (dwarf_elf_ == main_elf_) {
    lines = "lines from own DWARF";
  } else if (symbol_source_ != SymbolSource::kDebugFileSymtab) {
    lines = "lines from the " + debug;
  } else {
    lines = "lines from it too";
  }
  return symbols + "; " + lines;
}

std::optional<uint64_t> ElfBinary::file_offset_to_vaddr(uint64_t file_offset,
                                                        bool executable) const {
  std::optional<uint64_t> found;
  for (const Segment& s : segments_) {
    if (file_offset < s.offset || file_offset - s.offset >= s.filesz) continue;
    uint64_t vaddr = s.vaddr + (file_offset - s.offset);
    if (s.executable == executable) return vaddr;
    if (!found) found = vaddr;
  }
  return found;
}

std::optional<size_t> ElfBinary::find_index(uint64_t vaddr) const {
  // 1M lookups of one hot address in a row are common (a loop faulting, a profile of one
  // function), so the previous hit is checked before searching.
  if (last_hit_ < functions_.size()) {
    const FunctionEntry& f = functions_[last_hit_];
    if (vaddr >= f.start && vaddr < f.end) return last_hit_;
  }
  auto it = std::upper_bound(functions_.begin(), functions_.end(), vaddr,
                             [](uint64_t a, const FunctionEntry& f) { return a < f.start; });
  // The nearest start below usually covers vaddr. When it does not, an earlier, larger symbol
  // might (a label symbol inside an assembly function): look back a few entries.
  for (int steps = 0; it != functions_.begin() && steps < 8; ++steps) {
    --it;
    if (vaddr < it->end) {
      last_hit_ = static_cast<size_t>(it - functions_.begin());
      return last_hit_;
    }
  }
  return std::nullopt;
}

std::optional<ElfBinary::Function> ElfBinary::find_function(uint64_t vaddr) {
  std::optional<size_t> index = find_index(vaddr);
  if (!index) return std::nullopt;
  const FunctionEntry& f = functions_[*index];
  std::string_view name = std::string_view(names_).substr(f.name_offset, f.name_length);
  if (name.starts_with("_Z")) {
    // Demangled once per symbol, on first use: demangling a whole table up front costs
    // ~1 us per symbol, too much for large C++ binaries.
    auto [it, inserted] = demangled_.try_emplace(static_cast<uint32_t>(*index));
    if (inserted) it->second = demangle(std::string(name));
    name = it->second;
  }
  return Function{name, f.start};
}

bool ElfBinary::ensure_dwarf() {
  if (dwarf_tried_) return dwarf_ != nullptr;
  dwarf_tried_ = true;
  if (!dwarf_elf_) return false;
  Dwarf* dw = dwarf_begin_elf(dwarf_elf_, DWARF_C_READ, nullptr);
  if (!dw) return false;
  auto state = std::make_unique<DwarfState>();
  state->dwarf = dw;

  // dwz-compressed DWARF refers to a shared "alt" file. libdw looks in the default places on
  // its own; the configured roots are tried here first, by build-id, so a custom debug
  // directory works too.
  SectionScan scan = scan_sections(dwarf_elf_);
  if (!scan.altlink_build_id.empty()) {
    std::string alt_id = to_hex(scan.altlink_build_id.data(), scan.altlink_build_id.size());
    for (const std::string& root : search_.debug_dirs) {
      std::string candidate =
          fmt::format("{}/.build-id/{}/{}.debug", root, alt_id.substr(0, 2), alt_id.substr(2));
      auto alt_elf = open_elf_file(candidate, nullptr, search_.files);
      if (!alt_elf || find_build_id(alt_elf->get()) != alt_id) continue;
      Dwarf* alt = dwarf_begin_elf(alt_elf->get(), DWARF_C_READ, nullptr);
      if (!alt) continue;
      state->alt_elf = alt_elf->release();
      state->alt = alt;
      dwarf_setalt(dw, alt);
      break;
    }
  }

  // Our own address -> CU index from each CU's ranges: dwarf_addrdie() relies on
  // .debug_aranges, which some compilers no longer emit.
  Dwarf_CU* cu = nullptr;
  Dwarf_Half version = 0;
  uint8_t unit_type = 0;
  Dwarf_Die cudie, subdie;
  while (dwarf_get_units(dw, cu, &cu, &version, &unit_type, &cudie, &subdie) == 0) {
    if (unit_type != DW_UT_compile && unit_type != DW_UT_skeleton) continue;
    Dwarf_Addr base = 0, low = 0, high = 0;
    ptrdiff_t offset = 0;
    while ((offset = dwarf_ranges(&cudie, offset, &base, &low, &high)) > 0) {
      if (low < high) state->ranges.push_back(CuRange{low, high, cudie});
    }
  }
  std::sort(state->ranges.begin(), state->ranges.end(),
            [](const CuRange& a, const CuRange& b) { return a.low < b.low; });
  dwarf_ = std::move(state);
  return true;
}

void ElfBinary::describe_source(uint64_t vaddr, bool inline_frames, Symbol& out) {
  if (!ensure_dwarf()) return;
  const std::vector<CuRange>& ranges = dwarf_->ranges;
  auto it = std::upper_bound(ranges.begin(), ranges.end(), vaddr,
                             [](uint64_t a, const CuRange& r) { return a < r.low; });
  Dwarf_Die* cudie = nullptr;
  for (int steps = 0; it != ranges.begin() && steps < 4; ++steps) {
    --it;
    if (vaddr < it->high) {
      cudie = const_cast<Dwarf_Die*>(&it->cu);
      break;
    }
  }
  if (!cudie) return;

  if (Dwarf_Line* line = dwarf_getsrc_die(cudie, vaddr)) {
    const char* file = dwarf_linesrc(line, nullptr, nullptr);
    int lineno = 0;
    // Line 0 marks compiler-generated code with no source position.
    if (file && dwarf_lineno(line, &lineno) == 0 && lineno > 0) {
      out.file = file;
      out.line = lineno;
    }
  }
  if (!inline_frames) return;

  // dwarf_getscopes() lists the scopes at vaddr innermost first, but once it reaches an inlined
  // instance it continues with the scopes around that function's abstract definition (what a
  // debugger needs to look up variables), not with its callers. So it is used only to find the
  // innermost inlined instance; dwarf_getscopes_die() then walks the concrete tree outwards from
  // there: inlined callers, then the real subprogram.
  Dwarf_Die* scopes = nullptr;
  int count = dwarf_getscopes(cudie, vaddr, &scopes);
  int innermost = -1;
  for (int i = 0; i < count; ++i) {
    int tag = dwarf_tag(&scopes[i]);
    if (tag == DW_TAG_subprogram) break;
    if (tag == DW_TAG_inlined_subroutine) {
      innermost = i;
      break;
    }
  }
  Dwarf_Die* chain = nullptr;
  int chain_count = innermost >= 0 ? dwarf_getscopes_die(&scopes[innermost], &chain) : 0;
  Dwarf_Files* files = nullptr;
  size_t file_count = 0;
  bool have_files = chain_count > 0 && dwarf_getsrcfiles(cudie, &files, &file_count) == 0;
  for (int i = 0; i < chain_count; ++i) {
    int tag = dwarf_tag(&chain[i]);
    if (tag == DW_TAG_subprogram) break;
    if (tag != DW_TAG_inlined_subroutine) continue;  // lexical blocks between them
    InlineFrame frame;
    frame.function = die_function_name(&chain[i]);
    Dwarf_Attribute attr;
    Dwarf_Word value = 0;
    if (have_files && dwarf_attr(&chain[i], DW_AT_call_file, &attr) &&
        dwarf_formudata(&attr, &value) == 0 && value < file_count) {
      if (const char* name = dwarf_filesrc(files, value, nullptr, nullptr)) frame.call_file = name;
    }
    if (dwarf_attr(&chain[i], DW_AT_call_line, &attr) && dwarf_formudata(&attr, &value) == 0 &&
        value > 0 && value <= INT32_MAX) {
      frame.call_line = static_cast<int>(value);
    }
    out.inlined.push_back(std::move(frame));
  }
  std::free(chain);
  std::free(scopes);
}

}  // namespace kscope
