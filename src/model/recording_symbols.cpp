#include "model/recording_symbols.h"

#include <map>
#include <string>
#include <tuple>

namespace kscope {

using namespace wire;

namespace {
constexpr uint8_t kSymbolKernel = 0x1;
constexpr uint8_t kSymbolResolved = 0x2;
constexpr uint8_t kSymbolKnownFlags = kSymbolKernel | kSymbolResolved;
}  // namespace

// Per entry: flags (u8), pid, ip, module reference, function, offset. Modules (name, path,
// build-id) repeat across entries, so each block has a table of them: a reference equal to the
// table's size introduces a new module (its three strings follow), a smaller one names an
// earlier module of the same block.
Bytes encode_symbols(const std::vector<StoredSymbol>& symbols, size_t begin, size_t& end) {
  Bytes out;
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> modules;
  size_t i = begin;
  for (; i < end && i - begin < kMaxSymbolsPerBlock && out.size() < kSymbolsBlockBytes; ++i) {
    const StoredSymbol& s = symbols[i];
    uint8_t flags = (s.kernel ? kSymbolKernel : 0) | (s.resolved ? kSymbolResolved : 0);
    out.push_back(flags);
    put_varint(out, s.kernel ? 0 : s.pid);
    put_varint(out, s.ip);
    auto key = std::make_tuple(s.module, s.module_path, s.build_id);
    auto [it, fresh] = modules.emplace(key, modules.size());
    put_varint(out, it->second);
    if (fresh) {
      put_string(out, s.module);
      put_string(out, s.module_path);
      put_string(out, s.build_id);
    }
    put_string(out, s.function);
    put_varint(out, s.offset);
  }
  end = i;
  return out;
}

void decode_symbols(PayloadCursor& c, uint32_t count, std::vector<StoredSymbol>& out) {
  if (count > kMaxSymbolsPerBlock || count > c.remaining() / 6) {
    c.fail(fmt::format("impossible symbol count {} for a {}-byte block", count, c.remaining()));
    return;
  }
  struct Module {
    std::string module, path, build_id;
  };
  std::vector<Module> modules;
  out.reserve(out.size() + count);
  for (uint32_t i = 0; i < count && c.ok(); ++i) {
    uint64_t at = c.file_offset();
    uint8_t flags = c.u8("symbol flags");
    if (c.ok() && (flags & ~kSymbolKnownFlags)) {
      c.fail_at(fmt::format("unknown symbol flags {:#x}", flags), at);
      return;
    }
    StoredSymbol s;
    s.kernel = flags & kSymbolKernel;
    uint64_t pid = c.varint("symbol pid");
    if (c.ok() && pid > UINT32_MAX) c.fail_at(fmt::format("pid {} out of range", pid), at);
    s.pid = static_cast<uint32_t>(pid);
    s.ip = c.varint("symbol address");
    uint64_t ref = c.varint("symbol module reference");
    if (c.ok() && ref > modules.size()) {
      c.fail_at(
          fmt::format("module reference {} past the {} modules of the block", ref, modules.size()),
          at);
    }
    if (!c.ok()) return;
    if (ref == modules.size()) {
      Module m;
      m.module = c.string("symbol module");
      m.path = c.string("symbol module path");
      m.build_id = c.string("symbol build-id");
      modules.push_back(std::move(m));
    }
    const Module& m = modules[ref];
    s.module = m.module;
    s.module_path = m.path;
    s.build_id = m.build_id;
    s.function = c.string("symbol function");
    s.offset = c.varint("symbol offset");
    s.resolved = (flags & kSymbolResolved) != 0;
    if (c.ok() && s.resolved == s.function.empty()) {
      c.fail_at("a resolved symbol without a name, or a name on an unresolved one", at);
    }
    if (c.ok()) out.push_back(std::move(s));
  }
}

// Per entry: path, build-id, source, detail, description (strings), addresses named (varint).
Bytes encode_symbol_sources(const std::vector<BinarySymbolSource>& sources) {
  Bytes out;
  for (const BinarySymbolSource& s : sources) {
    put_string(out, s.path);
    put_string(out, s.build_id);
    put_string(out, s.source);
    put_string(out, s.detail);
    put_string(out, s.description);
    put_varint(out, s.addresses_named);
  }
  return out;
}

void decode_symbol_sources(PayloadCursor& c, uint32_t count, std::vector<BinarySymbolSource>& out) {
  out.clear();
  if (count > kMaxSymbolSources || count > c.remaining() / 6) {
    c.fail(
        fmt::format("impossible symbol source count {} for a {}-byte block", count, c.remaining()));
    return;
  }
  out.reserve(count);
  for (uint32_t i = 0; i < count && c.ok(); ++i) {
    BinarySymbolSource s;
    s.path = c.string("symbol source path");
    s.build_id = c.string("symbol source build-id");
    s.source = c.string("symbol source");
    s.detail = c.string("symbol source detail");
    s.description = c.string("symbol source description");
    s.addresses_named = c.varint("addresses named");
    if (c.ok()) out.push_back(std::move(s));
  }
  if (!c.ok()) out.clear();
}

}  // namespace kscope
