#include "model/top_recording.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <map>
#include <tuple>

#include "model/wire.h"
#include "util/fd.h"

namespace kscope {

using namespace wire;

namespace {

constexpr uint32_t kSlicesPerBlock = 8192;
constexpr uint64_t kMaxRows = 1u << 22;
constexpr uint64_t kMaxFrames = 1u << 24;
constexpr uint64_t kMaxValueTypes = 64;

void put_values(Bytes& out, const TopValues& v) {
  put_varint(out, v.oncpu_ns);
  put_varint(out, v.runq_wait_ns);
  put_varint(out, v.switches);
  put_varint(out, v.voluntary);
  put_varint(out, v.involuntary);
}

TopValues get_values(PayloadCursor& c) {
  TopValues v;
  v.oncpu_ns = c.varint("oncpu_ns");
  v.runq_wait_ns = c.varint("runq_wait_ns");
  v.switches = c.varint("switches");
  v.voluntary = c.varint("voluntary");
  v.involuntary = c.varint("involuntary");
  return v;
}

void put_counters(Bytes& out, const TopCounters& c) {
  for (uint64_t v : {c.switches_total, c.tracked_switches, c.kstack_collisions, c.ustack_collisions,
                     c.kstack_errors, c.ustack_errors, c.accounts_full, c.accounts_full_ns,
                     c.storage_failures, c.slices_lost, c.events_lost, c.prog_misses})
    put_varint(out, v);
}

TopCounters get_counters(PayloadCursor& c) {
  TopCounters t;
  for (uint64_t* v :
       {&t.switches_total, &t.tracked_switches, &t.kstack_collisions, &t.ustack_collisions,
        &t.kstack_errors, &t.ustack_errors, &t.accounts_full, &t.accounts_full_ns,
        &t.storage_failures, &t.slices_lost, &t.events_lost, &t.prog_misses})
    *v = c.varint("drop counter");
  return t;
}

void put_profile(Bytes& out, const StackProfile& p, const TopCounters& counters) {
  put_counters(out, counters);
  put_varint(out, p.duration_ns);
  put_varint(out, p.start_wall_ns);
  put_varint(out, p.value_types.size());
  for (const auto& t : p.value_types) {
    put_string(out, t.type);
    put_string(out, t.unit);
  }
  put_varint(out, p.frames.size());
  for (const auto& f : p.frames) {
    put_varint(out, f.addr);
    put_string(out, f.function);
    put_varint(out, f.offset);
    put_string(out, f.module);
    put_string(out, f.module_path);
    put_string(out, f.build_id);
    out.push_back(
        static_cast<uint8_t>((f.kernel ? 1 : 0) | (f.resolved ? 2 : 0) | (f.inlined ? 4 : 0)));
  }
  put_varint(out, p.samples.size());
  for (const auto& s : p.samples) {
    put_varint(out, s.pid);
    put_varint(out, s.tid);
    put_string(out, s.comm);
    put_varint(out, s.frames.size());
    for (uint32_t idx : s.frames) put_varint(out, idx);
    put_varint(out, s.values.size());
    for (int64_t v : s.values) put_varint(out, zigzag(static_cast<uint64_t>(v)));
  }
}

// Decodes a profile or profile increment payload; on failure `c` fails.
StackProfile get_profile(PayloadCursor& c, TopCounters& counters) {
  StackProfile p;
  counters = get_counters(c);
  p.duration_ns = c.varint("duration");
  p.start_wall_ns = c.varint("start time");
  uint64_t nt = c.count("value type count", kMaxValueTypes);
  for (uint64_t i = 0; i < nt && c.ok(); ++i) {
    ProfileValueType t;
    t.type = c.string("value type");
    t.unit = c.string("value unit");
    p.value_types.push_back(std::move(t));
  }
  // Before format 1.2 a top profile had no "slice" value and its "oncpu" was the CPU time of the
  // slices that ended at each stack (switch-out stack), not on-CPU time by stack: read it as
  // slice, so it is never shown as on-CPU.
  bool has_slice = std::any_of(p.value_types.begin(), p.value_types.end(),
                               [](const ProfileValueType& t) { return t.type == "slice"; });
  if (!has_slice)
    for (auto& t : p.value_types)
      if (t.type == "oncpu") t.type = "slice";
  uint64_t nf = c.count("frame count", kMaxFrames);
  for (uint64_t i = 0; i < nf && c.ok(); ++i) {
    ProfileFrame f;
    f.addr = c.varint("frame address");
    f.function = c.string("function");
    f.offset = c.varint("frame offset");
    f.module = c.string("module");
    f.module_path = c.string("module path");
    f.build_id = c.string("build id");
    uint8_t flags = c.u8("frame flags");
    f.kernel = flags & 1;
    f.resolved = flags & 2;
    f.inlined = flags & 4;
    p.frames.push_back(std::move(f));
  }
  uint64_t ns = c.count("stack count", kMaxFrames);
  for (uint64_t i = 0; i < ns && c.ok(); ++i) {
    ProfileSample s;
    s.pid = c.varint32("pid");
    s.tid = c.varint32("tid");
    s.comm = c.string("comm");
    uint64_t k = c.count("stack depth", 4096);
    for (uint64_t j = 0; j < k && c.ok(); ++j) {
      uint64_t start = c.file_offset();
      uint32_t idx = c.varint32("frame index");
      if (c.ok() && idx >= p.frames.size())
        c.fail_at(fmt::format("frame index {} of {} frames", idx, p.frames.size()), start);
      s.frames.push_back(idx);
    }
    uint64_t at = c.file_offset();
    uint64_t nv = c.count("value count", kMaxValueTypes);
    // One value per value type: readers index a sample's values by type.
    if (c.ok() && nv != p.value_types.size())
      c.fail_at(fmt::format("a stack with {} values in a profile of {} value types", nv,
                            p.value_types.size()),
                at);
    for (uint64_t j = 0; j < nv && c.ok(); ++j)
      s.values.push_back(static_cast<int64_t>(unzigzag(c.varint("value"))));
    p.samples.push_back(std::move(s));
  }
  if (c.ok() && !c.at_end()) c.fail("unexpected bytes after the profile");
  return p;
}

// Adds profile increments up into one profile: frames are the same when their contents are,
// stacks when thread, name and frames are.
class IncrementSum {
 public:
  void add(const StackProfile& inc) {
    if (sum_.value_types.empty()) sum_.value_types = inc.value_types;
    sum_.duration_ns = std::max(sum_.duration_ns, inc.duration_ns);
    sum_.start_wall_ns = inc.start_wall_ns;
    std::vector<uint32_t> remap(inc.frames.size());
    for (size_t i = 0; i < inc.frames.size(); ++i) {
      const ProfileFrame& f = inc.frames[i];
      auto key = std::make_tuple(f.addr, f.function, f.offset, f.module, f.module_path, f.build_id,
                                 f.kernel, f.resolved, f.inlined);
      auto [it, fresh] = frames_.try_emplace(key, static_cast<uint32_t>(sum_.frames.size()));
      if (fresh) sum_.frames.push_back(f);
      remap[i] = it->second;
    }
    for (const ProfileSample& s : inc.samples) {
      ProfileSample m;
      m.pid = s.pid;
      m.tid = s.tid;
      m.comm = s.comm;
      for (uint32_t idx : s.frames) m.frames.push_back(remap[idx]);
      auto key = std::make_tuple(m.pid, m.tid, m.comm, m.frames);
      auto [it, fresh] = samples_.try_emplace(key, sum_.samples.size());
      if (fresh) {
        m.values.assign(s.values.size(), 0);
        sum_.samples.push_back(std::move(m));
      }
      auto& values = sum_.samples[it->second].values;
      if (values.size() < s.values.size()) values.resize(s.values.size(), 0);
      for (size_t j = 0; j < s.values.size(); ++j) values[j] += s.values[j];
    }
  }
  bool compatible(const StackProfile& inc) const {
    return sum_.value_types.empty() || inc.value_types == sum_.value_types;
  }
  // The sum; stacks whose increments cancelled out are left out.
  StackProfile take() {
    std::erase_if(sum_.samples, [](const ProfileSample& s) {
      return std::all_of(s.values.begin(), s.values.end(), [](int64_t v) { return v == 0; });
    });
    return std::move(sum_);
  }

 private:
  StackProfile sum_;
  std::map<std::tuple<uint64_t, std::string, uint64_t, std::string, std::string, std::string, bool,
                      bool, bool>,
           uint32_t>
      frames_;
  std::map<std::tuple<uint32_t, uint32_t, std::string, std::vector<uint32_t>>, size_t> samples_;
};

class TopVisitor : public CommonBlocksCollector<TopRecording> {
 public:
  explicit TopVisitor(TopRecording& r) : CommonBlocksCollector(r) {}
  // Each block is decoded completely before anything of it is kept: a block that fails to
  // decode fails `c` and leaves the recording as it was (the reader reports it as damaged).
  Result<bool> on_extension_block(uint16_t type, uint32_t count, PayloadCursor& c) override {
    switch (type) {
      case kTopBlockInterval:
        interval(c);
        return true;
      case kTopBlockSlices:
        slices(c, count);
        return true;
      case kTopBlockProfile: {
        TopCounters counters;
        StackProfile p = get_profile(c, counters);
        if (c.ok()) {
          r_.profile = std::move(p);
          r_.counters = counters;
          r_.has_profile = true;
        }
        return true;
      }
      case kTopBlockProfileIncrement: {
        TopCounters counters;
        StackProfile p = get_profile(c, counters);
        // Increments add up value by value: all of them must have the same value types.
        if (c.ok() && !increments_.compatible(p))
          c.fail("a profile increment whose value types differ from the earlier increments'");
        if (c.ok()) {
          increments_.add(p);
          if (p.duration_ns >= last_increment_end_) {
            last_increment_end_ = p.duration_ns;
            last_counters_ = counters;
          }
          ++r_.increments;
        }
        return true;
      }
      default:
        return false;  // a block of a newer minor version
    }
  }
  std::string extension_block_name(uint16_t type) const override {
    switch (type) {
      case kTopBlockInterval:
        return "top interval";
      case kTopBlockSlices:
        return "top slices";
      case kTopBlockProfile:
        return "top profile";
      case kTopBlockProfileIncrement:
        return "top profile increment";
      default:
        return fmt::format("type {}", type);
    }
  }

  // Without a profile block (kscope was stopped before it could write one), the increments.
  void finish() {
    if (r_.has_profile || r_.increments == 0) return;
    r_.profile = increments_.take();
    r_.counters = last_counters_;
    r_.has_profile = true;
    r_.profile_from_increments = true;
  }

 private:
  void interval(PayloadCursor& c) {
    TopInterval iv;
    iv.end_ns = c.varint("interval end");
    iv.interval_ns = c.varint("interval length");
    iv.switches_all = c.varint("switch count");
    uint64_t busy = c.varint("cpu busy");
    iv.cpu_busy = busy == 0 ? -1 : static_cast<double>(busy - 1) / 1e6;
    uint64_t n = c.count("row count", kMaxRows);
    for (uint64_t i = 0; i < n && c.ok(); ++i) {
      TopIntervalRow row;
      row.pid = c.varint32("pid");
      row.tid = c.varint32("tid");
      row.comm = c.string("comm");
      row.values = get_values(c);
      iv.rows.push_back(std::move(row));
    }
    // Since 1.2: the rows' off-CPU time, in row order (absent in older files).
    if (c.ok() && !c.at_end()) {
      for (auto& row : iv.rows) row.values.offcpu_ns = c.varint("row off-CPU time");
      iv.has_offcpu = c.ok();
    }
    if (c.ok() && !c.at_end()) c.fail("unexpected bytes after the rows");
    if (c.ok()) r_.intervals.push_back(std::move(iv));
  }

  void slices(PayloadCursor& c, uint32_t count) {
    if (count > c.remaining() / 5 + 1) c.fail(fmt::format("impossible slice count {}", count));
    std::vector<TopSlice> block;
    uint64_t start = 0;
    for (uint32_t i = 0; i < count && c.ok(); ++i) {
      TopSlice s;
      s.tid = c.varint32("tid");
      s.pid = c.varint32("pid");
      s.cpu = c.varint32("cpu");
      start += unzigzag(c.varint("slice start"));
      s.start_ns = start;
      s.end_ns = start + c.varint("slice length");
      s.voluntary = (c.u8("slice flags") & 1) != 0;
      if (c.ok()) block.push_back(std::move(s));
    }
    if (c.ok() && !c.at_end()) c.fail("unexpected bytes after the slices");
    if (c.ok()) r_.slices.insert(r_.slices.end(), block.begin(), block.end());
  }

  IncrementSum increments_;
  uint64_t last_increment_end_ = 0;
  TopCounters last_counters_;
};

}  // namespace

Result<std::unique_ptr<TopRecordingWriter>> TopRecordingWriter::create(const std::string& path,
                                                                       const RecordingMeta& meta) {
  KSCOPE_ASSIGN_OR_RETURN(auto w, RecordingWriter::create(path, meta, {}, RecordingKind::kTop));
  return std::unique_ptr<TopRecordingWriter>(new TopRecordingWriter(std::move(w)));
}

Status TopRecordingWriter::add_thread(const ThreadInfo& t) { return writer_.add_thread(t); }
Status TopRecordingWriter::add_mappings(const MappingSnapshot& m) {
  return writer_.add_mappings(m);
}

Status TopRecordingWriter::add_slice(const TopSlice& s) {
  put_varint(slice_payload_, s.tid);
  put_varint(slice_payload_, s.pid);
  put_varint(slice_payload_, s.cpu);
  put_varint(slice_payload_, zigzag(s.start_ns - last_slice_start_));
  put_varint(slice_payload_, s.end_ns >= s.start_ns ? s.end_ns - s.start_ns : 0);
  slice_payload_.push_back(s.voluntary ? 1 : 0);
  last_slice_start_ = s.start_ns;
  ++slice_count_;
  ++slices_total_;
  if (slice_count_ >= kSlicesPerBlock) return flush_slices();
  return {};
}

Status TopRecordingWriter::flush_slices() {
  if (slice_count_ == 0) return {};
  KSCOPE_TRY(writer_.add_extension_block(kTopBlockSlices, slice_count_, slice_payload_));
  slice_payload_.clear();
  slice_count_ = 0;
  last_slice_start_ = 0;  // each block decodes on its own
  return {};
}

Status TopRecordingWriter::add_interval(const TopTable& table, uint64_t start_ns) {
  std::map<std::pair<uint32_t, uint32_t>, TopIntervalRow> rows;
  for (const auto& r : table.rows) {
    auto& row = rows[{r.pid, r.tid}];
    row.pid = r.pid;
    row.tid = r.tid;
    row.comm = r.comm;
    row.values += r.values;
  }
  Bytes out;
  put_varint(out, table.end_time_ns > start_ns ? table.end_time_ns - start_ns : 0);
  put_varint(out, table.interval_ns);
  put_varint(out, table.switches_all);
  put_varint(
      out, table.cpu_busy < 0 ? 0 : static_cast<uint64_t>(std::llround(table.cpu_busy * 1e6)) + 1);
  put_varint(out, rows.size());
  for (const auto& [key, row] : rows) {
    put_varint(out, row.pid);
    put_varint(out, row.tid);
    put_string(out, row.comm);
    put_values(out, row.values);
  }
  // After the rows, so readers of 1.0/1.1 files need no other layout: each row's off-CPU time.
  for (const auto& [key, row] : rows) put_varint(out, row.values.offcpu_ns);
  ++intervals_total_;
  KSCOPE_TRY(flush_slices());
  return writer_.add_extension_block(kTopBlockInterval, 1, out);
}

Status TopRecordingWriter::flush() {
  KSCOPE_TRY(flush_slices());
  return writer_.flush();
}

Status TopRecordingWriter::add_profile_increment(const StackProfile& increment,
                                                 const TopCounters& counters) {
  Bytes out;
  put_profile(out, increment, counters);
  if (out.size() > kMaxBlockPayload)
    return make_error("a top profile increment is too large for one recording block");
  ++increments_total_;
  KSCOPE_TRY(flush_slices());
  return writer_.add_extension_block(kTopBlockProfileIncrement, 1, out);
}

Status TopRecordingWriter::finish(const StackProfile& p, const TopCounters& counters) {
  KSCOPE_TRY(flush_slices());
  Bytes out;
  put_profile(out, p, counters);
  if (out.size() > kMaxBlockPayload)
    return make_error("the top profile is too large for one recording block");
  KSCOPE_TRY(writer_.add_extension_block(kTopBlockProfile, 1, out));
  RecordingTrailer trailer;
  trailer.drop_counters = {{"kernel_stack_collisions", counters.kstack_collisions},
                           {"user_stack_collisions", counters.ustack_collisions},
                           {"accounts_full", counters.accounts_full},
                           {"task_storage_failures", counters.storage_failures},
                           {"slice_records_lost", counters.slices_lost},
                           {"process_events_lost", counters.events_lost},
                           {"bpf_program_misses", counters.prog_misses},
                           {"user_stacks_lost_map_full", counters.ustacks_full}};
  return writer_.finish(trailer);
}

std::string TopRecordingWriter::describe() const {
  return fmt::format("{} intervals, {} slices, {} profile increments, {} bytes", intervals_total_,
                     slices_total_, increments_total_, writer_.bytes_written());
}

TopProfileValues profile_values(const TopValues& v) {
  return {static_cast<int64_t>(v.oncpu_ns),     static_cast<int64_t>(v.switches),
          static_cast<int64_t>(v.runq_wait_ns), static_cast<int64_t>(v.voluntary),
          static_cast<int64_t>(v.involuntary),  static_cast<int64_t>(v.oncpu_samples),
          static_cast<int64_t>(v.offcpu_ns),    static_cast<int64_t>(v.slice_ns)};
}

std::vector<std::pair<TopAccountKey, TopProfileValues>> ProfileIncrements::next(
    const Totals& totals) {
  std::vector<std::pair<TopAccountKey, TopProfileValues>> out;
  auto emit = [&](const TopAccountKey& k, const TopProfileValues& now) {
    TopProfileValues& before = written_[k];
    TopProfileValues d{};
    bool moved = false;
    for (size_t i = 0; i < d.size(); ++i) {
      // Modulo 2^64, so the increments add up exactly whatever the values.
      d[i] = static_cast<int64_t>(static_cast<uint64_t>(now[i]) - static_cast<uint64_t>(before[i]));
      moved |= d[i] != 0;
    }
    if (!moved) return;
    before = now;
    out.emplace_back(k, d);
  };
  for (const auto& [k, v] : totals) emit(k, profile_values(v));
  // An account that disappeared from the totals (not expected: exited threads stay in them)
  // goes back to zero.
  std::vector<TopAccountKey> gone;
  for (const auto& [k, v] : written_)
    if (!totals.count(k)) gone.push_back(k);
  for (const auto& k : gone) emit(k, TopProfileValues{});
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

void ProfileIncrements::rename(const TopAccountKey& from, const TopAccountKey& to) {
  auto it = written_.find(from);
  if (it == written_.end() || from == to) return;
  TopProfileValues moved = it->second;
  written_.erase(it);
  TopProfileValues& dest = written_[to];
  for (size_t i = 0; i < dest.size(); ++i)
    dest[i] =
        static_cast<int64_t>(static_cast<uint64_t>(dest[i]) + static_cast<uint64_t>(moved[i]));
}

Result<TopRecording> read_top_recording(const std::string& path) {
  KSCOPE_ASSIGN_OR_RETURN(RecordingKind kind, recording_kind(path));
  if (kind != RecordingKind::kTop)
    return make_error(
        fmt::format("{} is a 'kscope faults' recording, not a 'kscope top' one", path));
  TopRecording r;
  TopVisitor visitor(r);
  KSCOPE_ASSIGN_OR_RETURN(r.summary, visit_recording(path, visitor));
  visitor.finish();
  std::map<uint32_t, std::string> names;
  for (const auto& t : r.threads) names[t.tid] = t.comm;
  for (auto& s : r.slices) {
    auto it = names.find(s.tid);
    if (it != names.end()) s.comm = it->second;
  }
  return r;
}

Result<RecordingKind> recording_kind(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return make_error(fmt::format("cannot open recording {}", path), errno);
  std::array<uint8_t, 20> h{};
  ssize_t n = ::pread(fd.get(), h.data(), h.size(), 0);
  if (n < 0) return make_error(fmt::format("cannot read recording {}", path), errno);
  static const uint8_t kMagic[8] = {'K', 'S', 'C', 'O', 'P', 'E', 0, 0};
  if (n < 14 || !std::equal(std::begin(kMagic), std::end(kMagic), h.begin()))
    return make_error(fmt::format("{} is not a kscope recording (bad magic at byte 0)", path));
  uint16_t kind = get_u16(&h[12]);
  if (kind != static_cast<uint16_t>(RecordingKind::kFaults) &&
      kind != static_cast<uint16_t>(RecordingKind::kTop))
    return make_error(
        fmt::format("recording {} is of kind {}, which this kscope does not know", path, kind));
  return static_cast<RecordingKind>(kind);
}

}  // namespace kscope
