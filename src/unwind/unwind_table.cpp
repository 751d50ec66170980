#include "unwind/unwind_table.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "util/fd.h"

namespace kscope::unwind {

namespace {

struct ElfCloser {
  void operator()(Elf* elf) const { elf_end(elf); }
};
using ElfHandle = std::unique_ptr<Elf, ElfCloser>;

// .debug_frame larger than this is not read (cc1plus's is ~10 MiB when it has one).
constexpr uint64_t kMaxDebugFrameBytes = 256ull << 20;

std::string elf_error() {
  const char* msg = elf_errmsg(-1);
  return msg ? msg : "unknown libelf error";
}

std::string hex(const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 0xf]);
  }
  return out;
}

std::string build_id_of(Elf* elf) {
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data) continue;
    size_t off = 0, name_off = 0, desc_off = 0;
    GElf_Nhdr nhdr;
    while ((off = gelf_getnote(data, off, &nhdr, &name_off, &desc_off)) > 0) {
      if (nhdr.n_type == NT_GNU_BUILD_ID && nhdr.n_namesz == 4 &&
          std::memcmp(static_cast<const char*>(data->d_buf) + name_off, "GNU", 4) == 0 &&
          nhdr.n_descsz > 0 && nhdr.n_descsz <= 64)
        return hex(static_cast<const uint8_t*>(data->d_buf) + desc_off, nhdr.n_descsz);
    }
  }
  return {};
}

Result<ElfUnwindSource> read_source(Elf* elf, const std::string& what) {
  if (elf_kind(elf) != ELF_K_ELF) return make_error(what + " is not ELF");
  GElf_Ehdr ehdr;
  if (!gelf_getehdr(elf, &ehdr)) return make_error(what + ": " + elf_error());
  if (ehdr.e_ident[EI_CLASS] != ELFCLASS64 || ehdr.e_machine != EM_X86_64)
    return make_error(what + " is not an x86-64 ELF file");
  ElfUnwindSource src;
  size_t phnum = 0;
  if (elf_getphdrnum(elf, &phnum) != 0) return make_error(what + ": " + elf_error());
  for (size_t i = 0; i < phnum && i < 4096; ++i) {
    GElf_Phdr ph;
    if (!gelf_getphdr(elf, static_cast<int>(i), &ph) || ph.p_type != PT_LOAD) continue;
    src.loads.push_back({ph.p_offset, ph.p_vaddr, ph.p_filesz, (ph.p_flags & PF_X) != 0});
  }
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf, &shstrndx) == 0) {
    Elf_Scn* scn = nullptr;
    while ((scn = elf_nextscn(elf, scn)) != nullptr) {
      GElf_Shdr shdr;
      if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_PROGBITS) continue;
      const char* name = elf_strptr(elf, shstrndx, shdr.sh_name);
      if (!name) continue;
      bool eh = std::strcmp(name, ".eh_frame") == 0 && src.eh_frame.empty();
      bool debug = std::strcmp(name, ".debug_frame") == 0 && src.debug_frame.empty();
      bool link = std::strcmp(name, ".gnu_debuglink") == 0 && src.debuglink.empty();
      if (!eh && !debug && !link) continue;
      // Debug sections may be compressed (SHF_COMPRESSED, zlib or zstd): libelf inflates them
      // in memory, bounded by the header's size, which is checked first.
      if (debug && (shdr.sh_flags & SHF_COMPRESSED)) {
        Elf_Data* raw = elf_rawdata(scn, nullptr);
        GElf_Chdr chdr;
        if (!raw || !gelf_getchdr(scn, &chdr) || chdr.ch_size > kMaxDebugFrameBytes ||
            elf_compress(scn, 0, 0) < 0)
          continue;  // not usable: as if absent
      }
      // elf_rawdata/elf_getdata check that the section lies inside the file.
      Elf_Data* data = debug ? elf_getdata(scn, nullptr) : elf_rawdata(scn, nullptr);
      if (!data || !data->d_buf) {
        if (eh) return make_error(what + ": unreadable .eh_frame: " + elf_error());
        continue;
      }
      const auto* p = static_cast<const uint8_t*>(data->d_buf);
      if (eh) {
        src.eh_frame.assign(p, p + data->d_size);
        src.eh_frame_vaddr = shdr.sh_addr;
      } else if (debug) {
        if (data->d_size <= kMaxDebugFrameBytes) src.debug_frame.assign(p, p + data->d_size);
      } else {
        // A NUL-terminated file name, padding to 4 bytes, then the CRC-32 of the debug file.
        size_t n = strnlen(reinterpret_cast<const char*>(p), data->d_size);
        size_t crc_at = (n + 4) & ~size_t{3};
        if (n > 0 && n < 256 && crc_at + 4 <= data->d_size) {
          std::string file(reinterpret_cast<const char*>(p), n);
          if (file.find('/') == std::string::npos && file != "." && file != "..") {
            src.debuglink = file;
            std::memcpy(&src.debuglink_crc, p + crc_at, 4);
          }
        }
      }
    }
  }
  src.build_id = build_id_of(elf);
  return src;
}

}  // namespace

Result<ElfUnwindSource> read_unwind_source_fd(int fd, const std::string& what) {
  if (elf_version(EV_CURRENT) == EV_NONE) return make_error("libelf is unusable");
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_error("cannot stat " + what);
  if (!S_ISREG(st.st_mode)) return make_error(what + " is not a regular file");
  ElfHandle elf(elf_begin(fd, ELF_C_READ_MMAP, nullptr));
  if (!elf) return make_error("cannot read " + what + ": " + elf_error());
  return read_source(elf.get(), what);
}

Result<ElfUnwindSource> read_unwind_source(const std::string& path, OpenFiles* files) {
  if (files) {
    KSCOPE_ASSIGN_OR_RETURN(std::shared_ptr<const OpenFile> file, files->open(path));
    return read_unwind_source_fd(file->fd(), path);
  }
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("cannot open " + path);
  return read_unwind_source_fd(fd.get(), path);
}

Result<ElfUnwindSource> read_unwind_source_image(std::span<const uint8_t> image) {
  if (elf_version(EV_CURRENT) == EV_NONE) return make_error("libelf is unusable");
  // elf_memory wants a mutable buffer; it does not write with ELF_C_READ semantics.
  std::vector<char> copy(image.begin(), image.end());
  ElfHandle elf(elf_memory(copy.data(), copy.size()));
  if (!elf) return make_error("cannot read the image: " + elf_error());
  return read_source(elf.get(), "the image");
}

Result<FileTable> build_file_table(const ElfUnwindSource& source, std::string key,
                                   const ElfUnwindSource* debug_file) {
  std::vector<FrameSection> sections;
  if (!source.eh_frame.empty())
    sections.push_back({source.eh_frame, source.eh_frame_vaddr, FrameSection::Kind::kEhFrame});
  if (!source.debug_frame.empty())
    sections.push_back({source.debug_frame, 0, FrameSection::Kind::kDebugFrame});
  if (debug_file && !debug_file->debug_frame.empty())
    sections.push_back({debug_file->debug_frame, 0, FrameSection::Kind::kDebugFrame});
  if (sections.empty()) return make_error("no .eh_frame or .debug_frame section");
  KSCOPE_ASSIGN_OR_RETURN(EhFrameTable decoded, decode_frames(sections));
  FileTable table;
  table.key = std::move(key);
  table.loads = source.loads;
  table.stats = decoded.stats;
  table.rows.reserve(decoded.rows.size());
  for (const UnwindRow& row : decoded.rows) {
    bool did_not_fit = false;
    table.rows.push_back(pack_row(row, &did_not_fit));
    if (did_not_fit) ++table.rows_did_not_fit;
  }
  if (table.rows.empty()) return make_error("no unwind rows in .eh_frame or .debug_frame");
  return table;
}

namespace {

uint32_t file_crc32(const std::string& path, OpenFiles* files) {
  std::shared_ptr<const OpenFile> shared;
  Fd own;
  int fd = -1;
  if (files) {
    auto file = files->open(path);
    if (!file) return 0;
    shared = std::move(*file);
    fd = shared->fd();
  } else {
    own.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    fd = own.get();
  }
  if (fd < 0) return 0;
  uLong crc = crc32(0, nullptr, 0);
  std::vector<unsigned char> buf(1 << 16);
  off_t at = 0;  // pread: a shared descriptor's offset is not ours to move
  while (true) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    crc = crc32(crc, buf.data(), static_cast<uInt>(n));
    at += n;
  }
  return static_cast<uint32_t>(crc);
}

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool is_debug_file_of(const std::string& candidate, const ElfUnwindSource& binary, bool by_link,
                      OpenFiles* files) {
  struct stat st {};
  if (::stat(candidate.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  auto debug = read_unwind_source(candidate, files);
  if (!debug || debug->debug_frame.empty()) return false;
  if (!binary.build_id.empty() && !debug->build_id.empty())
    return binary.build_id == debug->build_id;
  return by_link && file_crc32(candidate, files) == binary.debuglink_crc;
}

}  // namespace

std::string find_debug_file(const ElfUnwindSource& binary, const std::string& binary_path,
                            const std::vector<std::string>& debug_dirs, OpenFiles* files) {
  if (binary.build_id.size() > 2) {
    for (const std::string& root : debug_dirs) {
      std::string candidate = fmt::format("{}/.build-id/{}/{}.debug", root,
                                          binary.build_id.substr(0, 2), binary.build_id.substr(2));
      if (is_debug_file_of(candidate, binary, /*by_link=*/false, files)) return candidate;
    }
  }
  if (!binary.debuglink.empty()) {
    std::string dir = dir_of(binary_path);
    std::vector<std::string> candidates = {fmt::format("{}/{}", dir, binary.debuglink),
                                           fmt::format("{}/.debug/{}", dir, binary.debuglink)};
    for (const std::string& root : debug_dirs)
      candidates.push_back(fmt::format("{}{}/{}", root, dir == "/" ? "" : dir, binary.debuglink));
    for (const std::string& candidate : candidates)
      if (candidate != binary_path && is_debug_file_of(candidate, binary, /*by_link=*/true, files))
        return candidate;
  }
  return {};
}

RowIndex build_row_index(std::span<const kscope_unwind_row> rows) {
  RowIndex index;
  if (rows.size() < 2 * RowIndex::kRowsPerBucket) return index;
  for (size_t i = 1; i < rows.size(); ++i)
    if (rows[i].pc <= rows[i - 1].pc) return index;  // not sorted: no index, the full search
  uint64_t base = rows.front().pc;
  uint64_t last = uint64_t{rows.back().pc} - base;  // offset of the last row from the base
  uint64_t max_buckets = rows.size() / RowIndex::kRowsPerBucket;
  uint32_t shift = 4;
  while (shift < 32 && (last >> shift) + 1 > max_buckets) ++shift;
  index.base = static_cast<uint32_t>(base);
  index.shift = shift;
  index.buckets.resize((last >> shift) + 1);
  size_t r = 0;
  for (size_t k = 0; k < index.buckets.size(); ++k) {
    uint64_t start = base + (uint64_t{k} << shift);
    while (r < rows.size() && rows[r].pc < start) ++r;
    index.buckets[k].lo = static_cast<uint32_t>(r);
    if (k > 0) index.buckets[k - 1].hi = static_cast<uint32_t>(r);
  }
  index.buckets.back().hi = static_cast<uint32_t>(rows.size());
  return index;
}

Result<uint64_t> load_bias(const std::vector<LoadSegment>& loads, uint64_t map_start,
                           uint64_t map_offset) {
  for (const LoadSegment& s : loads) {
    // A mapping starts on a page boundary: the segment may begin within its first page.
    uint64_t seg_page = s.offset & ~uint64_t{0xfff};
    if (map_offset < seg_page || map_offset >= s.offset + std::max<uint64_t>(s.filesz, 1)) continue;
    uint64_t vaddr_at_start = s.vaddr - (s.offset - map_offset);
    return map_start - vaddr_at_start;
  }
  return make_error("no PT_LOAD segment holds the mapping's file offset");
}

}  // namespace kscope::unwind
