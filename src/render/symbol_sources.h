// The "symbol sources" table: which source named each binary of a faults recording (its own
// .symtab, a build-id debug file, .gnu_debuglink, MiniDebugInfo, debuginfod, .dynsym, a JIT perf
// map, or nothing), and how many distinct addresses each named. For -v (text), the HTML report
// and its JSON data.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "model/recording.h"
#include "symbols/symbolizer.h"

namespace kscope {

struct SymbolSourcesView {
  std::vector<BinarySymbolSource> rows;
  // "recording": named when the recording was made, on the machine that made it (its symbol
  // sources block); "report": named now, from the files of the machine reading the recording.
  std::string named_at;
  std::string note;  // one sentence for the reader; empty when there is nothing to add
};

// The table for a faults recording, after `symbolizer` named its addresses (the report or the
// export resolved them). Rows the recording stored come first; addresses it did not store
// names for (a recording cut short, or made before kscope stored names) are named at report
// time, and the note says so.
SymbolSourcesView symbol_sources_view(const Recording& recording, const Symbolizer& symbolizer);

// One line per row: "kscope: symbols: PATH build-id ID: SOURCE DETAIL; N addresses named;
// DESCRIPTION", and the note (when set) as a first line.
std::string symbol_sources_text(const SymbolSourcesView& view);

// A report panel (id "symbol-sources") with the table and the note.
std::string symbol_sources_html(const SymbolSourcesView& view);

nlohmann::json symbol_sources_json(const SymbolSourcesView& view);

}  // namespace kscope
