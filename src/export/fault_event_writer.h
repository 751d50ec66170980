// Writes one line per fault to --events: text (aligned columns), csv or jsonl. The field set and
// order is the output contract:
// time_ns,pid,tid,comm,addr,ip,access,mode,kind,segment,latency_ns,cpu[,symbol]
// (symbol only when asked for: `kscope faults --events F --symbols`), then `stack` with
// `kscope faults --stacks` and in exports of recordings with stacks: the fault's frames LEAF
// FIRST (perf script's order), ';'-separated (symbols/fault_stack_frames.h).
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <string>
#include <string_view>

#include "model/fault_record.h"
#include "util/result.h"

namespace kscope {

enum class EventFormat { kText, kCsv, kJsonl };
Result<EventFormat> parse_event_format(std::string_view name);

inline constexpr std::string_view kFaultCsvHeader =
    "time_ns,pid,tid,comm,addr,ip,access,mode,kind,segment,latency_ns,cpu";
inline constexpr std::string_view kFaultSymbolField = "symbol";
inline constexpr std::string_view kFaultStackField = "stack";

class FaultEventWriter {
 public:
  // Does not take ownership of `out`. With `with_symbols`, each record ends with the symbol of
  // its instruction (`function+0xoff (module)`) given to write().
  // With `with_stack`, each record ends with its stack field given to write().
  FaultEventWriter(std::FILE* out, EventFormat format, bool with_symbols = false,
                   bool with_stack = false);
  ~FaultEventWriter();
  void write_header();
  void write(const FaultRecord& r, std::string_view comm, std::string_view symbol = {},
             std::string_view stack = {});
  // Writes buffered lines; returns an error if the stream failed (disk full, closed pipe).
  Status flush();

  // Formatting of one record, for tests and other exporters.
  // `symbol` / `stack` null: no such field.
  static void format(fmt::memory_buffer& buf, EventFormat format, const FaultRecord& r,
                     std::string_view comm, const std::string_view* symbol = nullptr,
                     const std::string_view* stack = nullptr);

 private:
  std::FILE* out_;
  EventFormat format_;
  bool with_symbols_ = false;
  bool with_stack_ = false;
  fmt::memory_buffer buf_;
  bool failed_ = false;
};

// CSV field quoting (RFC 4180) and JSON string escaping for names that may hold anything.
void append_csv_field(fmt::memory_buffer& buf, std::string_view s);
void append_json_string(fmt::memory_buffer& buf, std::string_view s);

}  // namespace kscope
