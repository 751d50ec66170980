#include "render/symbol_sources.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "render/svg.h"
#include "util/units.h"

namespace kscope {

SymbolSourcesView symbol_sources_view(const Recording& recording, const Symbolizer& symbolizer) {
  SymbolSourcesView view;
  std::vector<BinarySymbolSource> now = symbolizer.binary_sources();
  uint64_t named_now = 0;
  for (const BinarySymbolSource& s : now) named_now += s.addresses_named;
  if (!recording.symbol_sources.empty()) {
    view.rows = recording.symbol_sources;
    view.named_at = "recording";
    view.note = fmt::format("Names stored in the recording when it was made, on host {}.",
                            recording.meta.hostname);
    if (named_now > 0) {
      // Addresses the recording had no name for were named here (should not happen for a
      // recording kscope finished; said so rather than hidden).
      for (BinarySymbolSource& s : now) s.source += " (at report time)";
      view.rows.insert(view.rows.end(), now.begin(), now.end());
      view.note += fmt::format(
          " {} addresses it holds no name for were named at report time from this machine's "
          "files (rows marked 'at report time').",
          named_now);
    }
    return view;
  }
  view.rows = std::move(now);
  view.named_at = "report";
  if (recording.symbols.empty()) {
    view.note =
        recording.summary.complete
            ? "The recording holds no names (made by kscope before 1.1): its addresses were "
              "named at report time from this machine's files, which may differ from those of "
              "the recorded run."
            : "The recording was cut short (no trailer: kscope was killed or the machine "
              "stopped), before it stored the names of its addresses: they were named at report "
              "time from this machine's files, which may differ from those of the recorded run.";
  } else {
    view.note =
        "Names stored in the recording (format 1.1, which does not say where they came from); "
        "the rows below are only the binaries named at report time.";
  }
  return view;
}

std::string symbol_sources_text(const SymbolSourcesView& view) {
  std::string out;
  if (!view.note.empty()) out += "kscope: symbols: " + view.note + "\n";
  for (const BinarySymbolSource& s : view.rows) {
    out += fmt::format("kscope: symbols: {}{}{}: {}{}{}; {} addresses named{}{}\n", s.path,
                       s.build_id.empty() ? "" : " build-id ", s.build_id, s.source,
                       s.detail.empty() ? "" : " ", s.detail, s.addresses_named,
                       s.description.empty() ? "" : "; ", s.description);
  }
  return out;
}

std::string symbol_sources_html(const SymbolSourcesView& view) {
  std::string o =
      "<section class=\"panel\" id=\"symbol-sources\"><h2>Symbol sources</h2>\n<p class=\"note\">"
      "Where the names of each binary came from: its own .symtab, a debug file found by build-id "
      "or .gnu_debuglink, MiniDebugInfo, debuginfod, .dynsym (exported functions only), a JIT "
      "perf map, or none (shown as module+0xoffset). " +
      xml_escape(view.note) +
      "</p>\n<table class=\"wide\"><tr><th>binary</th><th>build-id</th><th>source</th>"
      "<th>debug file / URL</th><th>addresses named</th><th>details</th></tr>\n";
  for (const BinarySymbolSource& s : view.rows) {
    o += fmt::format(
        "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td "
        "class=\"mono\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>\n",
        xml_escape(s.path), xml_escape(s.build_id), xml_escape(s.source), xml_escape(s.detail),
        format_count(s.addresses_named), xml_escape(s.description));
  }
  o += "</table></section>\n";
  return o;
}

nlohmann::json symbol_sources_json(const SymbolSourcesView& view) {
  nlohmann::json rows = nlohmann::json::array();
  for (const BinarySymbolSource& s : view.rows) {
    rows.push_back({{"path", s.path},
                    {"build_id", s.build_id},
                    {"source", s.source},
                    {"detail", s.detail},
                    {"description", s.description},
                    {"addresses_named", s.addresses_named}});
  }
  return {{"named_at", view.named_at}, {"note", view.note}, {"binaries", rows}};
}

}  // namespace kscope
