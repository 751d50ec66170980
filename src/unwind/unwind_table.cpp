#include "unwind/unwind_table.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "util/fd.h"

namespace kscope::unwind {

namespace {

struct ElfCloser {
  void operator()(Elf* elf) const { elf_end(elf); }
};
using ElfHandle = std::unique_ptr<Elf, ElfCloser>;

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
      if (!gelf_getshdr(scn, &shdr)) continue;
      const char* name = elf_strptr(elf, shstrndx, shdr.sh_name);
      if (!name || std::strcmp(name, ".eh_frame") != 0 || shdr.sh_type != SHT_PROGBITS) continue;
      // elf_rawdata checks that the section lies inside the file.
      Elf_Data* data = elf_rawdata(scn, nullptr);
      if (!data || !data->d_buf) return make_error(what + ": unreadable .eh_frame: " + elf_error());
      const auto* p = static_cast<const uint8_t*>(data->d_buf);
      src.eh_frame.assign(p, p + data->d_size);
      src.eh_frame_vaddr = shdr.sh_addr;
      break;
    }
  }
  src.build_id = build_id_of(elf);
  return src;
}

}  // namespace

Result<ElfUnwindSource> read_unwind_source(const std::string& path) {
  if (elf_version(EV_CURRENT) == EV_NONE) return make_error("libelf is unusable");
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("cannot open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat " + path);
  if (!S_ISREG(st.st_mode)) return make_error(path + " is not a regular file");
  ElfHandle elf(elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr));
  if (!elf) return make_error("cannot read " + path + ": " + elf_error());
  return read_source(elf.get(), path);
}

Result<ElfUnwindSource> read_unwind_source_image(std::span<const uint8_t> image) {
  if (elf_version(EV_CURRENT) == EV_NONE) return make_error("libelf is unusable");
  // elf_memory wants a mutable buffer; it does not write with ELF_C_READ semantics.
  std::vector<char> copy(image.begin(), image.end());
  ElfHandle elf(elf_memory(copy.data(), copy.size()));
  if (!elf) return make_error("cannot read the image: " + elf_error());
  return read_source(elf.get(), "the image");
}

Result<FileTable> build_file_table(const ElfUnwindSource& source, std::string key) {
  if (source.eh_frame.empty()) return make_error("no .eh_frame section");
  KSCOPE_ASSIGN_OR_RETURN(EhFrameTable decoded,
                          decode_eh_frame(source.eh_frame, source.eh_frame_vaddr));
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
  if (table.rows.empty()) return make_error(".eh_frame has no rows");
  return table;
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
