#include "monitor/ring.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/fd.h"

namespace kscope::monitor {

namespace {

template <typename T>
T load_acquire(const T* p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
template <typename T>
void store_release(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

kscope_ring_slot* slot_at(kscope_ring_header* h, uint64_t row) {
  auto* base = reinterpret_cast<char*>(h) + h->header_size;
  return reinterpret_cast<kscope_ring_slot*>(base + (row % h->slot_count) * h->slot_size);
}
const kscope_ring_slot* slot_at(const kscope_ring_header* h, uint64_t row) {
  auto* base = reinterpret_cast<const char*>(h) + h->header_size;
  return reinterpret_cast<const kscope_ring_slot*>(base + (row % h->slot_count) * h->slot_size);
}

constexpr size_t kWords = sizeof(kscope_ring_slot) / sizeof(uint64_t);

}  // namespace

size_t ring_bytes(uint32_t slot_count) {
  return sizeof(kscope_ring_header) + static_cast<size_t>(slot_count) * sizeof(kscope_ring_slot);
}

Status init_ring(void* mem, size_t size, uint32_t slot_count, uint64_t period_ns,
                 uint64_t start_realtime_ns, pid_t writer_pid) {
  if (slot_count < 2 || (slot_count & (slot_count - 1)) != 0)
    return usage_error("ring slot count must be a power of two >= 2");
  if (size < ring_bytes(slot_count)) return make_error("ring memory too small");
  std::memset(mem, 0, ring_bytes(slot_count));
  auto* h = static_cast<kscope_ring_header*>(mem);
  h->version = KSCOPE_RING_VERSION;
  h->header_size = sizeof(kscope_ring_header);
  h->slot_size = sizeof(kscope_ring_slot);
  h->slot_count = slot_count;
  h->period_ns = period_ns;
  h->start_realtime_ns = start_realtime_ns;
  h->writer_pid = static_cast<uint32_t>(writer_pid);
  // The magic goes last: a reader never sees a half-initialized header as valid.
  store_release(&h->magic, static_cast<uint64_t>(KSCOPE_RING_MAGIC));
  return {};
}

Status validate_ring(const void* mem, size_t size) {
  if (size < sizeof(kscope_ring_header))
    return make_error(fmt::format("ring file too small ({} bytes) to hold a header", size));
  const auto* h = static_cast<const kscope_ring_header*>(mem);
  if (load_acquire(&h->magic) != KSCOPE_RING_MAGIC)
    return make_error("not a kscope monitor ring (bad magic)");
  if (h->version != KSCOPE_RING_VERSION)
    return make_error(
        fmt::format("ring layout version {} is not supported (this reader understands version {})",
                    h->version, KSCOPE_RING_VERSION),
        0, "use a kscope of the same version as the monitor");
  // Slots are read with 8-byte atomic loads: header_size, like slot_size, must keep them aligned
  // (found by tests/fuzz/fuzz_monitor_ring: an odd header_size made every slot misaligned).
  if (h->header_size < sizeof(kscope_ring_header) || h->header_size % 8 != 0 ||
      h->slot_size < sizeof(kscope_ring_slot) || h->slot_size % 8 != 0 || h->slot_count < 2 ||
      (h->slot_count & (h->slot_count - 1)) != 0)
    return make_error("ring header has inconsistent sizes");
  uint64_t need = h->header_size + static_cast<uint64_t>(h->slot_size) * h->slot_count;
  if (need > size)
    return make_error(
        fmt::format("ring file truncated: header says {} bytes, file has {}", need, size));
  return {};
}

void RingWriter::append(const kscope_ring_slot& row) {
  uint64_t s = hdr_->write_seq;  // single writer: plain read of our own counter
  kscope_ring_slot* slot = slot_at(hdr_, s);
  store_release(&slot->seq, 2 * s + 1);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  const auto* src = reinterpret_cast<const uint64_t*>(&row);
  auto* dst = reinterpret_cast<uint64_t*>(slot);
  for (size_t i = 1; i < kWords; ++i) __atomic_store_n(&dst[i], src[i], __ATOMIC_RELAXED);
  store_release(&slot->seq, 2 * s + 2);
  store_release(&hdr_->write_seq, s + 1);
}

void RingWriter::set_periods(uint64_t periods, uint64_t missed) {
  store_release(&hdr_->periods, periods);
  store_release(&hdr_->missed_periods, missed);
}

void RingWriter::mark_closed() {
  __atomic_fetch_or(&hdr_->flags, KSCOPE_RING_F_WRITER_CLOSED, __ATOMIC_RELEASE);
}

uint64_t RingWriter::written() const { return load_acquire(&hdr_->write_seq); }

void RingReader::start_at_oldest() {
  uint64_t w = load_acquire(&hdr_->write_seq);
  next_ = w > hdr_->slot_count ? w - hdr_->slot_count : 0;
}

void RingReader::start_at_newest() { next_ = load_acquire(&hdr_->write_seq); }

bool RingReader::writer_closed() const {
  return (load_acquire(&hdr_->flags) & KSCOPE_RING_F_WRITER_CLOSED) != 0;
}

RingBatch RingReader::poll(size_t max_rows) {
  RingBatch batch;
  while (batch.rows.size() < max_rows) {
    uint64_t w = load_acquire(&hdr_->write_seq);
    if (next_ >= w) break;
    if (w - next_ > hdr_->slot_count) {
      uint64_t oldest = w - hdr_->slot_count;
      batch.lost += oldest - next_;
      next_ = oldest;
    }
    const kscope_ring_slot* slot = slot_at(hdr_, next_);
    uint64_t s1 = load_acquire(&slot->seq);
    if (s1 != 2 * next_ + 2) {
      // Overwritten by a later row (or being overwritten): this row is gone.
      ++batch.lost;
      ++next_;
      continue;
    }
    kscope_ring_slot copy;
    const auto* src = reinterpret_cast<const uint64_t*>(slot);
    auto* dst = reinterpret_cast<uint64_t*>(&copy);
    for (size_t i = 0; i < kWords; ++i) dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint64_t s2 = load_acquire(&slot->seq);
    if (s2 != s1) {
      ++batch.lost;
      ++next_;
      continue;
    }
    copy.comm[sizeof(copy.comm) - 1] = '\0';  // never trust the bytes to be terminated
    batch.rows.push_back(copy);
    ++next_;
  }
  return batch;
}

ShmMapping& ShmMapping::operator=(ShmMapping&& o) noexcept {
  if (this != &o) {
    if (addr_) ::munmap(addr_, size_);
    addr_ = o.addr_;
    size_ = o.size_;
    o.addr_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

ShmMapping::~ShmMapping() {
  if (addr_) ::munmap(addr_, size_);
}

Status validate_shm_name(const std::string& name) {
  if (name.empty() || name.size() > 200)
    return usage_error("--shm NAME must be 1 to 200 characters");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok)
      return usage_error(
          fmt::format("invalid --shm name '{}': use letters, digits, '.', '_' and '-' only", name));
  }
  if (name == "." || name == "..") return usage_error("invalid --shm name");
  return {};
}

namespace {

// True when the ring at `path` belongs to a monitor that is still writing it.
bool ring_in_use(const std::string& shm_name) {
  Fd fd(::shm_open(("/" + shm_name).c_str(), O_RDONLY | O_CLOEXEC, 0));
  if (!fd) return false;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || static_cast<size_t>(st.st_size) < sizeof(kscope_ring_header))
    return false;
  void* p = ::mmap(nullptr, sizeof(kscope_ring_header), PROT_READ, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return false;
  kscope_ring_header h;
  std::memcpy(&h, p, sizeof(h));
  ::munmap(p, sizeof(kscope_ring_header));
  if (h.magic != KSCOPE_RING_MAGIC) return false;
  if (h.flags & KSCOPE_RING_F_WRITER_CLOSED) return false;
  pid_t pid = static_cast<pid_t>(h.writer_pid);
  if (pid <= 0 || pid == ::getpid()) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  // The pid is alive; make sure it is a kscope and not a recycled pid.
  char buf[64] = {};
  Fd comm(::open(fmt::format("/proc/{}/comm", pid).c_str(), O_RDONLY | O_CLOEXEC));
  if (!comm) return false;
  ssize_t n = ::read(comm.get(), buf, sizeof(buf) - 1);
  return n > 0 && std::strncmp(buf, "kscope", 6) == 0;
}

}  // namespace

Result<ShmMapping> create_shm_ring(const std::string& name, uint32_t slot_count, uint64_t period_ns,
                                   uint64_t start_realtime_ns, uid_t owner_uid, gid_t owner_gid) {
  KSCOPE_TRY(validate_shm_name(name));
  if (slot_count < 2 || (slot_count & (slot_count - 1)) != 0 || slot_count > (1u << 24))
    return usage_error("--ring-slots must be a power of two between 2 and 16777216");
  std::string shm = "/" + name;
  if (ring_in_use(name))
    return make_error(fmt::format("/dev/shm/{} is in use by another running monitor", name), 0,
                      "choose another --shm NAME, or stop that monitor");
  if (::shm_unlink(shm.c_str()) != 0 && errno != ENOENT)
    return errno_error(fmt::format("cannot remove the old /dev/shm/{}", name));
  Fd fd(::shm_open(shm.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return errno_error(fmt::format("cannot create /dev/shm/{}", name));
  ::fchmod(fd.get(), 0600);
  if (::geteuid() == 0 && owner_uid != 0) {
    if (::fchown(fd.get(), owner_uid, owner_gid) != 0)
      return errno_error(fmt::format("cannot hand /dev/shm/{} to uid {}", name, owner_uid));
  }
  size_t size = ring_bytes(slot_count);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0)
    return errno_error(fmt::format("cannot size /dev/shm/{}", name));
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return errno_error(fmt::format("cannot map /dev/shm/{}", name));
  ShmMapping m(p, size);
  KSCOPE_TRY(init_ring(p, size, slot_count, period_ns, start_realtime_ns, ::getpid()));
  return m;
}

Result<ShmMapping> open_shm_ring(const std::string& name) {
  KSCOPE_TRY(validate_shm_name(name));
  Fd fd(::shm_open(("/" + name).c_str(), O_RDONLY | O_CLOEXEC, 0));
  if (!fd)
    return errno_error(
        fmt::format("cannot open /dev/shm/{} (is a monitor running with --shm {}?)", name, name));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errno_error("fstat");
  size_t size = static_cast<size_t>(st.st_size);
  if (size < sizeof(kscope_ring_header))
    return make_error(fmt::format("/dev/shm/{} is too small to be a kscope ring", name));
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return errno_error(fmt::format("cannot map /dev/shm/{}", name));
  ShmMapping m(p, size);
  auto st2 = validate_ring(p, size);
  if (!st2) {
    Error e = std::move(st2).error();
    e.message = fmt::format("/dev/shm/{}: {}", name, e.message);
    return e;
  }
  return m;
}

}  // namespace kscope::monitor
