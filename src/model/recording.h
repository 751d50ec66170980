// The kscope recording file (`kscope faults -o FILE`): a versioned, block-structured binary file
// written while tracing and read back by later tools. The byte layout is specified in
// docs/recording-format.md; keep the two in step.
//
// Properties the design is built around:
//  - Bounded memory while writing: faults are buffered into one block (64 KiB / 4096 records by
//    default), then written out. flush() writes the pending partial block; the CLI calls it
//    periodically so a kill loses at most one flush interval.
//  - Crash tolerance: every block carries a checksummed header and a checksummed payload. A file
//    that ends inside a block (the writer was killed mid-write) reads fine up to the last
//    complete block and reports `truncated`; a file without the final trailer block reports
//    `complete == false`.
//  - Damage tolerance: a block that fails its checksums or does not decode is skipped, and
//    reading resumes at the next block whose header and payload checksums verify
//    (ReadSummary::damage names each skipped byte range and why). Only a file from which
//    nothing usable can be read is an Error.
//  - Never trusting the file: every length is bounds-checked against the payload it lives in,
//    and no allocation is larger than kMaxBlockPayload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/fault_record.h"
#include "model/fault_stacks.h"
#include "model/process_info.h"
#include "model/recording_symbols.h"
#include "model/wire.h"
#include "util/fd.h"
#include "util/result.h"

namespace kscope {

// Format version written by this code. A reader accepts any minor version of its major version
// (blocks of unknown type from a newer minor version are skipped) and rejects other majors.
inline constexpr uint16_t kRecordingVersionMajor = 1;
// 1.1: top recordings carry profile increments (block type 19); faults recordings carry the
// names of their addresses (the symbols block, model/recording_symbols.h); readers resynchronise
// after damaged blocks. 1.2: faults recordings with stacks (kscope faults --stacks): stacks
// blocks (type 7) and faults blocks with a stack reference per record (type 8, marked required);
// faults recordings say where the names of each binary came from (the symbol sources block,
// type 9; 1.1 readers skip it); a top profile's "oncpu" is on-CPU time by stack (sampled,
// scaled), with new values oncpu_samples, offcpu, slice (older top profiles' "oncpu", which was
// slice time, is read as "slice"). 1.0 and 1.1 files read unchanged.
inline constexpr uint16_t kRecordingVersionMinor = 2;

// Largest block payload a reader accepts and a writer produces (a MappingSnapshot of a process
// with the kernel's default 65530 mappings and long paths fits comfortably).
inline constexpr uint32_t kMaxBlockPayload = 32u << 20;

// What a recording holds. Stored in the file header; values are part of the format.
enum class RecordingKind : uint16_t {
  kFaults = 1,  // kscope faults
  kTop = 2,     // kscope top: intervals, slices, the whole-run stack profile (top_recording.h)
};

// Block types from this value up belong to a recording kind's own layer (e.g. top_recording.cpp)
// and reach the visitor through on_extension_block().
inline constexpr uint16_t kFirstExtensionBlockType = 16;

// Who/what/when of a recording; the first block of every file.
struct RecordingMeta {
  std::string kscope_version;
  std::vector<std::string> command_line;  // argv of the kscope invocation
  std::string hostname;
  std::string kernel_release;  // uname -r
  uint64_t start_wall_ns = 0;  // wall-clock time (ns since the Unix epoch) of time_ns == 0
  std::vector<uint32_t> target_pids;
  bool operator==(const RecordingMeta&) const = default;
};

// Counters known only at clean shutdown; the last block of a complete recording.
struct RecordingTrailer {
  std::vector<uint64_t> lost_per_cpu;             // ring-buffer records lost, index = cpu
  std::map<std::string, uint64_t> drop_counters;  // other named drops ("stack_collisions", ...)
  uint64_t kernel_minflt = 0;                     // kernel's own fault totals for the traced tasks
  uint64_t kernel_majflt = 0;
  uint64_t faults_seen = 0;  // faults the BPF program saw (recorded + lost)
  // Filled in by RecordingWriter::finish() with the number of FaultRecords in the file (any
  // value passed in is overwritten); the reader checks it against what it read.
  uint64_t faults_recorded = 0;
  bool operator==(const RecordingTrailer&) const = default;
};

struct RecordingWriterOptions {
  // A fault block is written out when its encoded payload reaches block_bytes or it holds
  // block_records records, whichever comes first. Small values are for tests.
  size_t block_bytes = 64 * 1024;
  size_t block_records = 4096;
  // kscope faults --stacks: fault blocks carry each record's FaultRecord::stack (type 8) and
  // add_stack() is used.
  bool fault_stacks = false;
};

// Writes a recording. Not thread-safe: one thread (the tracing loop) owns it.
//
// Faults are buffered into the current fault block; threads, forks and exits into the current
// process block; a mapping snapshot is written as its own block right away. When a block is
// written (full, flush() or finish()), the pending process block goes out before the pending
// fault block. Items of different kinds are therefore not in strict time order in the file;
// consumers order by time_ns.
//
// If the writer is destroyed without finish(), it writes what is pending (best effort) and the
// file reads as an incomplete recording, as after a crash.
class RecordingWriter {
 public:
  // Creates (O_TRUNC, mode 0600, O_CLOEXEC) `path` and writes the file header and the metadata
  // block, so an unwritable path fails here, before tracing starts.
  static Result<RecordingWriter> create(const std::string& path, const RecordingMeta& meta,
                                        const RecordingWriterOptions& options = {},
                                        RecordingKind kind = RecordingKind::kFaults);

  RecordingWriter(RecordingWriter&&) noexcept;
  // No move assignment: it would have to decide what happens to the assigned-to recording.
  RecordingWriter& operator=(RecordingWriter&&) = delete;
  ~RecordingWriter();

  Status add_fault(const FaultRecord& fault);
  Status add_thread(const ThreadInfo& thread);
  Status add_mappings(const MappingSnapshot& snapshot);
  Status add_fork(const ForkEvent& fork);
  Status add_exit(const ExitEvent& exit);
  // A stack the faults added after it refer to (fault_stacks recordings), buffered and written
  // before the next fault block.
  Status add_stack(const FaultStack& stack);
  // A block of a recording kind's own layer (type >= kFirstExtensionBlockType), written after
  // the pending process and fault blocks.
  Status add_extension_block(uint16_t type, uint32_t count, const std::vector<uint8_t>& payload);
  // The names of the recording's addresses (model/recording_symbols.h), as one or more symbols
  // blocks after the pending process and fault blocks; call once, before finish().
  Status add_symbols(const std::vector<StoredSymbol>& symbols);
  // Where those names came from, one entry per binary (one symbol sources block); after
  // add_symbols(), before finish().
  Status add_symbol_sources(const std::vector<BinarySymbolSource>& sources);

  // Writes the pending partial blocks (no fsync: data in the page cache survives a kill).
  Status flush();
  // Flushes, writes the trailer and closes the file. No add_*() afterwards.
  Status finish(const RecordingTrailer& trailer);

  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t faults_written() const { return faults_added_; }  // added so far, incl. pending

 private:
  struct FaultBlockEncoder;  // per-block delta state, see recording.cpp
  RecordingWriter();

  Status write_block(uint16_t type, uint32_t count, const std::vector<uint8_t>& payload,
                     uint16_t flags = 0);
  Status write_bytes(const uint8_t* data, size_t size);
  Status flush_process_block();
  Status flush_fault_block();
  Status flush_stacks_block();
  Status check_usable() const;

  std::string path_;
  Fd fd_;
  RecordingWriterOptions options_;
  std::unique_ptr<FaultBlockEncoder> faults_;
  std::vector<uint8_t> process_payload_;
  uint32_t process_count_ = 0;
  std::vector<uint8_t> stacks_payload_;
  uint32_t stacks_count_ = 0;
  uint64_t bytes_written_ = 0;
  uint64_t faults_added_ = 0;
  bool finished_ = false;
  bool failed_ = false;  // a write failed; the file ends in a partial block
};

// A byte range the reader could not use: a block whose header or payload checksum failed, whose
// payload did not decode, or that broke the block order. Reading resumed at `resumed_at`, the
// first following block whose header and payload checksums verify (the file size when none
// did).
struct DamagedRange {
  uint64_t offset = 0;      // first byte not used: the start of the damaged block
  uint64_t resumed_at = 0;  // where reading continued
  std::string reason;       // what was wrong, with the byte offset of the fault
  // When the block's own header verified, what the lost block held; otherwise unknown.
  std::optional<uint16_t> block_type;
  uint32_t block_count = 0;  // items the verified header announced (fault records, slices, ...)
  std::string lost;          // "a faults block of 4096 records", or "" when unknown
  bool operator==(const DamagedRange&) const = default;
};

// What the reader found out about the file as a whole.
struct ReadSummary {
  uint16_t version_major = 0;
  uint16_t version_minor = 0;
  RecordingKind kind = RecordingKind::kFaults;
  uint64_t file_size = 0;
  bool complete = false;        // the trailer block was present (clean shutdown)
  bool truncated = false;       // the file ends inside a block, which was ignored
  uint64_t truncated_at = 0;    // byte offset where the ignored partial block starts
  uint64_t skipped_blocks = 0;  // blocks of unknown type (newer minor version) skipped
  uint64_t blocks_read = 0;     // blocks decoded and delivered to the visitor (metadata included)
  std::vector<DamagedRange> damage;  // in file order; empty for an undamaged file
  bool meta_lost = false;            // the metadata block was damaged: RecordingMeta is empty
  // Fault records lost to damage: exact when the trailer survived (its count minus the records
  // read), otherwise the sum of the counts in the verified headers of damaged fault blocks (a
  // lower bound, see faults_lost_exact).
  uint64_t faults_lost = 0;
  bool faults_lost_exact = false;
  // For the user: one line per problem (truncation, each damaged range, lost records), each
  // naming byte offsets; empty for an intact file.
  std::string warning;
};

// A whole recording in memory.
struct Recording {
  ReadSummary summary;
  RecordingMeta meta;
  std::vector<ThreadInfo> threads;
  std::vector<MappingSnapshot> mappings;
  std::vector<ForkEvent> forks;
  std::vector<ExitEvent> exits;
  std::vector<FaultRecord> faults;
  // Names stored when the recording was finished (format 1.1+); empty for older recordings and
  // for recordings that were not finished (kscope was killed).
  std::vector<StoredSymbol> symbols;
  // Where they came from (format 1.2+); empty when the recording has none.
  std::vector<BinarySymbolSource> symbol_sources;
  // kscope faults --stacks (format 1.2+): the stacks by id, and whether any fault block carried
  // stack references (a fault whose stack id is missing here lost its stacks block to damage).
  std::map<uint32_t, FaultStack> stacks;
  bool has_stacks = false;
  std::optional<RecordingTrailer> trailer;  // present iff summary.complete
};

// Receives the items of a recording in file order. Returning an error stops reading and
// visit_recording() returns that error.
class RecordingVisitor {
 public:
  virtual ~RecordingVisitor() = default;
  virtual Status on_meta(const RecordingMeta&) { return {}; }  // always first, exactly once
  virtual Status on_thread(const ThreadInfo&) { return {}; }
  virtual Status on_mappings(const MappingSnapshot&) { return {}; }
  virtual Status on_fork(const ForkEvent&) { return {}; }
  virtual Status on_exit(const ExitEvent&) { return {}; }
  virtual Status on_fault(const FaultRecord&) { return {}; }
  // The stacks of a stacks block (before the faults that refer to them, unless damaged).
  virtual Status on_stacks(const std::vector<FaultStack>&) { return {}; }
  virtual Status on_symbols(const std::vector<StoredSymbol>&) { return {}; }  // one per block
  virtual Status on_symbol_sources(const std::vector<BinarySymbolSource>&) { return {}; }
  virtual Status on_trailer(const RecordingTrailer&) { return {}; }  // last, if present
  // A block of type >= kFirstExtensionBlockType, whose payload `c` covers (its file offsets
  // name the bytes in messages). Returns whether the visitor knew the type; unknown types are
  // skipped, or refused when the writer marked them as required, like any unknown block.
  // A payload that does not decode is reported by failing `c` (c.fail()) and keeping nothing
  // of the block: the reader then counts the block as damaged and carries on. An Error return
  // stops reading, as from the other callbacks.
  virtual Result<bool> on_extension_block(uint16_t type, uint32_t count, wire::PayloadCursor& c) {
    (void)type, (void)count, (void)c;
    return false;
  }
  // A short name for an extension block type in damage reports ("profile increment").
  virtual std::string extension_block_name(uint16_t type) const {
    return fmt::format("type {}", type);
  }
};

// A visitor that keeps the blocks every recording kind has (metadata, threads, mappings) in
// `r`'s fields meta, threads and mappings; the loaders of each kind add the rest.
template <class R>
class CommonBlocksCollector : public RecordingVisitor {
 public:
  explicit CommonBlocksCollector(R& r) : r_(r) {}
  Status on_meta(const RecordingMeta& m) override {
    r_.meta = m;
    return {};
  }
  Status on_thread(const ThreadInfo& t) override {
    r_.threads.push_back(t);
    return {};
  }
  Status on_mappings(const MappingSnapshot& s) override {
    r_.mappings.push_back(s);
    return {};
  }

 protected:
  R& r_;
};

// Streams a recording through `visitor`, holding at most one block in memory. A damaged block
// is skipped whole (none of its items reach the visitor) and recorded in ReadSummary::damage;
// the Error cases are: the file cannot be read, its file header is bad, it needs a newer
// kscope, it holds no metadata and no data, or damage left nothing usable (no block of the
// recording's own records, faults or the kind's extension blocks, could be read).
Result<ReadSummary> visit_recording(const std::string& path, RecordingVisitor& visitor);

// Loads a whole recording (visit_recording() with a collecting visitor).
Result<Recording> read_recording(const std::string& path);

}  // namespace kscope
