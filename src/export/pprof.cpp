#include "export/pprof.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "util/gzip.h"

namespace kscope {

namespace {

// Minimal protobuf writer: varints, length-delimited fields, packed repeated varints.
class ProtoWriter {
 public:
  void varint(uint64_t v) {
    while (v >= 0x80) {
      buf_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    buf_.push_back(static_cast<char>(v));
  }
  void tag(uint32_t field, uint32_t wire_type) { varint((uint64_t{field} << 3) | wire_type); }
  // Proto3 omits zero scalars; so do we (readers default them to 0).
  void uint_field(uint32_t field, uint64_t v) {
    if (v == 0) return;
    tag(field, 0);
    varint(v);
  }
  void int_field(uint32_t field, int64_t v) { uint_field(field, static_cast<uint64_t>(v)); }
  void bool_field(uint32_t field, bool v) { uint_field(field, v ? 1 : 0); }
  void bytes_field(uint32_t field, const std::string& bytes) {
    tag(field, 2);
    varint(bytes.size());
    buf_ += bytes;
  }
  void message(uint32_t field, const ProtoWriter& m) { bytes_field(field, m.buf_); }
  template <typename T>
  void packed(uint32_t field, const std::vector<T>& values) {
    if (values.empty()) return;
    ProtoWriter inner;
    for (T v : values) inner.varint(static_cast<uint64_t>(v));
    bytes_field(field, inner.buf_);
  }
  const std::string& bytes() const { return buf_; }

 private:
  std::string buf_;
};

class StringTable {
 public:
  StringTable() { index(""); }
  int64_t index(const std::string& s) {
    auto [it, inserted] = ids_.emplace(s, static_cast<int64_t>(strings_.size()));
    if (inserted) strings_.push_back(s);
    return it->second;
  }
  const std::vector<std::string>& strings() const { return strings_; }

 private:
  std::unordered_map<std::string, int64_t> ids_;
  std::vector<std::string> strings_;
};

}  // namespace

Result<std::string> encode_pprof(const StackProfile& profile, const PprofOptions& options) {
  if (profile.value_types.empty()) return make_error("pprof: the profile has no value types");
  if (options.default_value_index >= profile.value_types.size())
    return make_error("pprof: no value type " + std::to_string(options.default_value_index));
  StringTable strings;
  ProtoWriter out;

  for (const auto& vt : profile.value_types) {
    ProtoWriter m;
    m.int_field(1, strings.index(vt.type));
    m.int_field(2, strings.index(vt.unit));
    out.message(1, m);
  }

  // Mappings: one per module (path, or module name when the path is unknown).
  struct MappingInfo {
    uint64_t id = 0;
    uint64_t lo = UINT64_MAX, hi = 0;
    std::string filename, build_id;
    bool any_resolved = false;
  };
  std::map<std::string, MappingInfo> mappings;
  std::vector<uint64_t> mapping_of_frame(profile.frames.size(), 0);
  for (size_t i = 0; i < profile.frames.size(); ++i) {
    const ProfileFrame& f = profile.frames[i];
    std::string key = f.kernel
                          ? "[kernel.kallsyms]"
                          : (!f.module_path.empty() ? f.module_path
                                                    : (f.module.empty() ? "[unknown]" : f.module));
    auto [it, inserted] = mappings.emplace(key, MappingInfo{});
    MappingInfo& m = it->second;
    if (inserted) {
      m.id = mappings.size();
      m.filename = key;
      m.build_id = f.build_id;
    }
    m.lo = std::min(m.lo, f.addr);
    m.hi = std::max(m.hi, f.addr + 1);
    m.any_resolved |= f.resolved;
    mapping_of_frame[i] = m.id;
  }

  // Functions: one per distinct (name, file).
  std::map<std::pair<std::string, std::string>, uint64_t> functions;
  std::vector<uint64_t> function_of_frame(profile.frames.size(), 0);
  for (size_t i = 0; i < profile.frames.size(); ++i) {
    const ProfileFrame& f = profile.frames[i];
    std::string name = f.resolved && !f.function.empty() ? f.function : f.label();
    if (f.kernel && !f.resolved) name += " [kernel]";
    auto [it, inserted] =
        functions.emplace(std::make_pair(name, f.module_path), functions.size() + 1);
    function_of_frame[i] = it->second;
  }

  for (const auto& sample : profile.samples) {
    ProtoWriter m;
    std::vector<uint64_t> locs;
    for (uint32_t fi : sample.frames)
      if (fi < profile.frames.size()) locs.push_back(fi + 1);  // location id = frame index + 1
    std::vector<int64_t> values = sample.values;
    values.resize(profile.value_types.size(), 0);
    m.packed(1, locs);
    m.packed(2, values);
    auto label_num = [&](const char* key, int64_t v) {
      ProtoWriter l;
      l.int_field(1, strings.index(key));
      l.int_field(3, v);
      m.message(3, l);
    };
    auto label_str = [&](const char* key, const std::string& v) {
      ProtoWriter l;
      l.int_field(1, strings.index(key));
      l.int_field(2, strings.index(v));
      m.message(3, l);
    };
    if (sample.pid) label_num("pid", sample.pid);
    if (sample.tid) label_num("tid", sample.tid);
    if (!sample.comm.empty()) label_str("comm", sample.comm);
    out.message(2, m);
  }

  // pprof treats the first mapping as the main binary ("File:" in its reports): list the
  // mappings by the default value of the samples in them, largest first.
  std::vector<int64_t> weight(mappings.size() + 1, 0);
  for (const auto& sample : profile.samples) {
    if (sample.frames.empty() || sample.frames[0] >= profile.frames.size()) continue;
    if (options.default_value_index < sample.values.size())
      weight[mapping_of_frame[sample.frames[0]]] += sample.values[options.default_value_index];
  }
  std::vector<const MappingInfo*> by_id(mappings.size());
  for (const auto& [key, m] : mappings) by_id[m.id - 1] = &m;
  std::stable_sort(by_id.begin(), by_id.end(), [&](const MappingInfo* a, const MappingInfo* b) {
    return weight[a->id] > weight[b->id];
  });
  for (const MappingInfo* m : by_id) {
    ProtoWriter w;
    w.uint_field(1, m->id);
    w.uint_field(2, m->lo == UINT64_MAX ? 0 : m->lo);
    w.uint_field(3, m->hi);
    w.int_field(5, strings.index(m->filename));
    w.int_field(6, strings.index(m->build_id));
    // has_functions tells pprof the names are already there, so it does not try to symbolize.
    w.bool_field(7, true);
    out.message(3, w);
  }

  for (size_t i = 0; i < profile.frames.size(); ++i) {
    ProtoWriter w;
    w.uint_field(1, i + 1);
    w.uint_field(2, mapping_of_frame[i]);
    w.uint_field(3, profile.frames[i].addr);
    ProtoWriter line;
    line.uint_field(1, function_of_frame[i]);
    w.message(4, line);
    out.message(4, w);
  }

  std::vector<const std::pair<const std::pair<std::string, std::string>, uint64_t>*> fn_by_id(
      functions.size());
  for (const auto& entry : functions) fn_by_id[entry.second - 1] = &entry;
  for (const auto* entry : fn_by_id) {
    ProtoWriter w;
    w.uint_field(1, entry->second);
    w.int_field(2, strings.index(entry->first.first));
    w.int_field(3, strings.index(entry->first.first));
    w.int_field(4, strings.index(entry->first.second));
    out.message(5, w);
  }

  // Strings must be interned before the table is written; everything above did that.
  int64_t default_type = strings.index(profile.value_types[options.default_value_index].type);
  for (const std::string& s : strings.strings()) out.bytes_field(6, s);
  out.int_field(9, static_cast<int64_t>(profile.start_wall_ns));
  out.int_field(10, static_cast<int64_t>(profile.duration_ns));
  out.int_field(14, default_type);

  if (!options.gzip) return out.bytes();
  return gzip_compress(out.bytes());
}

}  // namespace kscope
