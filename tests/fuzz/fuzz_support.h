// Shared by the libFuzzer targets: an input as a file that the public reading paths can open.
#pragma once

#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace kscope::fuzz {

// The bytes in an anonymous memory file (memfd), readable by path as /proc/self/fd/N, so the
// targets go through the same open/read code as a recording or an ELF file on disk.
class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size) {
    fd_ = ::memfd_create("kscope-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) std::abort();
    size_t done = 0;
    while (done < size) {
      ssize_t n = ::write(fd_, data + done, size - done);
      if (n <= 0) std::abort();
      done += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// A recording with every checksum recomputed (docs/recording-format.md: a 20-byte file header
// whose bytes 16..19 are the CRC-32 of bytes 0..15, then blocks of a 20-byte header {type, flags,
// length, count, payload_crc, header_crc} and `length` payload bytes). A mutation almost always
// breaks a CRC, so without this the fuzzer would test little beyond the checksum check; the
// targets read both the input as it is and this repaired copy, which reaches the decoders.
inline std::vector<uint8_t> with_checksums_fixed(const uint8_t* data, size_t size) {
  std::vector<uint8_t> b(data, data + size);
  auto crc = [](const uint8_t* p, size_t n) {
    return static_cast<uint32_t>(::crc32(::crc32(0L, Z_NULL, 0), p, static_cast<uInt>(n)));
  };
  auto put = [&](size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); };
  if (b.size() < 20) return b;
  put(16, crc(b.data(), 16));
  size_t pos = 20;
  while (pos + 20 <= b.size()) {
    uint32_t len;
    std::memcpy(&len, b.data() + pos + 4, 4);
    if (len <= b.size() - pos - 20) put(pos + 12, crc(b.data() + pos + 20, len));
    put(pos + 16, crc(b.data() + pos, 16));
    if (len > b.size() - pos - 20) break;
    pos += 20 + len;
  }
  return b;
}

}  // namespace kscope::fuzz
