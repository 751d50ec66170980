#include "trace/mmap_watch.h"

#include <fmt/format.h>
#include <linux/perf_event.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <ctime>

#include "bpf/libbpf_util.h"
#include "util/fd.h"

namespace kscope {

struct MmapWatcher::Ring {
  Fd fd;
  void* base = MAP_FAILED;
  size_t map_size = 0;
  size_t data_size = 0;
  std::vector<uint8_t> record;  // a record that wraps around the end of the ring
  ~Ring() {
    if (base != MAP_FAILED) ::munmap(base, map_size);
  }
};

namespace {

// sample_id_all with sample_type TID|TIME appends {u32 pid, u32 tid, u64 time} to every
// non-sample record.
constexpr size_t kSampleIdSize = 16;

std::string perms_of(uint32_t prot, uint32_t flags) {
  std::string p = "----";
  if (prot & PROT_READ) p[0] = 'r';
  if (prot & PROT_WRITE) p[1] = 'w';
  if (prot & PROT_EXEC) p[2] = 'x';
  p[3] = (flags & MAP_SHARED) ? 's' : 'p';
  return p;
}

}  // namespace

bool parse_mmap2_record(const uint8_t* data, size_t size, MmapEvent* out) {
  // header, pid, tid, addr, len, pgoff, maj, min, ino, ino_generation, prot, flags = 72 bytes
  constexpr size_t kFixed = sizeof(perf_event_header) + 8 + 24 + 24 + 8;
  if (size < kFixed + kSampleIdSize) return false;
  perf_event_header h;
  std::memcpy(&h, data, sizeof(h));
  if (h.type != PERF_RECORD_MMAP2 || h.size != size) return false;
  const uint8_t* p = data + sizeof(h);
  uint32_t pid, tid, maj, min, prot, flags;
  uint64_t addr, len, pgoff, ino, ino_gen;
  std::memcpy(&pid, p, 4);
  std::memcpy(&tid, p + 4, 4);
  std::memcpy(&addr, p + 8, 8);
  std::memcpy(&len, p + 16, 8);
  std::memcpy(&pgoff, p + 24, 8);
  std::memcpy(&maj, p + 32, 4);
  std::memcpy(&min, p + 36, 4);
  std::memcpy(&ino, p + 40, 8);
  std::memcpy(&ino_gen, p + 48, 8);
  std::memcpy(&prot, p + 56, 4);
  std::memcpy(&flags, p + 60, 4);
  (void)tid, (void)ino_gen;
  if (len == 0 || addr + len < addr) return false;
  // The file name runs from the end of the fixed part to the sample id, NUL-padded.
  const char* name = reinterpret_cast<const char*>(data + kFixed);
  size_t name_max = size - kFixed - kSampleIdSize;
  size_t name_len = strnlen(name, name_max);
  uint64_t time;
  std::memcpy(&time, data + size - 8, 8);
  out->pid = pid;
  out->time_ns = time;
  Mapping& m = out->mapping;
  m.start = addr;
  m.end = addr + len;
  m.offset = pgoff;
  m.inode = (h.misc & PERF_RECORD_MISC_MMAP_BUILD_ID) ? 0 : ino;
  m.dev_major = (h.misc & PERF_RECORD_MISC_MMAP_BUILD_ID) ? 0 : maj;
  m.dev_minor = (h.misc & PERF_RECORD_MISC_MMAP_BUILD_ID) ? 0 : min;
  m.perms = perms_of(prot, flags);
  m.path.assign(name, name_len);
  if (m.path == "//anon") m.path.clear();  // anonymous, as /proc/PID/maps shows it
  return true;
}

PerfRecord parse_perf_record(const uint8_t* data, size_t size, MmapEvent* out, uint64_t* lost) {
  perf_event_header h;
  if (size < sizeof(h)) return PerfRecord::kMalformed;
  std::memcpy(&h, data, sizeof(h));
  if (h.size != size) return PerfRecord::kMalformed;
  switch (h.type) {
    case PERF_RECORD_MMAP2:
      return parse_mmap2_record(data, size, out) ? PerfRecord::kMapping : PerfRecord::kMalformed;
    case PERF_RECORD_COMM:
      if (!(h.misc & PERF_RECORD_MISC_COMM_EXEC)) return PerfRecord::kOther;
      // pid, tid, the comm (NUL-padded to 8 bytes at least), then the sample id ending in the
      // time (perf_event_comm_output() in kernel/events/core.c).
      if (size < sizeof(h) + 8 + 8 + kSampleIdSize) return PerfRecord::kMalformed;
      *out = MmapEvent{};
      std::memcpy(&out->pid, data + sizeof(h), 4);
      std::memcpy(&out->time_ns, data + size - 8, 8);
      out->exec = true;
      return PerfRecord::kExec;
    case PERF_RECORD_LOST:
      // id, lost, then the sample id (__perf_output_begin() in kernel/events/ring_buffer.c): a
      // record without room for both would be read from its sample id.
      if (size < sizeof(h) + 16 + kSampleIdSize) return PerfRecord::kMalformed;
      std::memcpy(lost, data + sizeof(h) + 8, 8);
      return PerfRecord::kLost;
    default:
      return PerfRecord::kOther;
  }
}

void apply_mmap(std::vector<Mapping>& maps, const Mapping& m) {
  std::vector<Mapping> out;
  out.reserve(maps.size() + 2);
  for (const auto& old : maps) {
    if (old.end <= m.start || old.start >= m.end) {
      out.push_back(old);
      continue;
    }
    if (old.start < m.start) {  // the part below survives
      Mapping below = old;
      below.end = m.start;
      out.push_back(below);
    }
    if (old.end > m.end) {  // the part above survives, its file offset moved along
      Mapping above = old;
      if (!above.path.empty() && above.path[0] == '/') above.offset += m.end - old.start;
      above.start = m.end;
      out.push_back(above);
    }
  }
  out.push_back(m);
  std::sort(out.begin(), out.end(),
            [](const Mapping& a, const Mapping& b) { return a.start < b.start; });
  maps = std::move(out);
}

void ProcessMappings::set_snapshot(std::vector<Mapping> maps, uint64_t time_ns) {
  snapshot_ = std::move(maps);
  snapshot_ns_ = time_ns;
  have_snapshot_ = true;
  records_.erase(std::remove_if(records_.begin(), records_.end(),
                                [time_ns](const MmapEvent& e) { return e.time_ns < time_ns; }),
                 records_.end());
}

void ProcessMappings::add(const MmapEvent& e) {
  if (e.exec) {
    last_exec_ns_ = std::max(last_exec_ns_, e.time_ns);
    return;
  }
  if (have_snapshot_ && e.time_ns < snapshot_ns_) return;  // already in the snapshot
  if (records_.size() >= kMaxRecords) records_.erase(records_.begin());
  records_.push_back(e);
}

std::vector<Mapping> ProcessMappings::current() const {
  bool exec_after_snapshot = !have_snapshot_ || last_exec_ns_ > snapshot_ns_;
  std::vector<Mapping> maps = exec_after_snapshot ? std::vector<Mapping>{} : snapshot_;
  uint64_t from = exec_after_snapshot ? last_exec_ns_ : snapshot_ns_;
  std::vector<const MmapEvent*> later;
  for (const auto& r : records_)
    if (r.time_ns >= from) later.push_back(&r);
  std::stable_sort(later.begin(), later.end(),
                   [](const MmapEvent* a, const MmapEvent* b) { return a->time_ns < b->time_ns; });
  for (const MmapEvent* r : later) apply_mmap(maps, r->mapping);
  return maps;
}

Result<std::unique_ptr<MmapWatcher>> MmapWatcher::open(size_t pages) {
  if (pages == 0 || (pages & (pages - 1)) != 0)
    return make_error("the mmap-record ring size must be a power of two pages");
  KSCOPE_ASSIGN_OR_RETURN(auto cpus, bpf::online_cpus());
  std::unique_ptr<MmapWatcher> w(new MmapWatcher());
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  for (int cpu : cpus) {
    perf_event_attr attr{};
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_DUMMY;
    attr.sample_type = PERF_SAMPLE_TID | PERF_SAMPLE_TIME;
    attr.sample_id_all = 1;
    attr.mmap = 1;   // executable mappings only (mmap_data stays 0)
    attr.mmap2 = 1;  // with device, inode, protection and flags
    attr.comm = 1;   // COMM_EXEC marks where a new image begins
    attr.use_clockid = 1;
    attr.clockid = CLOCK_MONOTONIC;  // the clock of the BPF records' timestamps
    attr.exclude_kernel = 1;
    long fd = ::syscall(SYS_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0)
      return make_error(fmt::format("perf_event_open(dummy, mmap records) on CPU {} failed", cpu),
                        errno, "run 'kscope doctor' to check which perf events this kernel offers");
    auto ring = std::make_unique<Ring>();
    ring->fd.reset(static_cast<int>(fd));
    ring->data_size = pages * page;
    ring->map_size = ring->data_size + page;
    ring->base =
        ::mmap(nullptr, ring->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, ring->fd.get(), 0);
    if (ring->base == MAP_FAILED)
      return errno_error(fmt::format("mapping the mmap-record ring of CPU {} failed", cpu));
    w->rings_.push_back(std::move(ring));
  }
  return w;
}

MmapWatcher::~MmapWatcher() = default;

void MmapWatcher::drain(const std::function<void(const MmapEvent&)>& fn) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  for (auto& ring : rings_) {
    auto* meta = static_cast<perf_event_mmap_page*>(ring->base);
    const uint8_t* data = static_cast<const uint8_t*>(ring->base) + page;
    uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
    uint64_t tail = meta->data_tail;
    while (tail + sizeof(perf_event_header) <= head) {
      size_t off = static_cast<size_t>(tail % ring->data_size);
      perf_event_header h;
      // The header itself may wrap: copy byte by byte through the ring.
      for (size_t i = 0; i < sizeof(h); ++i)
        reinterpret_cast<uint8_t*>(&h)[i] = data[(off + i) % ring->data_size];
      if (h.size < sizeof(h) || tail + h.size > head) break;  // torn: never expected
      const uint8_t* rec = data + off;
      if (off + h.size > ring->data_size) {
        ring->record.resize(h.size);
        size_t first = ring->data_size - off;
        std::memcpy(ring->record.data(), data + off, first);
        std::memcpy(ring->record.data() + first, data, h.size - first);
        rec = ring->record.data();
      }
      MmapEvent e;
      uint64_t lost = 0;
      switch (parse_perf_record(rec, h.size, &e, &lost)) {
        case PerfRecord::kMapping:
        case PerfRecord::kExec:
          fn(e);
          break;
        case PerfRecord::kLost:
          lost_ += lost;
          break;
        case PerfRecord::kOther:
        case PerfRecord::kMalformed:
          break;
      }
      tail += h.size;
    }
    __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
  }
}

}  // namespace kscope
