// kscope faults --stacks in recordings and exports: the stacks block (type 7) and the faults
// block with stack references (type 8) round trip; damage to a stacks block loses those stacks
// and never gives a fault a wrong one; a faults recording with stacks is written as folded
// stacks root first with the stored names, summing to its fault count.
#include "model/fault_stacks.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "export/folded.h"
#include "file_bytes.h"
#include "model/fault_profile.h"
#include "model/recording.h"
#include "symbols/fault_locations.h"
#include "symbols/fault_stack_frames.h"
#include "temp_dir.h"

namespace kscope {
namespace {

namespace fs = std::filesystem;

using testing::crc;
using testing::get_u32;
using testing::put_u32;
using testing::read_bytes;
using testing::write_bytes;

class TempDir : public testing::TempDir {
 public:
  TempDir() : testing::TempDir("kscope-fault-stacks") {}
};

// Block offsets, types and flags, per docs/recording-format.md (20-byte file and block headers).
struct BlockAt {
  size_t offset;
  uint16_t type;
  uint16_t flags;
  uint32_t length;
};
std::vector<BlockAt> blocks_of(const std::string& bytes) {
  std::vector<BlockAt> out;
  size_t pos = 20;
  while (pos + 20 <= bytes.size()) {
    uint32_t w = get_u32(bytes, pos);
    out.push_back({pos, static_cast<uint16_t>(w & 0xffff), static_cast<uint16_t>(w >> 16),
                   get_u32(bytes, pos + 4)});
    pos += 20 + get_u32(bytes, pos + 4);
  }
  return out;
}

// Replaces a block's payload and fixes both checksums: damage a reader can only find by decoding.
std::string with_payload(const std::string& bytes, const BlockAt& b, const std::string& payload) {
  std::string h = bytes.substr(b.offset, 20);
  put_u32(h, 4, static_cast<uint32_t>(payload.size()));
  put_u32(h, 12, crc(payload));
  put_u32(h, 16, crc(std::string_view(h).substr(0, 16)));
  return bytes.substr(0, b.offset) + h + payload + bytes.substr(b.offset + 20 + b.length);
}

constexpr uint32_t kPid = 7;
constexpr uint64_t kKernelBase = 0xffffffff81000000ull;

std::vector<FaultStack> test_stacks() {
  FaultStack complete;  // toucher <- f1 <- main, whole
  complete.id = 1;
  complete.pid = kPid;
  complete.user_status = kStackStatusComplete;
  complete.user = {0x1010, 0x2005, 0x3005};
  FaultStack incomplete;  // toucher <- f1, then the walker found no table
  incomplete.id = 2;
  incomplete.pid = kPid;
  incomplete.user_status = 3;  // KSCOPE_UNWIND_NO_TABLE
  incomplete.user = {0x1010, 0x2005};
  FaultStack lost;  // the user stack lost to a map collision
  lost.id = 3;
  lost.pid = kPid;
  lost.user_status = kStackStatusLostCollision;
  FaultStack kernel;  // read() into fresh memory: fault taken in copy_to_user
  kernel.id = 4;
  kernel.pid = kPid;
  kernel.user_status = kStackStatusComplete;
  kernel.user = {0x4010, 0x5005, 0x3105};
  kernel.kernel_status = kStackStatusPresent;
  kernel.kernel = {kKernelBase + 0x100, kKernelBase + 0x205, kKernelBase + 0x305,
                   kKernelBase + 0x405};
  return {complete, incomplete, lost, kernel};
}

// The names kscope stored when it finished the recording: user frames looked up at their
// address (first frame) or address - 1 (return addresses), kernel frames likewise.
std::vector<StoredSymbol> test_symbols() {
  auto user = [](uint64_t ip, const char* fn) {
    StoredSymbol s;
    s.pid = kPid;
    s.ip = ip;
    s.resolved = true;
    s.function = fn;
    s.module = "prog";
    s.module_path = "/opt/prog";
    return s;
  };
  auto kern = [](uint64_t ip, const char* fn) {
    StoredSymbol s;
    s.kernel = true;
    s.ip = kKernelBase + ip;
    s.resolved = true;
    s.function = fn;
    return s;
  };
  return {user(0x1010, "toucher"),
          user(0x2004, "f1"),
          user(0x3004, "main"),
          user(0x4010, "read"),
          user(0x5004, "read_caller"),
          user(0x3104, "main"),
          kern(0x100, "bpf_trace_run3"),
          kern(0x204, "asm_exc_page_fault"),
          kern(0x304, "rep_movs_alternative"),
          kern(0x404, "_copy_to_user")};
}

FaultRecord fault(uint64_t t, uint64_t addr, uint32_t stack, bool kernel_mode = false) {
  FaultRecord f;
  f.time_ns = t;
  f.pid = kPid;
  f.tid = kPid;
  f.addr = addr;
  f.ip = kernel_mode ? kKernelBase + 0x305 : (stack == 4 ? 0x4010 : 0x1010);
  f.mode = kernel_mode ? FaultMode::kKernel : FaultMode::kUser;
  f.access = Access::kWrite;
  f.segment = Segment::kAnon;
  f.latency_ns = 1000 + t;
  f.stack = stack;
  return f;
}

// 10 faults with stack 1, 3 with 2, 2 with 3, 5 kernel-mode with 4; block_records 4 makes several
// stacks and faults blocks.
std::vector<FaultRecord> test_faults() {
  std::vector<FaultRecord> v;
  uint64_t t = 0, a = 0x7f0000000000;
  for (int i = 0; i < 10; ++i) v.push_back(fault(t += 10, a += 4096, 1));
  for (int i = 0; i < 3; ++i) v.push_back(fault(t += 10, a += 4096, 2));
  for (int i = 0; i < 2; ++i) v.push_back(fault(t += 10, a += 4096, 3));
  for (int i = 0; i < 5; ++i) v.push_back(fault(t += 10, a += 4096, 4, true));
  return v;
}

// Writes the faults with each stack added just before its first fault, as the tracer does.
void write_recording(const std::string& path, size_t block_records = 4) {
  RecordingMeta meta;
  meta.kscope_version = "test";
  meta.target_pids = {kPid};
  auto w =
      RecordingWriter::create(path, meta, {.block_records = block_records, .fault_stacks = true});
  ASSERT_TRUE(w.ok()) << w.error().describe();
  ASSERT_TRUE(w->add_thread(ThreadInfo{kPid, kPid, "prog"}).ok());
  auto stacks = test_stacks();
  std::map<uint32_t, bool> added;
  for (const FaultRecord& f : test_faults()) {
    if (!added[f.stack]) {
      added[f.stack] = true;
      ASSERT_TRUE(w->add_stack(stacks[f.stack - 1]).ok());
    }
    ASSERT_TRUE(w->add_fault(f).ok());
  }
  ASSERT_TRUE(w->add_symbols(test_symbols()).ok());
  ASSERT_TRUE(w->finish(RecordingTrailer{}).ok());
}

TEST(FaultStacksRecording, RoundTrip) {
  TempDir dir;
  std::string path = dir.file("stacks.kscope");
  write_recording(path);
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->summary.version_minor, 2);
  EXPECT_TRUE(r->summary.complete);
  EXPECT_TRUE(r->summary.damage.empty());
  EXPECT_TRUE(r->has_stacks);
  EXPECT_EQ(r->faults, test_faults());
  ASSERT_EQ(r->stacks.size(), 4u);
  for (const FaultStack& s : test_stacks()) EXPECT_EQ(r->stacks.at(s.id), s) << s.id;
  // Each stack precedes the first faults block that refers to it; fault blocks with stack
  // references are type 8 and marked required (a 1.1 reader must refuse, not drop, them).
  std::string bytes = read_bytes(path);
  size_t stacks_blocks = 0, fault_blocks = 0;
  for (const BlockAt& b : blocks_of(bytes)) {
    if (b.type == 7) ++stacks_blocks;
    if (b.type == 8) {
      ++fault_blocks;
      EXPECT_EQ(b.flags, 1u);
    }
    EXPECT_NE(b.type, 4u) << "a stacks recording writes its faults as type 8";
  }
  EXPECT_EQ(fault_blocks, 5u);  // 20 faults, 4 per block
  EXPECT_GE(stacks_blocks, 2u);
}

TEST(FaultStacksRecording, WithoutStacksTheFileIsAsBefore) {
  TempDir dir;
  std::string path = dir.file("plain.kscope");
  {
    auto w = RecordingWriter::create(path, RecordingMeta{});
    ASSERT_TRUE(w.ok());
    FaultRecord f = fault(1, 0x1000, 0);
    ASSERT_TRUE(w->add_fault(f).ok());
    // A stack in a recording made without --stacks is refused, not silently dropped.
    EXPECT_FALSE(w->add_stack(test_stacks()[0]).ok());
    ASSERT_TRUE(w->finish(RecordingTrailer{}).ok());
  }
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_stacks);
  ASSERT_EQ(r->faults.size(), 1u);
  EXPECT_EQ(r->faults[0].stack, 0u);
  for (const BlockAt& b : blocks_of(read_bytes(path))) {
    EXPECT_NE(b.type, 7u);
    EXPECT_NE(b.type, 8u);
  }
}

// Names of a fault's chain, root first, as the folded export writes them.
std::vector<std::string> chain_names(const FaultLocations& loc, size_t fault) {
  std::vector<std::string> out;
  const auto& chain = loc.chains[loc.chain_of_fault[fault]];
  for (auto it = chain.rbegin(); it != chain.rend(); ++it)
    out.push_back(folded_frame_name(loc.frames[*it], true));
  return out;
}

TEST(FaultStacksRecording, DamagedStacksBlockLosesItsStacksNeverGivesAWrongOne) {
  TempDir dir;
  std::string path = dir.file("stacks.kscope");
  write_recording(path);
  std::string bytes = read_bytes(path);
  auto blocks = blocks_of(bytes);
  // The first stacks block (stack 1, before the first faults block): flip a payload byte.
  size_t first = 0;
  while (blocks[first].type != 7) ++first;
  std::string damaged = bytes;
  damaged[blocks[first].offset + 20 + 2] ^= 0x40;
  write_bytes(path, damaged);
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok()) << r.error().describe();
  ASSERT_EQ(r->summary.damage.size(), 1u);
  EXPECT_EQ(r->summary.damage[0].offset, blocks[first].offset);
  EXPECT_NE(r->summary.damage[0].lost.find("stacks block"), std::string::npos)
      << r->summary.damage[0].lost;
  EXPECT_EQ(r->stacks.count(1), 0u);
  EXPECT_EQ(r->faults.size(), test_faults().size());  // the faults themselves are intact
  Symbolizer symbolizer;
  FaultLocations loc = resolve_fault_locations(*r, symbolizer);
  ASSERT_EQ(loc.chain_of_fault.size(), r->faults.size());
  for (size_t i = 0; i < r->faults.size(); ++i) {
    auto names = chain_names(loc, i);
    if (r->faults[i].stack == 1)
      EXPECT_EQ(names, std::vector<std::string>{"[stack lost: damaged recording]"});
    else
      EXPECT_NE(names.front(), "[stack lost: damaged recording]");
  }
}

TEST(FaultStacksRecording, TruncationAnywhereNeverGivesAWrongStack) {
  TempDir dir;
  std::string path = dir.file("stacks.kscope");
  write_recording(path);
  std::string full = read_bytes(path);
  std::map<uint32_t, FaultStack> truth;
  for (const FaultStack& s : test_stacks()) truth[s.id] = s;
  std::string cut = dir.file("cut.kscope");
  for (size_t n = 20; n < full.size(); n += 3) {
    write_bytes(cut, std::string_view(full).substr(0, n));
    auto r = read_recording(cut);
    if (!r.ok()) continue;  // nothing usable yet
    for (const auto& [id, s] : r->stacks) EXPECT_EQ(s, truth.at(id)) << "cut at " << n;
    for (const FaultRecord& f : r->faults) EXPECT_TRUE(truth.count(f.stack)) << "cut at " << n;
  }
}

TEST(FaultStacksRecording, BadStackEntriesAreDamageWithTheirOffset) {
  TempDir dir;
  std::string path = dir.file("stacks.kscope");
  write_recording(path);
  std::string bytes = read_bytes(path);
  auto blocks = blocks_of(bytes);
  size_t first = 0;
  while (blocks[first].type != 7) ++first;
  const BlockAt& b = blocks[first];
  std::string payload = bytes.substr(b.offset + 20, b.length);
  // Entry: id, pid, user status, frames... An invalid status, a frame count past the limit, and
  // an id of 0, each with valid checksums.
  struct Case {
    size_t at;
    char value;
    const char* words;
  } cases[] = {{2, 0x25, "invalid statuses"},
               {3, static_cast<char>(0x80), "more than the 127"},
               {0, 0, "id 0"}};
  for (const Case& c : cases) {
    std::string p = payload;
    p[c.at] = c.value;
    write_bytes(path, with_payload(bytes, b, p));
    auto r = read_recording(path);
    ASSERT_TRUE(r.ok()) << r.error().describe();
    ASSERT_EQ(r->summary.damage.size(), 1u) << c.words;
    EXPECT_NE(r->summary.damage[0].reason.find(c.words), std::string::npos)
        << r->summary.damage[0].reason;
    EXPECT_NE(r->summary.damage[0].reason.find("at byte"), std::string::npos);
  }
}

TEST(FaultStacksExport, FoldedIsRootFirstWithStoredNamesAndSumsToTheFaults) {
  TempDir dir;
  std::string path = dir.file("stacks.kscope");
  write_recording(path);
  auto r = read_recording(path);
  ASSERT_TRUE(r.ok());
  Symbolizer symbolizer;
  FaultLocations loc = resolve_fault_locations(*r, symbolizer);
  StackProfile profile = fault_stack_profile(*r, loc);
  std::string out = dir.file("out.folded");
  ASSERT_TRUE(write_folded_file(profile, out).ok());
  std::map<std::string, long> lines;
  std::istringstream in(read_bytes(out));
  std::string line;
  long sum = 0;
  while (std::getline(in, line)) {
    auto sp = line.rfind(' ');
    ASSERT_NE(sp, std::string::npos) << line;
    long n = std::stol(line.substr(sp + 1));
    lines[line.substr(0, sp)] = n;
    sum += n;
  }
  EXPECT_EQ(sum, static_cast<long>(r->faults.size()));
  std::map<std::string, long> expected = {
      {"prog;main;f1;toucher", 10},
      {"prog;[incomplete: no unwind table for mapping];f1;toucher", 3},
      {"prog;[stack lost: stack map collision]", 2},
      // The kernel's walk starts in the tracing and fault-entry code: left out up to the
      // exception entry, so the leaf is the code that touched user memory.
      {"prog;main;read_caller;read;_copy_to_user_[k];rep_movs_alternative_[k]", 5},
  };
  EXPECT_EQ(lines, expected);
}

TEST(FaultStacksExport, EventsStackFieldIsLeafFirst) {
  std::vector<FaultStack> stacks = test_stacks();
  Symbolizer symbolizer;
  symbolizer.add_stored_symbols(test_symbols());
  EXPECT_EQ(fault_stack_field(name_fault_stack(&stacks[0], 0, symbolizer)), "toucher;f1;main");
  EXPECT_EQ(fault_stack_field(name_fault_stack(&stacks[1], 0, symbolizer)),
            "toucher;f1;[incomplete: no unwind table for mapping]");
  EXPECT_EQ(fault_stack_field(name_fault_stack(&stacks[3], 0, symbolizer)),
            "rep_movs_alternative_[k];_copy_to_user_[k];read;read_caller;main");
  EXPECT_EQ(fault_stack_field(name_fault_stack(nullptr, kStackStatusLostDamaged, symbolizer)),
            "[stack lost: damaged recording]");
}

}  // namespace
}  // namespace kscope
