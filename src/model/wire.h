// Byte-level encoding of recording payloads: little-endian integers, LEB128 varints, zigzag,
// length-prefixed strings, and a bounds-checked cursor for decoding untrusted bytes. Shared by
// every recording kind (model/recording.cpp, model/top_recording.cpp).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kscope::wire {

// ---- Encoding ----

using Bytes = std::vector<uint8_t>;

inline void put_u16(Bytes& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v));
  out.push_back(static_cast<uint8_t>(v >> 8));
}
inline void put_u32(Bytes& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
inline uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t get_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// Unsigned LEB128: 7 bits per byte, low bits first, high bit set on all but the last byte.
inline void put_varint(Bytes& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

// Zigzag maps a two's-complement delta to an unsigned value that is small when the delta is
// small in either direction (0,-1,1,-2,... -> 0,1,2,3,...). Deltas are computed modulo 2^64,
// so every pair of 64-bit values round-trips.
inline uint64_t zigzag(uint64_t delta) { return (delta << 1) ^ (0 - (delta >> 63)); }
inline uint64_t unzigzag(uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

inline void put_string(Bytes& out, std::string_view s) {
  put_varint(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

// ---- Decoding ----

// Reads fields from one block payload. Errors are sticky: after the first failure every read
// returns 0/empty and ok() is false, so decoders check once per item instead of per field.
// Every length is checked against the bytes that remain, which bounds every allocation by the
// payload size.
class PayloadCursor {
 public:
  PayloadCursor(const uint8_t* data, size_t size, uint64_t file_offset)
      : data_(data), size_(size), file_offset_(file_offset) {}

  bool ok() const { return error_.empty(); }
  bool at_end() const { return pos_ == size_; }
  size_t remaining() const { return size_ - pos_; }
  uint64_t file_offset() const { return file_offset_ + pos_; }
  const std::string& error() const { return error_; }
  uint64_t error_offset() const { return error_offset_; }

  void fail(std::string message) { fail_at(std::move(message), file_offset()); }
  void fail_at(std::string message, uint64_t offset) {
    if (!ok()) return;
    error_ = std::move(message);
    error_offset_ = offset;
    pos_ = size_;  // nothing more to read
  }

  uint8_t u8(const char* what) {
    if (remaining() < 1) {
      fail(fmt::format("{} is cut off by the end of the block", what));
      return 0;
    }
    return data_[pos_++];
  }

  uint64_t varint(const char* what) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (remaining() < 1) {
        fail(fmt::format("{} is cut off by the end of the block", what));
        return 0;
      }
      uint8_t byte = data_[pos_];
      // The 10th byte may only contribute the single remaining bit.
      if (shift == 63 && byte > 1) {
        fail(fmt::format("{} is a varint longer than 64 bits", what));
        return 0;
      }
      ++pos_;
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return value;
    }
    return value;  // unreachable: the loop returns or fails by the 10th byte
  }

  uint32_t varint32(const char* what) {
    uint64_t start = file_offset();
    uint64_t v = varint(what);
    if (v > UINT32_MAX) {
      fail_at(fmt::format("{} is {}, more than 32 bits", what, v), start);
      return 0;
    }
    return static_cast<uint32_t>(v);
  }

  // A count of items that follow; each takes at least one byte, and `limit` caps the count so
  // that allocations stay proportional to the file.
  uint64_t count(const char* what, uint64_t limit) {
    uint64_t start = file_offset();
    uint64_t n = varint(what);
    if (ok() && (n > remaining() || n > limit)) {
      fail_at(fmt::format("{} of {} is impossible ({} bytes left in the block, limit {})", what, n,
                          remaining(), limit),
              start);
      return 0;
    }
    return n;
  }

  std::string string(const char* what) {
    uint64_t start = file_offset();
    uint64_t n = varint(what);
    if (!ok()) return {};
    if (n > remaining()) {
      fail_at(fmt::format("{} has length {} but only {} bytes are left in the block", what, n,
                          remaining()),
              start);
      return {};
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

  // A sub-cursor over the next n bytes (which this cursor skips).
  PayloadCursor sub(uint64_t n, const char* what) {
    if (n > remaining()) {
      fail(fmt::format("{} has length {} but only {} bytes are left in the block", what, n,
                       remaining()));
      return PayloadCursor(data_, 0, file_offset_);
    }
    PayloadCursor c(data_ + pos_, n, file_offset());
    pos_ += n;
    return c;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  uint64_t file_offset_;  // of data_[0]
  std::string error_;
  uint64_t error_offset_ = 0;
};

}  // namespace kscope::wire
