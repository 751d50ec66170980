// Recording file writer and reader. The byte layout is specified in docs/recording-format.md;
// the comments here explain the choices, the document the bytes.
#include "model/recording.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <variant>

#include "model/recording_symbols.h"
#include "model/wire.h"
#include "util/invoking_user.h"

namespace kscope {

namespace {

// ---- Constants of the format (docs/recording-format.md) ----

constexpr std::array<uint8_t, 8> kMagic = {'K', 'S', 'C', 'O', 'P', 'E', 0, 0};
constexpr size_t kFileHeaderSize = 20;
constexpr size_t kBlockHeaderSize = 20;

enum BlockType : uint16_t {
  kBlockMeta = 1,
  kBlockProcess = 2,
  kBlockMappings = 3,
  kBlockFaults = 4,
  kBlockTrailer = 5,
  kBlockSymbols = 6,  // minor version 1; model/recording_symbols.h
  kBlockStacks = 7,   // minor version 2; model/fault_stacks.h
  // minor version 2: a faults block whose records each end with a stack reference (required)
  kBlockFaultsWithStacks = 8,
  kBlockSymbolSources = 9,  // minor version 2; model/recording_symbols.h
};
// Block flag: a reader that does not know this block type must refuse the file instead of
// skipping the block.
constexpr uint16_t kBlockFlagRequired = 0x1;

enum ProcessTag : uint8_t { kTagThread = 1, kTagFork = 2, kTagExit = 3 };

// Limits that keep a hostile or damaged file from making the reader allocate much more memory
// than the file's size. The writer enforces the same limits so it never writes an unreadable file.
constexpr uint32_t kMaxFaultBlockRecords = 65536;  // bounds the per-block thread and ip tables
constexpr uint64_t kMaxMappingsPerSnapshot = 1u << 20;
constexpr uint64_t kMaxCommandLineArgs = 65536;
constexpr uint64_t kMaxTargetPids = 1u << 20;
constexpr uint64_t kMaxCpus = 65536;
constexpr uint64_t kMaxDropCounters = 65536;

constexpr uint64_t kPageShift = 12;
constexpr uint64_t kPageMask = (uint64_t{1} << kPageShift) - 1;

std::string_view block_type_name(uint16_t type) {
  switch (type) {
    case kBlockMeta:
      return "metadata";
    case kBlockProcess:
      return "process";
    case kBlockMappings:
      return "mappings";
    case kBlockFaults:
      return "faults";
    case kBlockTrailer:
      return "trailer";
    case kBlockStacks:
      return "stacks";
    case kBlockFaultsWithStacks:
      return "faults";
    case kBlockSymbols:
      return "symbols";
    case kBlockSymbolSources:
      return "symbol sources";
  }
  if (type >= kFirstExtensionBlockType) return "extension";
  return "unknown";
}

uint32_t crc32_of(const uint8_t* data, size_t size) {
  // Payloads are at most kMaxBlockPayload, so the size fits zlib's uInt.
  return static_cast<uint32_t>(::crc32(::crc32(0L, Z_NULL, 0), data, static_cast<uInt>(size)));
}

using namespace wire;  // byte encoding shared with other recording kinds (model/wire.h)

// ---- Fault records ----
//
// Each record starts with two bytes:
//   flags:   bits 0-1 access, bit 2 mode, bit 3 kind, bits 4-6 segment, bit 7 has latency
//   context: bits 0-1 thread selector, bits 2-3 ip selector, bit 4 cpu as before,
//            bit 5 address delta counted in pages, bits 6-7 zero
// followed by varints whose presence the selectors decide. State (thread table, ip table,
// previous values) starts empty in every block, so each block decodes on its own.

constexpr uint8_t kFlagLatency = 0x80;
constexpr uint8_t kThreadSame = 0, kThreadIndex = 1, kThreadNew = 2;
constexpr uint8_t kIpSame = 0, kIpIndex = 1, kIpNew = 2;
constexpr uint8_t kCtxCpuSame = 0x10;
constexpr uint8_t kCtxAddrPages = 0x20;
constexpr uint8_t kCtxReserved = 0xc0;

// Per-thread state inside one block: faults of one thread tend to repeat its ip, stay on its
// cpu and touch addresses near its previous one, even when threads interleave.
struct ThreadState {
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint64_t last_ip = 0;
  uint64_t last_addr = 0;
  uint32_t last_cpu = 0;
};

uint64_t thread_key(uint32_t pid, uint32_t tid) { return (uint64_t{pid} << 32) | tid; }

bool valid_fault(const FaultRecord& f) {
  return static_cast<uint8_t>(f.access) <= 2 && static_cast<uint8_t>(f.mode) <= 1 &&
         static_cast<uint8_t>(f.kind) <= 1 && static_cast<uint8_t>(f.segment) < kSegmentCount;
}

// ---- Process entries: tag byte, varint body length, body ----

void put_process_entry(Bytes& out, uint8_t tag, const Bytes& body) {
  out.push_back(tag);
  put_varint(out, body.size());
  out.insert(out.end(), body.begin(), body.end());
}

// ---- Metadata, mappings and trailer payloads ----

Bytes encode_meta(const RecordingMeta& meta) {
  Bytes out;
  put_string(out, meta.kscope_version);
  put_varint(out, meta.command_line.size());
  for (const auto& arg : meta.command_line) put_string(out, arg);
  put_string(out, meta.hostname);
  put_string(out, meta.kernel_release);
  put_varint(out, meta.start_wall_ns);
  put_varint(out, meta.target_pids.size());
  for (uint32_t pid : meta.target_pids) put_varint(out, pid);
  return out;
}

RecordingMeta decode_meta(PayloadCursor& c) {
  RecordingMeta meta;
  meta.kscope_version = c.string("kscope version");
  uint64_t argc = c.count("command line argument count", kMaxCommandLineArgs);
  for (uint64_t i = 0; i < argc && c.ok(); ++i) meta.command_line.push_back(c.string("argument"));
  meta.hostname = c.string("hostname");
  meta.kernel_release = c.string("kernel release");
  meta.start_wall_ns = c.varint("start time");
  uint64_t npids = c.count("target pid count", kMaxTargetPids);
  meta.target_pids.reserve(npids);
  for (uint64_t i = 0; i < npids && c.ok(); ++i) meta.target_pids.push_back(c.varint32("pid"));
  // Bytes after the known fields are fields of a newer minor version: ignored.
  return meta;
}

Bytes encode_mappings(const MappingSnapshot& snap) {
  Bytes out;
  put_varint(out, snap.pid);
  put_varint(out, snap.time_ns);
  put_varint(out, snap.mappings.size());
  uint64_t prev_end = 0;
  for (const Mapping& m : snap.mappings) {
    // Mappings are sorted, so each one usually starts at or shortly after the previous end.
    put_varint(out, zigzag(m.start - prev_end));
    put_varint(out, m.end - m.start);  // modulo 2^64: even an end < start round-trips
    put_varint(out, m.offset);
    put_varint(out, m.inode);
    put_varint(out, m.dev_major);
    put_varint(out, m.dev_minor);
    put_string(out, m.perms);
    put_string(out, m.path);
    prev_end = m.end;
  }
  return out;
}

Bytes encode_trailer(const RecordingTrailer& t) {
  Bytes out;
  put_varint(out, t.lost_per_cpu.size());
  for (uint64_t lost : t.lost_per_cpu) put_varint(out, lost);
  put_varint(out, t.drop_counters.size());
  for (const auto& [name, value] : t.drop_counters) {
    put_string(out, name);
    put_varint(out, value);
  }
  put_varint(out, t.kernel_minflt);
  put_varint(out, t.kernel_majflt);
  put_varint(out, t.faults_seen);
  put_varint(out, t.faults_recorded);
  return out;
}

RecordingTrailer decode_trailer(PayloadCursor& c) {
  RecordingTrailer t;
  uint64_t ncpu = c.count("cpu count", kMaxCpus);
  t.lost_per_cpu.reserve(ncpu);
  for (uint64_t i = 0; i < ncpu && c.ok(); ++i) t.lost_per_cpu.push_back(c.varint("lost count"));
  uint64_t ndrops = c.count("drop counter count", kMaxDropCounters);
  for (uint64_t i = 0; i < ndrops && c.ok(); ++i) {
    std::string name = c.string("drop counter name");
    uint64_t value = c.varint("drop counter value");
    t.drop_counters[std::move(name)] = value;
  }
  t.kernel_minflt = c.varint("kernel minflt");
  t.kernel_majflt = c.varint("kernel majflt");
  t.faults_seen = c.varint("faults seen");
  t.faults_recorded = c.varint("faults recorded");
  return t;
}

}  // namespace

// ======================================================================================
// Writer
// ======================================================================================

// Encodes fault records into one block; reset() after each block is written.
struct RecordingWriter::FaultBlockEncoder {
  Bytes payload;
  uint32_t count = 0;
  std::vector<ThreadState> threads;
  std::unordered_map<uint64_t, uint32_t> thread_index;  // thread_key -> index in threads
  std::unordered_map<uint64_t, uint32_t> ip_index;      // ip -> index in the block's ip table
  uint64_t last_new_ip = 0;
  uint64_t prev_time = 0;
  int64_t current = -1;  // index of the previous record's thread
  bool with_stacks = false;

  void reset() {
    payload.clear();
    count = 0;
    threads.clear();
    thread_index.clear();
    ip_index.clear();
    last_new_ip = 0;
    prev_time = 0;
    current = -1;
  }

  void encode(const FaultRecord& f) {
    uint8_t flags = static_cast<uint8_t>(f.access) | (static_cast<uint8_t>(f.mode) << 2) |
                    (static_cast<uint8_t>(f.kind) << 3) | (static_cast<uint8_t>(f.segment) << 4) |
                    (f.latency_ns ? kFlagLatency : 0);
    size_t ctx_pos = payload.size() + 1;
    payload.push_back(flags);
    payload.push_back(0);  // context byte, patched below
    uint8_t ctx = 0;

    // Thread.
    uint32_t ti;
    auto [it, inserted] =
        thread_index.try_emplace(thread_key(f.pid, f.tid), static_cast<uint32_t>(threads.size()));
    ti = it->second;
    if (inserted) {
      threads.push_back(ThreadState{f.pid, f.tid});
      ctx |= kThreadNew;
      put_varint(payload, f.pid);
      put_varint(payload, f.tid);
    } else if (static_cast<int64_t>(ti) == current) {
      ctx |= kThreadSame;
    } else {
      ctx |= kThreadIndex;
      put_varint(payload, ti);
    }
    current = ti;
    ThreadState& t = threads[ti];

    // Instruction pointer.
    if (f.ip == t.last_ip) {
      ctx |= kIpSame << 2;
    } else if (auto ip = ip_index.find(f.ip); ip != ip_index.end()) {
      ctx |= kIpIndex << 2;
      put_varint(payload, ip->second);
    } else {
      ctx |= kIpNew << 2;
      put_varint(payload, zigzag(f.ip - last_new_ip));
      ip_index.emplace(f.ip, static_cast<uint32_t>(ip_index.size()));
      last_new_ip = f.ip;
    }
    t.last_ip = f.ip;

    // Time: threads interleave, so it can go backwards a little; zigzag handles that.
    put_varint(payload, zigzag(f.time_ns - prev_time));
    prev_time = f.time_ns;

    // Address: sequential touches move by whole pages, which a page count says in one byte.
    uint64_t delta = f.addr - t.last_addr;
    if ((delta & kPageMask) == 0) {
      ctx |= kCtxAddrPages;
      // Arithmetic shift keeps the sign (defined behaviour since C++20).
      put_varint(payload, zigzag(static_cast<uint64_t>(static_cast<int64_t>(delta) >> kPageShift)));
    } else {
      put_varint(payload, zigzag(delta));
    }
    t.last_addr = f.addr;

    if (f.cpu == t.last_cpu) {
      ctx |= kCtxCpuSame;
    } else {
      put_varint(payload, f.cpu);
    }
    t.last_cpu = f.cpu;

    if (f.latency_ns) put_varint(payload, *f.latency_ns);
    if (with_stacks) put_varint(payload, f.stack);

    payload[ctx_pos] = ctx;
    ++count;
  }
};

RecordingWriter::RecordingWriter() : faults_(std::make_unique<FaultBlockEncoder>()) {}
RecordingWriter::RecordingWriter(RecordingWriter&&) noexcept = default;

RecordingWriter::~RecordingWriter() {
  // Keep what was traced: without a trailer the file reads as an incomplete recording.
  if (fd_.valid() && !finished_ && !failed_) (void)flush();
}

Result<RecordingWriter> RecordingWriter::create(const std::string& path, const RecordingMeta& meta,
                                                const RecordingWriterOptions& options,
                                                RecordingKind kind) {
  if (meta.command_line.size() > kMaxCommandLineArgs || meta.target_pids.size() > kMaxTargetPids)
    return make_error(fmt::format("recording {}: metadata too large", path));
  RecordingWriter w;
  w.path_ = path;
  w.options_ = options;
  w.options_.block_records = std::clamp<size_t>(options.block_records, 1, kMaxFaultBlockRecords);
  w.options_.block_bytes = std::clamp<size_t>(options.block_bytes, 1, kMaxBlockPayload / 2);
  w.faults_->with_stacks = options.fault_stacks;

  // Recordings hold command lines, addresses and host names: owner-only.
  // Through sudo, a recording kscope creates belongs to the user who ran it (util/invoking_user).
  auto fd = create_output_file(path, 0600);
  if (!fd) return make_error(fmt::format("cannot create recording {}", path), fd.error().sys_errno);
  w.fd_ = std::move(*fd);
  // O_CREAT's mode does not apply to a file that already existed; tighten it too. Only for
  // regular files: -o /dev/stdout or a FIFO must keep working.
  struct stat st {};
  if (::fstat(w.fd_.get(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) != 0600 &&
      ::fchmod(w.fd_.get(), 0600) != 0) {
    return errno_error(fmt::format("cannot restrict permissions of recording {}", path));
  }

  Bytes header(kMagic.begin(), kMagic.end());
  put_u16(header, kRecordingVersionMajor);
  put_u16(header, kRecordingVersionMinor);
  put_u16(header, static_cast<uint16_t>(kind));
  put_u16(header, 0);  // header flags, reserved
  put_u32(header, crc32_of(header.data(), header.size()));
  KSCOPE_TRY(w.write_bytes(header.data(), header.size()));

  KSCOPE_TRY(w.write_block(kBlockMeta, 1, encode_meta(meta)));
  return w;
}

Status RecordingWriter::check_usable() const {
  if (finished_) return make_error(fmt::format("recording {} is already finished", path_));
  if (failed_) return make_error(fmt::format("recording {}: an earlier write failed", path_));
  if (!fd_) return make_error("recording writer is not open");
  return {};
}

Status RecordingWriter::write_bytes(const uint8_t* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd_.get(), data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      failed_ = true;
      return errno_error(fmt::format("cannot write recording {}", path_));
    }
    data += n;
    size -= static_cast<size_t>(n);
    bytes_written_ += static_cast<uint64_t>(n);
  }
  return {};
}

Status RecordingWriter::write_block(uint16_t type, uint32_t count, const Bytes& payload,
                                    uint16_t flags) {
  if (payload.size() > kMaxBlockPayload) {
    return make_error(
        fmt::format("recording {}: a {} block of {} bytes exceeds the format's "
                    "limit of {} bytes",
                    path_, block_type_name(type), payload.size(), kMaxBlockPayload));
  }
  Bytes header;
  header.reserve(kBlockHeaderSize);
  put_u16(header, type);
  put_u16(header, flags);  // 0, or kBlockFlagRequired for what 1.x readers before 1.2 must not skip
  put_u32(header, static_cast<uint32_t>(payload.size()));
  put_u32(header, count);
  put_u32(header, crc32_of(payload.data(), payload.size()));
  put_u32(header, crc32_of(header.data(), header.size()));
  KSCOPE_TRY(write_bytes(header.data(), header.size()));
  return write_bytes(payload.data(), payload.size());
}

Status RecordingWriter::flush_process_block() {
  if (process_count_ == 0) return {};
  KSCOPE_TRY(write_block(kBlockProcess, process_count_, process_payload_));
  process_payload_.clear();
  process_count_ = 0;
  return {};
}

Status RecordingWriter::flush_fault_block() {
  if (faults_->count == 0) return {};
  // Thread names and forks buffered so far go first, so a reader usually knows a thread
  // before it sees that thread's faults.
  KSCOPE_TRY(flush_process_block());
  // The stacks its records refer to go before them.
  KSCOPE_TRY(flush_stacks_block());
  if (faults_->with_stacks)
    KSCOPE_TRY(
        write_block(kBlockFaultsWithStacks, faults_->count, faults_->payload, kBlockFlagRequired));
  else
    KSCOPE_TRY(write_block(kBlockFaults, faults_->count, faults_->payload));
  faults_->reset();
  return {};
}

Status RecordingWriter::flush_stacks_block() {
  if (stacks_count_ == 0) return {};
  KSCOPE_TRY(write_block(kBlockStacks, stacks_count_, stacks_payload_));
  stacks_payload_.clear();
  stacks_count_ = 0;
  return {};
}

Status RecordingWriter::add_stack(const FaultStack& stack) {
  KSCOPE_TRY(check_usable());
  if (!options_.fault_stacks || stack.id == 0 || stack.user.size() > kMaxStackFrames ||
      stack.kernel.size() > kMaxStackFrames)
    return make_error(fmt::format("recording {}: invalid stack {}", path_, stack.id));
  encode_fault_stack(stacks_payload_, stack);
  ++stacks_count_;
  if (stacks_count_ >= kMaxStacksPerBlock || stacks_payload_.size() >= kStacksBlockBytes)
    return flush_stacks_block();
  return {};
}

Status RecordingWriter::flush() {
  KSCOPE_TRY(check_usable());
  KSCOPE_TRY(flush_process_block());
  KSCOPE_TRY(flush_stacks_block());
  return flush_fault_block();
}

Status RecordingWriter::add_fault(const FaultRecord& fault) {
  KSCOPE_TRY(check_usable());
  if (!valid_fault(fault))
    return make_error(fmt::format("recording {}: fault record with invalid enum values", path_));
  faults_->encode(fault);
  ++faults_added_;
  if (faults_->count >= options_.block_records || faults_->payload.size() >= options_.block_bytes)
    return flush_fault_block();
  return {};
}

namespace {
// Process entries are buffered like faults; the block goes out when it is as big as a fault
// block would be, so memory stays bounded however many processes come and go.
constexpr size_t kProcessBlockBytes = size_t{64} * 1024;
}  // namespace

Status RecordingWriter::add_thread(const ThreadInfo& thread) {
  KSCOPE_TRY(check_usable());
  Bytes body;
  put_varint(body, thread.pid);
  put_varint(body, thread.tid);
  put_string(body, thread.comm);
  put_process_entry(process_payload_, kTagThread, body);
  ++process_count_;
  return process_payload_.size() >= kProcessBlockBytes ? flush_process_block() : Status{};
}

Status RecordingWriter::add_fork(const ForkEvent& fork) {
  KSCOPE_TRY(check_usable());
  Bytes body;
  put_varint(body, fork.time_ns);
  put_varint(body, fork.parent_pid);
  put_varint(body, fork.child_pid);
  put_process_entry(process_payload_, kTagFork, body);
  ++process_count_;
  return process_payload_.size() >= kProcessBlockBytes ? flush_process_block() : Status{};
}

Status RecordingWriter::add_exit(const ExitEvent& exit) {
  KSCOPE_TRY(check_usable());
  Bytes body;
  put_varint(body, exit.time_ns);
  put_varint(body, exit.pid);
  put_varint(body, exit.tid);
  put_varint(body, exit.min_flt);
  put_varint(body, exit.maj_flt);
  put_varint(body, exit.group_dead ? 1 : 0);  // bit 0: group_dead; other bits reserved
  put_process_entry(process_payload_, kTagExit, body);
  ++process_count_;
  return process_payload_.size() >= kProcessBlockBytes ? flush_process_block() : Status{};
}

Status RecordingWriter::add_mappings(const MappingSnapshot& snapshot) {
  KSCOPE_TRY(check_usable());
  if (snapshot.mappings.size() > kMaxMappingsPerSnapshot) {
    return make_error(
        fmt::format("recording {}: mapping snapshot of pid {} has {} mappings, "
                    "more than the format's limit of {}",
                    path_, snapshot.pid, snapshot.mappings.size(), kMaxMappingsPerSnapshot));
  }
  // Thread entries seen so far precede the snapshot, as they preceded it in time.
  KSCOPE_TRY(flush_process_block());
  return write_block(kBlockMappings, static_cast<uint32_t>(snapshot.mappings.size()),
                     encode_mappings(snapshot));
}

Status RecordingWriter::add_extension_block(uint16_t type, uint32_t count, const Bytes& payload) {
  KSCOPE_TRY(check_usable());
  if (type < kFirstExtensionBlockType)
    return make_error(
        fmt::format("recording {}: block type {} is not an extension type", path_, type));
  KSCOPE_TRY(flush());
  return write_block(type, count, payload);
}

Status RecordingWriter::add_symbols(const std::vector<StoredSymbol>& symbols) {
  KSCOPE_TRY(check_usable());
  KSCOPE_TRY(flush());
  for (size_t begin = 0; begin < symbols.size();) {
    size_t end = symbols.size();
    Bytes payload = encode_symbols(symbols, begin, end);
    KSCOPE_TRY(write_block(kBlockSymbols, static_cast<uint32_t>(end - begin), payload));
    begin = end;
  }
  return {};
}

Status RecordingWriter::add_symbol_sources(const std::vector<BinarySymbolSource>& sources) {
  KSCOPE_TRY(check_usable());
  if (sources.size() > kMaxSymbolSources)
    return make_error(fmt::format("recording {}: {} symbol sources are too many for a block", path_,
                                  sources.size()));
  KSCOPE_TRY(flush());
  Bytes payload = encode_symbol_sources(sources);
  if (payload.size() > kMaxBlockPayload)
    return make_error(
        fmt::format("recording {}: the symbol sources take {} bytes, more than a "
                    "block holds",
                    path_, payload.size()));
  return write_block(kBlockSymbolSources, static_cast<uint32_t>(sources.size()), payload);
}

Status RecordingWriter::finish(const RecordingTrailer& trailer) {
  KSCOPE_TRY(flush());
  if (trailer.lost_per_cpu.size() > kMaxCpus || trailer.drop_counters.size() > kMaxDropCounters)
    return make_error(fmt::format("recording {}: trailer too large", path_));
  RecordingTrailer t = trailer;
  t.faults_recorded = faults_added_;
  KSCOPE_TRY(write_block(kBlockTrailer, 1, encode_trailer(t)));
  finished_ = true;
  // close() can report a delayed write error (NFS, quota): the recording is not safe until then.
  if (::close(fd_.release()) != 0)
    return errno_error(fmt::format("cannot write recording {}", path_));
  return {};
}

// ======================================================================================
// Reader
// ======================================================================================

namespace {

// Decodes one fault block into `out` (cleared first); on a decoding error `c` fails and `out`
// is to be discarded, so a damaged block delivers nothing.
void decode_faults(PayloadCursor& c, uint32_t count, std::vector<FaultRecord>& out,
                   bool with_stacks) {
  out.clear();
  std::vector<ThreadState> threads;
  std::vector<uint64_t> ips;
  uint64_t last_new_ip = 0;
  uint64_t prev_time = 0;
  size_t current = SIZE_MAX;  // index into threads of the previous record's thread
  // threads and ips grow by at most one entry per record and count <= kMaxFaultBlockRecords,
  // so the tables stay small whatever the payload says.
  for (uint32_t i = 0; i < count && c.ok(); ++i) {
    FaultRecord f;
    uint8_t flags = c.u8("fault flags");
    uint64_t ctx_offset = c.file_offset();
    uint8_t ctx = c.u8("fault context byte");
    if (!c.ok()) break;
    if ((flags & 0x3) > 2) {
      c.fail(fmt::format("fault flags byte 0x{:02x} has an invalid access value", flags));
      break;
    }
    static_assert(kSegmentCount <= 8, "a fault record keeps its segment in 3 bits");
    uint8_t segment = (flags >> 4) & 0x7;
    if (segment >= kSegmentCount) {
      c.fail(fmt::format("fault flags byte 0x{:02x} has an invalid segment {}", flags, segment));
      break;
    }
    f.access = static_cast<Access>(flags & 0x3);
    f.mode = (flags & 0x4) ? FaultMode::kKernel : FaultMode::kUser;
    f.kind = (flags & 0x8) ? FaultKind::kMajor : FaultKind::kMinor;
    f.segment = static_cast<Segment>(segment);

    if (ctx & kCtxReserved) {
      c.fail(fmt::format("fault context byte 0x{:02x} (at byte {}) has reserved bits set", ctx,
                         ctx_offset));
      break;
    }
    switch (ctx & 0x3) {
      case kThreadSame:
        if (current == SIZE_MAX)
          c.fail("the first fault of a block refers to the previous record's thread");
        break;
      case kThreadIndex: {
        uint64_t idx = c.varint("thread index");
        if (c.ok() && idx >= threads.size())
          c.fail(fmt::format("thread index {} out of range ({} threads)", idx, threads.size()));
        else if (c.ok())
          current = static_cast<size_t>(idx);
        break;
      }
      case kThreadNew: {
        ThreadState t;
        t.pid = c.varint32("pid");
        t.tid = c.varint32("tid");
        threads.push_back(t);
        current = threads.size() - 1;
        break;
      }
      default:
        c.fail("fault context byte has an invalid thread selector 3");
    }
    if (!c.ok()) break;
    ThreadState& t = threads[current];
    f.pid = t.pid;
    f.tid = t.tid;

    switch ((ctx >> 2) & 0x3) {
      case kIpSame:
        f.ip = t.last_ip;
        break;
      case kIpIndex: {
        uint64_t idx = c.varint("ip index");
        if (c.ok() && idx >= ips.size())
          c.fail(fmt::format("ip index {} out of range ({} ips)", idx, ips.size()));
        else if (c.ok())
          f.ip = ips[idx];
        break;
      }
      case kIpNew:
        f.ip = last_new_ip + unzigzag(c.varint("ip delta"));
        ips.push_back(f.ip);
        last_new_ip = f.ip;
        break;
      default:
        c.fail("fault context byte has an invalid ip selector 3");
    }
    t.last_ip = f.ip;

    f.time_ns = prev_time + unzigzag(c.varint("time delta"));
    prev_time = f.time_ns;

    uint64_t delta = unzigzag(c.varint("address delta"));
    f.addr = t.last_addr + ((ctx & kCtxAddrPages) ? delta << kPageShift : delta);
    t.last_addr = f.addr;

    f.cpu = (ctx & kCtxCpuSame) ? t.last_cpu : c.varint32("cpu");
    t.last_cpu = f.cpu;

    if (flags & kFlagLatency) f.latency_ns = c.varint("latency");
    if (with_stacks) f.stack = c.varint32("stack reference");
    if (!c.ok()) break;
    out.push_back(f);
  }
}

using ProcessEntry = std::variant<ThreadInfo, ForkEvent, ExitEvent>;

// Decodes a process block: thread names, forks and exits, in the order they were added. Like
// decode_faults(), fills `out` and fails `c` on a decoding error.
void decode_process(PayloadCursor& c, uint32_t count, std::vector<ProcessEntry>& out) {
  out.clear();
  for (uint32_t i = 0; i < count && c.ok(); ++i) {
    uint8_t tag = c.u8("process entry tag");
    uint64_t len = c.varint("process entry length");
    PayloadCursor body = c.sub(len, "process entry");
    if (!c.ok()) break;
    // Fields added by a newer minor version follow the known ones and are ignored; entries with
    // an unknown tag are skipped whole.
    switch (tag) {
      case kTagThread: {
        ThreadInfo t;
        t.pid = body.varint32("pid");
        t.tid = body.varint32("tid");
        t.comm = body.string("comm");
        if (body.ok()) out.emplace_back(std::move(t));
        break;
      }
      case kTagFork: {
        ForkEvent f;
        f.time_ns = body.varint("fork time");
        f.parent_pid = body.varint32("parent pid");
        f.child_pid = body.varint32("child pid");
        if (body.ok()) out.emplace_back(f);
        break;
      }
      case kTagExit: {
        ExitEvent e;
        e.time_ns = body.varint("exit time");
        e.pid = body.varint32("pid");
        e.tid = body.varint32("tid");
        e.min_flt = body.varint("min_flt");
        e.maj_flt = body.varint("maj_flt");
        e.group_dead = body.varint("exit flags") & 1;
        if (body.ok()) out.emplace_back(e);
        break;
      }
      default:
        break;
    }
    if (!body.ok()) {
      c.fail_at(body.error(), body.error_offset());
      break;
    }
  }
}

MappingSnapshot decode_mappings(PayloadCursor& c, uint32_t count) {
  MappingSnapshot snap;
  snap.pid = c.varint32("pid");
  snap.time_ns = c.varint("snapshot time");
  uint64_t n = c.count("mapping count", kMaxMappingsPerSnapshot);
  if (c.ok() && n != count) {
    c.fail(fmt::format("mapping count {} disagrees with the block header's {}", n, count));
  }
  // A mapping takes at least 8 bytes (six varints, two string lengths): a count the payload
  // cannot hold is rejected before anything is allocated for it.
  if (c.ok() && n > c.remaining() / 8) {
    c.fail(fmt::format("mapping count {} does not fit in the {} bytes left", n, c.remaining()));
  }
  if (c.ok()) snap.mappings.reserve(n);
  uint64_t prev_end = 0;
  for (uint64_t i = 0; i < n && c.ok(); ++i) {
    Mapping m;
    m.start = prev_end + unzigzag(c.varint("mapping start"));
    m.end = m.start + c.varint("mapping size");
    m.offset = c.varint("mapping offset");
    m.inode = c.varint("inode");
    m.dev_major = c.varint32("device major");
    m.dev_minor = c.varint32("device minor");
    m.perms = c.string("permissions");
    m.path = c.string("path");
    prev_end = m.end;
    snap.mappings.push_back(std::move(m));
  }
  return snap;
}

// Reads an exact byte range of the file.
Status read_exact(int fd, uint64_t offset, uint8_t* buf, size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::pread(fd, buf, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(fmt::format("cannot read recording {}", path));
    if (n == 0)
      return make_error(
          fmt::format("recording {} shrank while being read (at byte {})", path, offset));
    buf += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

// True when the file holds only zero bytes from `offset` to `end`: what a filesystem leaves
// when the file size was updated but the data never reached the disk (power loss). Such a tail
// is a truncation, not corruption.
Result<bool> zero_tail(int fd, uint64_t offset, uint64_t end, const std::string& path) {
  std::vector<uint8_t> chunk(size_t{64} * 1024);
  while (offset < end) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), end - offset));
    KSCOPE_TRY(read_exact(fd, offset, chunk.data(), n, path));
    if (std::any_of(chunk.begin(), chunk.begin() + static_cast<ptrdiff_t>(n),
                    [](uint8_t b) { return b != 0; }))
      return false;
    offset += n;
  }
  return true;
}

// A block header that verifies: its checksum matches and its length is possible.
struct BlockHeader {
  uint16_t type = 0;
  uint16_t flags = 0;
  uint32_t length = 0;
  uint32_t count = 0;
  uint32_t payload_crc = 0;
};

std::optional<BlockHeader> parse_block_header(const uint8_t* h) {
  if (get_u32(h + 16) != crc32_of(h, 16)) return std::nullopt;
  return BlockHeader{get_u16(h), get_u16(h + 2), get_u32(h + 4), get_u32(h + 8), get_u32(h + 12)};
}

enum class Probe { kNone, kBlock, kCutOff };

// Whether a block starts at `pos`: kBlock when its header and payload checksums verify, kCutOff
// when its header verifies but its payload runs past the end of the file (the writer stopped
// inside it), kNone otherwise. The type must be non-zero and the reserved flag bits clear, as
// every writer of this major version writes them.
Result<Probe> probe_block(int fd, const uint8_t* header, uint64_t pos, uint64_t size,
                          const std::string& path, Bytes& scratch) {
  auto h = parse_block_header(header);
  if (!h || h->type == 0 || (h->flags & ~kBlockFlagRequired) != 0 || h->length > kMaxBlockPayload)
    return Probe::kNone;
  if (h->length > size - pos - kBlockHeaderSize) return Probe::kCutOff;
  scratch.resize(h->length);
  KSCOPE_TRY(read_exact(fd, pos + kBlockHeaderSize, scratch.data(), h->length, path));
  return crc32_of(scratch.data(), h->length) == h->payload_crc ? Probe::kBlock : Probe::kNone;
}

// Where reading resumes after damage that starts before `from`: the first offset >= `from`
// where a block verifies (header and payload checksums: a false match is a 1 in 2^64 event per
// offset). A verified header whose payload runs past the end of the file is the fallback when
// no complete block follows (the file was also cut off there). The file size when nothing
// verifies. Reads the file in 1 MiB windows, so memory stays bounded.
Result<uint64_t> find_next_block(int fd, uint64_t from, uint64_t size, const std::string& path) {
  constexpr uint64_t kWindow = uint64_t{1} << 20;
  Bytes window;
  Bytes scratch;
  std::optional<uint64_t> cut_off;
  for (uint64_t base = from; base < size && size - base >= kBlockHeaderSize; base += kWindow) {
    const auto n =
        static_cast<size_t>(std::min<uint64_t>(kWindow + kBlockHeaderSize - 1, size - base));
    window.resize(n);
    KSCOPE_TRY(read_exact(fd, base, window.data(), n, path));
    for (size_t i = 0; i < kWindow && i + kBlockHeaderSize <= n; ++i) {
      // Cheap tests first: the checksum is computed only where the length is possible.
      if (get_u32(&window[i + 4]) > kMaxBlockPayload) continue;
      KSCOPE_ASSIGN_OR_RETURN(Probe p, probe_block(fd, &window[i], base + i, size, path, scratch));
      if (p == Probe::kBlock) return base + i;
      if (p == Probe::kCutOff && !cut_off) cut_off = base + i;
    }
  }
  return cut_off.value_or(size);
}

std::string item_words(uint16_t type, uint32_t count) {
  switch (type) {
    case kBlockFaults:
    case kBlockFaultsWithStacks:
      return fmt::format("{} fault record{}", count, count == 1 ? "" : "s");
    case kBlockStacks:
      return fmt::format("{} stack{}", count, count == 1 ? "" : "s");
    case kBlockProcess:
      return fmt::format("{} thread/fork/exit entr{}", count, count == 1 ? "y" : "ies");
    case kBlockMappings:
      return fmt::format("{} mapping{}", count, count == 1 ? "" : "s");
    default:
      return fmt::format("count {}", count);
  }
}

}  // namespace

Result<ReadSummary> visit_recording(const std::string& path, RecordingVisitor& visitor) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error(fmt::format("cannot open recording {}", path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error(fmt::format("cannot stat {}", path));
  if (!S_ISREG(st.st_mode))
    return make_error(
        fmt::format("{} is not a regular file; recordings are read from files", path));

  ReadSummary summary;
  // Read up to the size seen now: a recording still being written grows under us.
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  summary.file_size = size;

  auto corrupt = [&](uint64_t offset, const std::string& what) {
    return make_error(fmt::format("recording {} is corrupted at byte {}: {}", path, offset, what),
                      0,
                      "the file was damaged after it was written; it cannot be read past this "
                      "point");
  };

  // ---- File header. Magic and version come first and are checked before the checksum, so
  // a future major version with a different header still gets a clear message. Without a
  // trustworthy header the kind of the recording is unknown: that is an error. ----
  std::array<uint8_t, kFileHeaderSize> header{};
  size_t have = static_cast<size_t>(std::min<uint64_t>(size, kFileHeaderSize));
  KSCOPE_TRY(read_exact(fd.get(), 0, header.data(), have, path));
  if (have < kMagic.size() || !std::equal(kMagic.begin(), kMagic.end(), header.begin())) {
    return make_error(fmt::format("{} is not a kscope recording (bad magic at byte 0)", path));
  }
  if (have < kFileHeaderSize) {
    return make_error(
        fmt::format("recording {} is truncated inside its {}-byte file header "
                    "({} bytes)",
                    path, kFileHeaderSize, size));
  }
  summary.version_major = get_u16(&header[8]);
  summary.version_minor = get_u16(&header[10]);
  if (summary.version_major != kRecordingVersionMajor) {
    return make_error(
        fmt::format("recording {} has format version {}.{}; this kscope reads version {}.x", path,
                    summary.version_major, summary.version_minor, kRecordingVersionMajor),
        0, "use a kscope release that matches the one that wrote the recording");
  }
  if (get_u32(&header[16]) != crc32_of(header.data(), 16)) {
    return corrupt(0, "file header checksum mismatch");
  }
  uint16_t kind = get_u16(&header[12]);
  if (kind != static_cast<uint16_t>(RecordingKind::kFaults) &&
      kind != static_cast<uint16_t>(RecordingKind::kTop)) {
    return make_error(
        fmt::format("recording {} is of kind {}, which this kscope does not know", path, kind), 0,
        "it was probably written by a newer kscope");
  }
  summary.kind = static_cast<RecordingKind>(kind);

  // ---- Blocks ----
  bool have_meta = false;
  uint64_t faults_read = 0;
  uint64_t data_blocks = 0;    // blocks other than metadata and trailer that were delivered
  uint64_t record_blocks = 0;  // of those, blocks of the recording's own records (faults,
                               // or the kind's extension blocks)
  std::optional<RecordingTrailer> trailer;
  uint64_t pos = kFileHeaderSize;
  Bytes payload;
  Bytes scratch;
  std::vector<FaultRecord> faults;
  std::vector<ProcessEntry> entries;

  // A block that cannot be used: record it and find where reading resumes. When the block's
  // header verified, its length is trusted first (the next block normally starts right after
  // it); otherwise, or when nothing verifies there, the file is scanned.
  auto skip_damaged = [&](const std::string& reason, const std::optional<BlockHeader>& h,
                          const std::string& block_name) -> Result<uint64_t> {
    DamagedRange d;
    d.offset = pos;
    d.reason = reason;
    std::optional<uint64_t> resume;
    if (h) {
      d.block_type = h->type;
      d.block_count = h->count;
      d.lost = fmt::format("a {} block ({})", block_name, item_words(h->type, h->count));
      if (h->type == kBlockFaults || h->type == kBlockFaultsWithStacks)
        summary.faults_lost += h->count;
      uint64_t next = pos + kBlockHeaderSize + h->length;
      if (next == size) {
        resume = size;
      } else if (next < size && size - next >= kBlockHeaderSize) {
        std::array<uint8_t, kBlockHeaderSize> nh{};
        KSCOPE_TRY(read_exact(fd.get(), next, nh.data(), nh.size(), path));
        KSCOPE_ASSIGN_OR_RETURN(Probe p,
                                probe_block(fd.get(), nh.data(), next, size, path, scratch));
        if (p != Probe::kNone) resume = next;
      }
    }
    if (!resume) {
      KSCOPE_ASSIGN_OR_RETURN(uint64_t next, find_next_block(fd.get(), pos + 1, size, path));
      resume = next;
    }
    d.resumed_at = *resume;
    summary.damage.push_back(std::move(d));
    return *resume;
  };

  while (pos < size) {
    if (size - pos < kBlockHeaderSize) {
      summary.truncated = true;
      break;
    }
    std::array<uint8_t, kBlockHeaderSize> bh{};
    KSCOPE_TRY(read_exact(fd.get(), pos, bh.data(), bh.size(), path));
    std::optional<BlockHeader> h = parse_block_header(bh.data());
    std::string bad;  // why the block at pos cannot be used
    std::string name = "unknown";
    PayloadCursor c(nullptr, 0, pos + kBlockHeaderSize);
    if (!h) {
      KSCOPE_ASSIGN_OR_RETURN(bool zeros, zero_tail(fd.get(), pos, size, path));
      if (zeros) {
        summary.truncated = true;
        break;
      }
      bad = fmt::format("block header checksum mismatch at byte {}", pos);
    } else if (h->length > kMaxBlockPayload) {
      bad = fmt::format("impossible block length {} at byte {} (the limit is {})", h->length, pos,
                        kMaxBlockPayload);
      h.reset();  // a header with an impossible length says nothing trustworthy
    } else if (h->length > size - pos - kBlockHeaderSize) {
      // A block the writer did not finish: the expected end of a killed recording.
      summary.truncated = true;
      break;
    } else {
      name = h->type >= kFirstExtensionBlockType ? visitor.extension_block_name(h->type)
                                                 : std::string(block_type_name(h->type));
      payload.resize(h->length);
      KSCOPE_TRY(read_exact(fd.get(), pos + kBlockHeaderSize, payload.data(), h->length, path));
      if (crc32_of(payload.data(), h->length) != h->payload_crc) {
        bad = fmt::format("checksum mismatch in the {}-byte payload of the {} block at byte {}",
                          h->length, name, pos);
      } else if (!have_meta && h->type != kBlockMeta && summary.damage.empty()) {
        return corrupt(pos,
                       fmt::format("the first block is a {} block, not the metadata block", name));
      } else if (summary.complete) {
        bad = fmt::format("a {} block after the trailer block, at byte {}", name, pos);
      }
    }

    if (bad.empty()) {
      const BlockHeader& b = *h;
      c = PayloadCursor(payload.data(), b.length, pos + kBlockHeaderSize);
      // Decodes fully first and delivers only a block that decoded, so a damaged block gives
      // the visitor nothing. META and TRAILER may carry fields of newer minor versions.
      auto decoded = [&](bool exact) {
        if (c.ok() && exact && !c.at_end())
          c.fail(fmt::format("{} unexpected bytes at the end of the block", c.remaining()));
        return c.ok();
      };
      switch (b.type) {
        case kBlockMeta: {
          if (have_meta) {
            bad = fmt::format("a second metadata block at byte {}", pos);
            break;
          }
          RecordingMeta meta = decode_meta(c);
          if (!decoded(false)) break;
          KSCOPE_TRY(visitor.on_meta(meta));
          have_meta = true;
          break;
        }
        case kBlockProcess:
          decode_process(c, b.count, entries);
          if (!decoded(true)) break;
          for (const ProcessEntry& e : entries) {
            if (auto* t = std::get_if<ThreadInfo>(&e)) KSCOPE_TRY(visitor.on_thread(*t));
            if (auto* f = std::get_if<ForkEvent>(&e)) KSCOPE_TRY(visitor.on_fork(*f));
            if (auto* x = std::get_if<ExitEvent>(&e)) KSCOPE_TRY(visitor.on_exit(*x));
          }
          ++data_blocks;
          break;
        case kBlockMappings: {
          MappingSnapshot snap = decode_mappings(c, b.count);
          if (!decoded(true)) break;
          KSCOPE_TRY(visitor.on_mappings(snap));
          ++data_blocks;
          break;
        }
        case kBlockFaults:
        case kBlockFaultsWithStacks:
          if (b.count > kMaxFaultBlockRecords || b.count > b.length / 2) {
            c.fail_at(fmt::format("impossible record count {} for a {}-byte fault block", b.count,
                                  b.length),
                      pos);
            break;
          }
          decode_faults(c, b.count, faults, b.type == kBlockFaultsWithStacks);
          if (!decoded(true)) break;
          for (const FaultRecord& f : faults) KSCOPE_TRY(visitor.on_fault(f));
          faults_read += b.count;
          ++data_blocks;
          ++record_blocks;
          break;
        case kBlockStacks: {
          std::vector<FaultStack> stacks;
          decode_fault_stacks(c, b.count, stacks);
          if (!decoded(true)) break;
          KSCOPE_TRY(visitor.on_stacks(stacks));
          ++data_blocks;
          break;
        }
        case kBlockSymbols: {
          std::vector<StoredSymbol> symbols;
          decode_symbols(c, b.count, symbols);
          if (!decoded(true)) break;
          KSCOPE_TRY(visitor.on_symbols(symbols));
          ++data_blocks;
          break;
        }
        case kBlockSymbolSources: {
          std::vector<BinarySymbolSource> sources;
          decode_symbol_sources(c, b.count, sources);
          if (!decoded(true)) break;
          KSCOPE_TRY(visitor.on_symbol_sources(sources));
          ++data_blocks;
          break;
        }
        case kBlockTrailer: {
          RecordingTrailer t = decode_trailer(c);
          if (!decoded(false)) break;
          // Records the trailer counts and the file does not hold were lost to damage: so
          // without damage before it, the counts must agree.
          if (t.faults_recorded < faults_read ||
              (t.faults_recorded > faults_read && summary.damage.empty())) {
            c.fail_at(
                fmt::format(
                    "the trailer counts {} fault records but the file holds {}{}",
                    t.faults_recorded, faults_read,
                    t.faults_recorded > faults_read ? " and no block before it is damaged" : ""),
                pos);
            break;
          }
          KSCOPE_TRY(visitor.on_trailer(t));
          trailer = t;
          summary.complete = true;
          break;
        }
        default: {
          if (b.type >= kFirstExtensionBlockType) {
            KSCOPE_ASSIGN_OR_RETURN(bool known, visitor.on_extension_block(b.type, b.count, c));
            if (known) {
              if (decoded(false)) {
                ++data_blocks;
                ++record_blocks;
              }
              break;
            }
          }
          if (b.flags & kBlockFlagRequired) {
            return make_error(
                fmt::format("recording {}: the block at byte {} has type {}, which this kscope "
                            "does not know and which the writer marked as required",
                            path, pos, b.type),
                0, "read it with a newer kscope");
          }
          ++summary.skipped_blocks;
          break;
        }
      }
      if (bad.empty() && !c.ok())
        bad = fmt::format("{} at byte {} (in the {} block at byte {})", c.error(), c.error_offset(),
                          name, pos);
      if (bad.empty()) {
        ++summary.blocks_read;
        pos += kBlockHeaderSize + b.length;
        continue;
      }
    }
    KSCOPE_ASSIGN_OR_RETURN(pos, skip_damaged(bad, h, name));
  }

  // Fault records lost: exact from a surviving trailer, else what the damaged headers said.
  if (trailer) {
    summary.faults_lost = trailer->faults_recorded - faults_read;
    summary.faults_lost_exact = true;
  }

  std::vector<std::string> lines;
  for (const DamagedRange& d : summary.damage) {
    std::string lost = d.lost.empty() ? "contents unknown" : d.lost;
    if (d.resumed_at >= size)
      lines.push_back(fmt::format(
          "recording {}: damaged from byte {} to the end ({} bytes, {}): {}; no intact block "
          "follows",
          path, d.offset, size - d.offset, lost, d.reason));
    else
      lines.push_back(fmt::format(
          "recording {}: bytes {} to {} skipped ({} bytes, {}): {}; reading resumed at byte {}",
          path, d.offset, d.resumed_at, d.resumed_at - d.offset, lost, d.reason, d.resumed_at));
  }
  if (!summary.damage.empty()) summary.meta_lost = !have_meta;
  if (summary.meta_lost)
    lines.push_back(fmt::format(
        "recording {}: its metadata block was lost: command line, host and start time unknown",
        path));
  if (summary.faults_lost > 0)
    lines.push_back(fmt::format("recording {}: {}{} fault records lost to damage{}", path,
                                summary.faults_lost_exact ? "" : "at least ", summary.faults_lost,
                                summary.faults_lost_exact ? " (the trailer's count minus the "
                                                            "records read)"
                                                          : ""));

  if (summary.truncated) {
    summary.truncated_at = pos;
    if (!have_meta && data_blocks == 0) {
      return make_error(
          fmt::format("recording {} ends at byte {}, before its metadata block is "
                      "complete; it holds no data",
                      path, size));
    }
    lines.push_back(fmt::format(
        "recording {} ends with an incomplete block at byte {} ({} bytes ignored): kscope did "
        "not shut down cleanly; everything up to the last flush was read",
        path, pos, size - pos));
  } else if (!have_meta && summary.damage.empty()) {
    return make_error(fmt::format("recording {} has no metadata block; it holds no data", path));
  }
  // Thread names and mappings alone are not worth a result: with damage, at least one block of
  // the recording's own records must have survived.
  if (!summary.damage.empty() && record_blocks == 0) {
    std::string what;
    for (const auto& l : lines) what += "\n  " + l;
    return make_error(
        fmt::format("recording {} is damaged and nothing usable could be read from "
                    "it:{}",
                    path, what));
  }
  for (const auto& l : lines) summary.warning += (summary.warning.empty() ? "" : "\n") + l;
  return summary;
}

namespace {
class CollectingVisitor : public CommonBlocksCollector<Recording> {
 public:
  using CommonBlocksCollector::CommonBlocksCollector;
  Status on_fork(const ForkEvent& f) override {
    r_.forks.push_back(f);
    return {};
  }
  Status on_exit(const ExitEvent& e) override {
    r_.exits.push_back(e);
    return {};
  }
  Status on_fault(const FaultRecord& f) override {
    r_.faults.push_back(f);
    if (f.stack != 0) r_.has_stacks = true;
    return {};
  }
  Status on_stacks(const std::vector<FaultStack>& stacks) override {
    for (const FaultStack& s : stacks) r_.stacks.emplace(s.id, s);
    return {};
  }
  Status on_symbols(const std::vector<StoredSymbol>& symbols) override {
    r_.symbols.insert(r_.symbols.end(), symbols.begin(), symbols.end());
    return {};
  }
  Status on_symbol_sources(const std::vector<BinarySymbolSource>& sources) override {
    r_.symbol_sources = sources;  // the last block is the complete table
    return {};
  }
  Status on_trailer(const RecordingTrailer& t) override {
    r_.trailer = t;
    return {};
  }
};
}  // namespace

Result<Recording> read_recording(const std::string& path) {
  Recording recording;
  CollectingVisitor collector(recording);
  KSCOPE_ASSIGN_OR_RETURN(recording.summary, visit_recording(path, collector));
  return recording;
}

}  // namespace kscope
