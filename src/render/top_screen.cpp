#include "render/top_screen.h"

// Real functions instead of ncurses' macros (move(), erase(), timeout() would clash with std::).
#define NCURSES_NOMACROS 1
#include <curses.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <clocale>
#include <cstdlib>
#include <map>
#include <optional>
#include <string_view>

namespace kscope {

namespace {

// ---- text that cannot break the screen -------------------------------------------------------
//
// The layout counts one column per code point. That holds for the code points kept here; control
// characters (a comm can contain escape sequences), invalid UTF-8 and scripts with double-width
// or zero-width characters become '?', so a line never wraps or moves the cursor.

bool single_width(uint32_t cp) {
  return (cp >= 0x20 && cp < 0x7f) || (cp >= 0xa0 && cp < 0x300) || (cp >= 0x370 && cp < 0x1100);
}

// Decodes one UTF-8 sequence at s[i]; returns its length, 0 when invalid.
size_t decode_utf8(std::string_view s, size_t i, uint32_t& cp) {
  auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t len = b0 >= 0xf0 && b0 < 0xf5 ? 4 : b0 >= 0xe0 ? 3 : b0 >= 0xc2 && b0 < 0xe0 ? 2 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  cp = b0 & (0x7f >> len);
  for (size_t k = 1; k < len; ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) return 0;
  return len;
}

std::string sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t len = decode_utf8(s, i, cp);
    if (len == 0) {
      out += '?';
      ++i;
      continue;
    }
    if (single_width(cp)) {
      out.append(s.substr(i, len));
    } else {
      out += '?';
    }
    i += len;
  }
  return out;
}

// Columns of sanitized text: its code points.
int columns(std::string_view s) {
  int n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

// The first `width` columns of sanitized text.
std::string fit(std::string_view s, int width) {
  if (width <= 0) return {};
  int n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xc0) != 0x80 && n++ == width) {
      return std::string(s.substr(0, i));
    }
  }
  return std::string(s);
}

std::string align(std::string_view s, int width, bool left) {
  std::string t = fit(s, width);
  std::string pad(static_cast<size_t>(width - columns(t)), ' ');
  return left ? t + pad : pad + t;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string s;
  for (const auto& p : parts) {
    if (p.empty()) continue;
    if (!s.empty()) s += sep;
    s += p;
  }
  return s;
}

// ---- the table's columns -----------------------------------------------------------------------

enum class Col {
  kRank,
  kPid,
  kTid,
  kComm,
  kSwitches,
  kVol,
  kInvol,
  kOnCpu,
  kCpuPct,
  kAvgSlice,
  kRunqWait,
  kOffCpu,
  kSlice,  // only while sorted by it: CPU time of the slices that ended at a stack
};

struct ColumnSpec {
  Col col;
  const char* title;
  int width;  // room for the title plus the sort mark '*'
  bool left;
};

constexpr ColumnSpec kColumns[] = {
    {Col::kRank, "RANK", 4, false},
    {Col::kPid, "PID", 7, false},
    {Col::kTid, "TID", 7, false},
    {Col::kComm, "COMM", 16, true},
    {Col::kSwitches, "SWITCHES", 9, false},
    {Col::kVol, "VOL", 7, false},
    {Col::kInvol, "INVOL", 7, false},
    {Col::kOnCpu, "ON-CPU", 8, false},
    {Col::kCpuPct, "%CPU", 6, false},
    {Col::kAvgSlice, "AVG SLICE", 10, false},
    {Col::kRunqWait, "RUNQ WAIT", 10, false},
    {Col::kOffCpu, "OFF-CPU", 9, false},
    {Col::kSlice, "SLICE", 9, false},
};

// When the terminal is too narrow for every column, these go first (COMM and the sorted column
// stay; COMM then shrinks down to kMinCommWidth, and what still does not fit is cut off).
constexpr Col kDropOrder[] = {Col::kRank,     Col::kOffCpu, Col::kVol,      Col::kInvol,
                              Col::kAvgSlice, Col::kTid,    Col::kRunqWait, Col::kSwitches,
                              Col::kPid,      Col::kCpuPct, Col::kOnCpu};
constexpr int kMinCommWidth = 6;
constexpr int kGutter = 1;        // '>' marks the selected row
constexpr int kFrameIndent = 6;   // inline stack frames under an expanded row
constexpr int kPaneMinBody = 14;  // body lines needed before the bottom pane appears

std::optional<Col> sort_column(TopSortKey k) {
  switch (k) {
    case TopSortKey::kOnCpu:
      return Col::kOnCpu;
    case TopSortKey::kSwitches:
      return Col::kSwitches;
    case TopSortKey::kVoluntary:
      return Col::kVol;
    case TopSortKey::kInvoluntary:
      return Col::kInvol;
    case TopSortKey::kAvgSlice:
      return Col::kAvgSlice;
    case TopSortKey::kRunqWait:
      return Col::kRunqWait;
    case TopSortKey::kPid:
      return Col::kPid;
    case TopSortKey::kComm:
      return Col::kComm;
    case TopSortKey::kOffCpu:
      return Col::kOffCpu;
    case TopSortKey::kSlice:
      return Col::kSlice;
  }
  return std::nullopt;
}

struct Column {
  ColumnSpec spec;
  int width;
};

std::vector<Column> choose_columns(int width, std::optional<Col> sorted) {
  std::vector<Column> cols;
  for (const auto& spec : kColumns)
    if (spec.col != Col::kSlice || sorted == Col::kSlice) cols.push_back({spec, spec.width});
  auto total = [&] {
    int t = kGutter;
    for (const auto& c : cols) t += 1 + c.width;
    return t;
  };
  for (Col drop : kDropOrder) {
    if (total() <= width) break;
    if (drop == sorted) continue;
    std::erase_if(cols, [&](const Column& c) { return c.spec.col == drop; });
  }
  const int over = total() - width;
  for (auto& c : cols) {
    if (c.spec.col == Col::kComm && over > 0) c.width = std::max(kMinCommWidth, c.width - over);
  }
  return cols;
}

std::string cell(Col col, const TopTable& table, size_t index) {
  const TopRow& row = table.rows[index];
  switch (col) {
    case Col::kRank:
      return std::to_string(index + 1);
    case Col::kPid:
      return table.group_by == TopGroupBy::kComm ? "-" : std::to_string(row.pid);
    case Col::kTid:
      return table.group_by == TopGroupBy::kPid || table.group_by == TopGroupBy::kComm
                 ? "-"
                 : std::to_string(row.tid);
    case Col::kComm:
      return sanitize(row.comm);
    case Col::kSwitches:
      return format_count(row.values.switches);
    case Col::kVol:
      return format_count(row.values.voluntary);
    case Col::kInvol:
      return format_count(row.values.involuntary);
    case Col::kOnCpu:
      return format_duration_ns(row.values.oncpu_ns);
    case Col::kCpuPct:
      return table.interval_ns
                 ? fmt::format("{:.1f}", 100.0 * static_cast<double>(row.values.oncpu_ns) /
                                             static_cast<double>(table.interval_ns))
                 : "-";
    case Col::kAvgSlice:
      return format_duration_ns(row.avg_slice_ns());
    case Col::kRunqWait:
      return format_duration_ns(row.values.runq_wait_ns);
    case Col::kOffCpu:
      return format_duration_ns(row.values.offcpu_ns);
    case Col::kSlice:
      return format_duration_ns(row.values.slice_ns);
  }
  return {};
}

std::string titles_line(const std::vector<Column>& cols, std::optional<Col> sorted) {
  std::string line(kGutter, ' ');
  for (const auto& c : cols) {
    std::string title = c.spec.title;
    if (c.spec.col == sorted) title += '*';
    line += ' ';
    line += align(title, c.width, c.spec.left);
  }
  return line;
}

std::string row_line(const std::vector<Column>& cols, const TopTable& table, size_t index,
                     bool selected) {
  std::string line(kGutter, selected ? '>' : ' ');
  for (const auto& c : cols) {
    line += ' ';
    line += align(cell(c.spec.col, table, index), c.width, c.spec.left);
  }
  return line;
}

// ---- header ------------------------------------------------------------------------------------

std::string header_line(const TopTable& table, int width) {
  const uint64_t lost = table.counters.lost();
  std::vector<std::string> parts;
  // A non-zero drop count leads, so even a narrow terminal shows it.
  if (lost) parts.push_back(fmt::format("LOST {}", format_count(lost)));
  parts.push_back("kscope top");
  if (table.first_pending) {
    // Before the first interval ends there are no numbers: say what is under way.
    parts.push_back(
        fmt::format("measuring the first interval ({})", format_duration_ns(table.interval_ns)));
    if (!table.scope.empty()) parts.push_back(table.scope);
    if (table.tables_pending)
      parts.push_back(fmt::format("loading unwind tables of {} process{}", table.tables_pending,
                                  table.tables_pending == 1 ? "" : "es"));
    return join(parts, "  ");
  }
  parts.push_back(fmt::format("interval {}", format_duration_ns(table.interval_ns)));
  std::string switches = fmt::format("switches {}", format_count(table.switches_all));
  if (table.interval_ns) {
    switches += fmt::format(
        " ({}/s)",
        format_count(static_cast<uint64_t>(static_cast<double>(table.switches_all) * 1e9 /
                                           static_cast<double>(table.interval_ns))));
  }
  parts.push_back(switches);
  if (table.cpu_busy >= 0) {
    std::string busy = fmt::format("CPU busy {:.1f}%", table.cpu_busy * 100.0);
    if (table.ncpus > 0) busy += fmt::format(" of {} CPUs", table.ncpus);
    parts.push_back(busy);
  } else {
    parts.push_back("CPU busy ?");
  }
  if (!lost) parts.push_back("lost 0");
  // What is traced: with -p/-t/--comm only what they name (kscope is not among it, so nothing is
  // hidden); all tasks but kscope itself unless --show-self.
  if (table.hidden_pid)
    parts.push_back(fmt::format("{}, kscope itself hidden (pid {}, on-CPU {}; --show-self)",
                                table.scope.empty() ? "all tasks" : table.scope, table.hidden_pid,
                                format_duration_ns(table.hidden_oncpu_ns)));
  else if (!table.scope.empty())
    parts.push_back(table.scope);
  if (table.tables_pending)
    parts.push_back(fmt::format("loading unwind tables of {} process{}", table.tables_pending,
                                table.tables_pending == 1 ? "" : "es"));
  std::string line = join(parts, "  ");
  if (columns(line) > width) {
    std::erase(parts, std::string("kscope top"));
    line = join(parts, " ");
  }
  return line;
}

std::string totals_line(const TopTable& table, size_t shown) {
  std::string rows = table.rows.size() == shown
                         ? fmt::format("rows {}", shown)
                         : fmt::format("rows {} of {}", shown, table.rows.size());
  return fmt::format(
      "on-CPU {} (exact)  off-CPU {} (exact)  runq wait {}  schedule-ins {}  {}",
      format_duration_ns(table.total.oncpu_ns), format_duration_ns(table.total.offcpu_ns),
      format_duration_ns(table.total.runq_wait_ns), format_count(table.total.switches), rows);
}

// Where the numbers by stack come from. Without stacks (--no-stacks) there are none, and the
// screen says what the rows are instead (and never the word for what it does not have).
std::string sources_line(const TopTable& table) {
  if (!table.stacks) return "per-thread totals only, exact, from the kernel's counters";
  std::string oncpu = table.sample_hz
                          ? fmt::format(
                                "on-CPU by stack: {}, scaled to exact thread totals ({} "
                                "samples)",
                                sampler_rate_text(table.sample_hz, table.sampler_lowered),
                                format_count(table.counters.samples))
                          : std::string("on-CPU by stack: not sampled");
  return oncpu + "; off-CPU: exact, at switch-out";
}

// Every drop and error by cause, wrapped at item boundaries into lines of `width`; empty when
// there was none.
std::vector<std::string> drops_lines(const TopCounters& c, int width) {
  std::vector<std::string> items = lost_items(c);
  if (!items.empty())
    items.front() = fmt::format("LOST {}: {}", format_count(c.lost()), items.front());
  // Not counted in lost(): the rows are there, their stacks show "[stack error]".
  if (c.kstack_errors || c.ustack_errors) {
    std::vector<std::string> errors;
    if (c.kstack_errors) errors.push_back(fmt::format("kernel {}", format_count(c.kstack_errors)));
    if (c.ustack_errors) errors.push_back(fmt::format("user {}", format_count(c.ustack_errors)));
    items.push_back(fmt::format("stack read errors: {}", join(errors, ", ")));
  }
  std::vector<std::string> lines;
  for (const auto& item : items) {
    if (!lines.empty() && columns(lines.back()) + 2 + columns(item) <= width) {
      lines.back() += ", " + item;
    } else {
      if (!lines.empty()) lines.back() += ',';
      lines.push_back(lines.empty() ? item : "  " + item);
    }
  }
  return lines;
}

std::string status_line(const TopUiState& state, const TopTable& table) {
  std::vector<std::string> parts;
  if (state.paused) parts.push_back("PAUSED");
  if (!state.filter.empty()) parts.push_back(fmt::format("filter \"{}\"", state.filter));
  parts.push_back(fmt::format("by {}", to_string(state.group_by)));
  parts.push_back(fmt::format("sort {}", to_string(state.sort)));
  parts.push_back(table.stacks ? (table.group_by == TopGroupBy::kStack
                                      ? "| q quit  Up/Dn select  Enter frames  s sort  g group  "
                                        "p pause  Space update  / filter"
                                      : "| q quit  Up/Dn select  Enter/Right stacks  Left/Esc "
                                        "close  s sort  g group  p pause  Space update  / filter")
                               : "| q quit  Up/Dn select  s sort  g group  p pause  Space "
                                 "update  / filter");
  return sanitize(join(parts, "  "));
}

// ---- stacks ------------------------------------------------------------------------------------

std::vector<TopScreenLine> stack_lines(const TopStackView& stack, int indent) {
  std::vector<TopScreenLine> lines;
  std::string pad(static_cast<size_t>(indent), ' ');
  for (const auto& f : stack.kernel) {
    lines.push_back({pad + "k " + sanitize(f.display()), TopLineStyle::kKernelFrame});
  }
  for (const auto& f : stack.user) {
    lines.push_back({pad + "u " + sanitize(f.display()), TopLineStyle::kUserFrame});
  }
  if (!stack.note.empty()) lines.push_back({pad + sanitize(stack.note), TopLineStyle::kNote});
  if (lines.empty()) lines.push_back({pad + "(no stack)", TopLineStyle::kNote});
  return lines;
}

std::string pane_title(const TopTable& table, size_t index, int width) {
  const TopRow& row = table.rows[index];
  std::string who = fmt::format("-- stack of #{} {}", index + 1, sanitize(row.comm));
  if (table.group_by != TopGroupBy::kComm) who += fmt::format(" pid {}", row.pid);
  if (table.group_by == TopGroupBy::kStack || table.group_by == TopGroupBy::kTid) {
    who += fmt::format(" tid {}", row.tid);
  }
  who += ' ';
  int fill = width - columns(who);
  if (fill > 0) who += std::string(static_cast<size_t>(fill), '-');
  return who;
}

}  // namespace

namespace {

constexpr int kSectionIndent = 4;  // "on-CPU by stack ..." under an expanded row
constexpr int kNumbersIndent = 6;  // a stack's numbers
constexpr int kPathIndent = 8;     // its frames

// How complete a stack is: the unwinder's "[incomplete: REASON]" marker or the stack's note
// (lost to a collision, not sampled, ...).
std::string completeness(const TopStackView& view) {
  for (const auto& f : view.user)
    if (f.marker) return sanitize(f.symbol);
  for (const auto& f : view.kernel)
    if (f.marker) return sanitize(f.symbol);
  if (!view.note.empty()) return sanitize(view.note);
  if (view.kernel.empty() && view.user.empty()) return "[no stack]";
  return "complete";
}

std::string frame_name(const TopFrameView& f) {
  return sanitize(f.inlined ? f.symbol + " (inlined)" : f.symbol);
}

// A stack's frames, leaf first ("kernel: a < b | user: c < d"), wrapped at frame boundaries into
// at most kTopExpandedPathLines lines of `width` columns.
std::vector<TopScreenLine> path_lines(const TopStackView& view, int width) {
  std::vector<std::pair<std::string, TopLineStyle>> items;
  for (size_t i = 0; i < view.kernel.size(); ++i)
    items.emplace_back((i == 0 ? "kernel: " : "") + frame_name(view.kernel[i]),
                       TopLineStyle::kKernelFrame);
  for (size_t i = 0; i < view.user.size(); ++i)
    items.emplace_back(
        (i == 0 ? (view.kernel.empty() ? "user: " : "| user: ") : "") + frame_name(view.user[i]),
        TopLineStyle::kUserFrame);
  std::vector<TopScreenLine> lines;
  const std::string pad(kPathIndent, ' ');
  const int room = std::max(10, width - kPathIndent);
  size_t i = 0;
  while (i < items.size()) {
    if (static_cast<int>(lines.size()) == kTopExpandedPathLines - 1 &&
        items.size() - i > 1) {  // the last line left: say what does not fit
      size_t rest = items.size() - i;
      lines.push_back({pad + fmt::format("... {} more frames", rest), TopLineStyle::kNote});
      break;
    }
    std::string text = items[i].first;
    TopLineStyle style = items[i].second;
    ++i;
    while (i < items.size() && columns(text) + 3 + columns(items[i].first) <= room) {
      text += (items[i].first.rfind("| ", 0) == 0 ? " " : " < ") + items[i].first;
      ++i;
    }
    lines.push_back({pad + text, style});
  }
  return lines;
}

}  // namespace

std::vector<TopScreenLine> expanded_group_lines(const TopTable& stack_table,
                                                const StackProvider& stacks,
                                                TopGroupBy row_group_by, int width) {
  const char* whose = row_group_by == TopGroupBy::kTid   ? "thread's"
                      : row_group_by == TopGroupBy::kPid ? "process's"
                                                         : "threads'";
  std::vector<const TopRow*> oncpu, offcpu;
  uint64_t oncpu_total = 0, samples_total = 0, offcpu_total = 0;
  for (const auto& r : stack_table.rows) {
    if (r.values.oncpu_ns) {
      oncpu.push_back(&r);
      oncpu_total += r.values.oncpu_ns;
      samples_total += r.values.oncpu_samples;
    }
    if (r.values.offcpu_ns || r.values.voluntary || r.values.involuntary) {
      offcpu.push_back(&r);
      offcpu_total += r.values.offcpu_ns;
    }
  }
  auto by = [](uint64_t TopValues::*field) {
    return [field](const TopRow* a, const TopRow* b) {
      if (a->values.*field != b->values.*field) return a->values.*field > b->values.*field;
      return a->id < b->id;
    };
  };
  std::stable_sort(oncpu.begin(), oncpu.end(), by(&TopValues::oncpu_ns));
  std::stable_sort(offcpu.begin(), offcpu.end(), by(&TopValues::offcpu_ns));

  std::vector<TopScreenLine> lines;
  const std::string section_pad(kSectionIndent, ' ');
  const std::string numbers_pad(kNumbersIndent, ' ');
  auto add = [&](std::string text, TopLineStyle style) {
    lines.push_back({fit(text, width), style});
  };
  auto add_stack = [&](const TopRow& r, std::string numbers) {
    TopStackView view = stacks ? stacks(r) : TopStackView{};
    add(numbers_pad + numbers + "  " + completeness(view), TopLineStyle::kNormal);
    for (auto& l : path_lines(view, width)) add(std::move(l.text), l.style);
  };
  auto pct = [](uint64_t part, uint64_t whole) {
    return whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0;
  };

  const std::string hz = stack_table.sample_hz
                             ? sampler_rate_text(stack_table.sample_hz, stack_table.sampler_lowered)
                             : std::string("not sampled");
  add(section_pad + fmt::format("on-CPU by stack ({}, scaled to the {} exact {}): {} stack{}, {} "
                                "samples",
                                hz, whose, format_duration_ns(oncpu_total), oncpu.size(),
                                oncpu.size() == 1 ? "" : "s", format_count(samples_total)),
      TopLineStyle::kHeader);
  for (size_t i = 0; i < oncpu.size() && i < kTopExpandedStacks; ++i) {
    const TopRow& r = *oncpu[i];
    add_stack(
        r, fmt::format("ON-CPU {}  {:.1f}%  SAMPLES {}", format_duration_ns(r.values.oncpu_ns),
                       pct(r.values.oncpu_ns, oncpu_total), format_count(r.values.oncpu_samples)));
  }
  if (oncpu.size() > kTopExpandedStacks) {
    uint64_t rest = 0;
    for (size_t i = kTopExpandedStacks; i < oncpu.size(); ++i) rest += oncpu[i]->values.oncpu_ns;
    add(numbers_pad + fmt::format("... {} more on-CPU stacks: ON-CPU {}",
                                  oncpu.size() - kTopExpandedStacks, format_duration_ns(rest)),
        TopLineStyle::kNote);
  }

  add(section_pad + fmt::format("off-CPU by switch-out stack (exact, at switch-out): {} stack{}, "
                                "OFF-CPU {}",
                                offcpu.size(), offcpu.size() == 1 ? "" : "s",
                                format_duration_ns(offcpu_total)),
      TopLineStyle::kHeader);
  for (size_t i = 0; i < offcpu.size() && i < kTopExpandedStacks; ++i) {
    const TopRow& r = *offcpu[i];
    add_stack(r, fmt::format("OFF-CPU {}  RUNQ {}  VOL {}  INVOL {}",
                             format_duration_ns(r.values.offcpu_ns),
                             format_duration_ns(r.values.runq_wait_ns),
                             format_count(r.values.voluntary), format_count(r.values.involuntary)));
  }
  if (offcpu.size() > kTopExpandedStacks) {
    uint64_t rest = 0, vol = 0, invol = 0;
    for (size_t i = kTopExpandedStacks; i < offcpu.size(); ++i) {
      rest += offcpu[i]->values.offcpu_ns;
      vol += offcpu[i]->values.voluntary;
      invol += offcpu[i]->values.involuntary;
    }
    add(numbers_pad + fmt::format("... {} more off-CPU stacks: OFF-CPU {}  VOL {}  INVOL {}",
                                  offcpu.size() - kTopExpandedStacks, format_duration_ns(rest),
                                  format_count(vol), format_count(invol)),
        TopLineStyle::kNote);
  }
  return lines;
}

std::vector<size_t> filter_top_rows(const TopTable& table, const std::string& filter) {
  std::vector<size_t> out;
  out.reserve(table.rows.size());
  for (size_t i = 0; i < table.rows.size(); ++i) {
    if (filter.empty() || table.rows[i].comm.find(filter) != std::string::npos) out.push_back(i);
  }
  return out;
}

int resolve_top_selection(const TopTable& table, const std::vector<size_t>& filtered,
                          const TopUiState& state) {
  if (filtered.empty()) return -1;
  if (!state.selected_id.empty()) {
    for (size_t k = 0; k < filtered.size(); ++k) {
      if (table.rows[filtered[k]].id == state.selected_id) return static_cast<int>(k);
    }
  }
  return std::clamp(state.selected_rank, 0, static_cast<int>(filtered.size()) - 1);
}

TopLayout layout_top_screen(const TopTable& table, const TopUiState& state,
                            const StackProvider& stacks, int width, int height,
                            const GroupStacksProvider& group_stacks) {
  TopLayout out;
  if (height <= 0) return out;
  auto& lines = out.lines;
  auto add = [&](std::string text, TopLineStyle style) {
    lines.push_back({fit(text, width), style});
  };

  const std::vector<size_t> filtered = filter_top_rows(table, state.filter);
  out.selected = resolve_top_selection(table, filtered, state);
  if (out.selected >= 0) out.selected_id = table.rows[filtered[out.selected]].id;

  if (width < kTopMinWidth || height < kTopMinHeight) {
    add("terminal too small", TopLineStyle::kWarning);
    if (height > 1)
      add(fmt::format("need {}x{}", kTopMinWidth, kTopMinHeight), TopLineStyle::kNormal);
    while (static_cast<int>(lines.size()) < height) add("", TopLineStyle::kNormal);
    out.scroll = state.scroll;
    return out;
  }

  // Header: the drop breakdown wins over the totals when lines are scarce.
  const bool tall = height >= 10;
  add(header_line(table, width),
      table.counters.lost() ? TopLineStyle::kWarning : TopLineStyle::kHeader);
  // The breakdown gets one line from height 7, all of its lines from height 14.
  const std::vector<std::string> drops = drops_lines(table.counters, width);
  for (size_t i = 0; i < drops.size(); ++i) {
    if (height >= (i == 0 ? 7 : 14)) add(drops[i], TopLineStyle::kWarning);
  }
  if (tall)
    add(table.first_pending ? std::string("no numbers yet: the first table comes when the first "
                                          "interval ends (Space ends it now)")
                            : totals_line(table, filtered.size()),
        TopLineStyle::kHeader);
  if (tall) add(sources_line(table), TopLineStyle::kHeader);

  const std::optional<Col> sorted = sort_column(table.sort);
  const std::vector<Column> cols = choose_columns(width, sorted);
  add(titles_line(cols, sorted), TopLineStyle::kTitles);

  int space = height - static_cast<int>(lines.size()) - 1;  // minus the status line
  int pane = 0;
  if (space >= kPaneMinBody && out.selected >= 0 && table.stacks)
    pane = std::min(16, std::max(5, space * 2 / 5));
  const int body = space - pane;
  out.page_rows = std::max(1, body);

  // Stacks are symbolized lazily: fetch each at most once, and only when it goes on screen.
  std::map<size_t, std::vector<TopScreenLine>> stack_cache;
  auto stack_of = [&](size_t k) -> const std::vector<TopScreenLine>& {
    auto it = stack_cache.find(k);
    if (it == stack_cache.end()) {
      TopStackView view = stacks ? stacks(table.rows[filtered[k]]) : TopStackView{};
      it = stack_cache.emplace(k, stack_lines(view, kFrameIndent)).first;
    }
    return it->second;
  };
  // An expanded row: a thread's (process's, comm's) on-CPU and off-CPU stacks, or a stack row's
  // frames.
  std::map<size_t, std::vector<TopScreenLine>> expansion_cache;
  auto expansion_of = [&](size_t k) -> const std::vector<TopScreenLine>& {
    if (table.group_by == TopGroupBy::kStack || !group_stacks) return stack_of(k);
    auto it = expansion_cache.find(k);
    if (it == expansion_cache.end()) {
      const TopRow& row = table.rows[filtered[k]];
      it = expansion_cache
               .emplace(k, expanded_group_lines(group_stacks(row, table.group_by), stacks,
                                                table.group_by, width))
               .first;
    }
    return it->second;
  };
  auto is_expanded = [&](size_t k) {
    return table.stacks && state.expanded.count(table.rows[filtered[k]].id) > 0;
  };
  // Lines row k takes: itself and, when expanded, its stack. Never calls the provider for a row
  // whose own line would not fit in `room`.
  auto row_height = [&](size_t k, int room) {
    if (room < 1 || !is_expanded(k)) return 1;
    return 1 + static_cast<int>(expansion_of(k).size());
  };

  const int n = static_cast<int>(filtered.size());
  int scroll = std::clamp(state.scroll, 0, std::max(0, n - 1));
  if (out.selected >= 0) {
    const int sel = out.selected;
    if (sel < scroll) scroll = sel;
    // Does the selected row (and as much of its stack as fits) show from `scroll`?
    int used = 0;
    for (int k = scroll; k < sel && used < body; ++k) used += row_height(k, body - used);
    int need = std::min(body, row_height(sel, body - used));
    if (used + need > body) {
      // Scroll down just enough: walk up from the selection while rows still fit.
      used = std::min(body, row_height(sel, body));
      scroll = sel;
      while (scroll > 0 && used + 1 <= body) {
        int h = row_height(scroll - 1, body - used);
        if (used + h > body) break;
        used += h;
        --scroll;
      }
    }
  }
  // No blank space below the last row while rows above could fill it.
  {
    int used = 0;
    for (int k = scroll; k < n && used <= body; ++k) used += row_height(k, body - used);
    while (scroll > 0 && used < body) {
      int h = row_height(scroll - 1, body - used);
      if (used + h > body) break;
      used += h;
      --scroll;
    }
  }
  out.scroll = scroll;

  // Body.
  int used = 0;
  if (n == 0 && body > 0) {
    add(table.first_pending  ? "  (first interval under way)"
        : table.rows.empty() ? "  (nothing ran in this interval)"
                             : fmt::format("  (no comm contains \"{}\")", sanitize(state.filter)),
        TopLineStyle::kNote);
    ++used;
  }
  for (int k = scroll; k < n && used < body; ++k) {
    const bool selected = k == out.selected;
    add(row_line(cols, table, filtered[k], selected),
        selected ? TopLineStyle::kSelectedRow : TopLineStyle::kRow);
    ++used;
    if (is_expanded(k)) {
      for (const auto& l : expansion_of(k)) {
        if (used >= body) break;
        add(l.text, l.style);
        ++used;
      }
    }
  }
  for (; used < body; ++used) add("", TopLineStyle::kNormal);

  // Bottom pane: the selected row's stack.
  if (pane > 0) {
    add(pane_title(table, filtered[out.selected], width), TopLineStyle::kPaneTitle);
    const auto& frames = stack_of(out.selected);
    const int room = pane - 1;
    const int count = static_cast<int>(frames.size());
    for (int i = 0; i < room; ++i) {
      if (i == room - 1 && count > room) {
        add(fmt::format("  ... {} more frames", count - i), TopLineStyle::kNote);
      } else if (i < count) {
        std::string text = frames[static_cast<size_t>(i)].text.substr(kFrameIndent - 2);
        add(text, frames[static_cast<size_t>(i)].style);
      } else {
        add("", TopLineStyle::kNormal);
      }
    }
  }

  // Status or the filter input line.
  if (state.editing_filter) {
    const std::string prompt = "Filter comm (Enter accept, Esc cancel): ";
    std::string input = sanitize(state.filter_input);
    std::string text = prompt + input;
    // Keep the end of the input (where the cursor is) visible.
    int over = columns(text) + 1 - width;
    if (over > 0) {
      text = input;
      int drop = columns(text) + 1 - width;
      size_t cut = 0;
      for (int d = 0; d < drop && cut < text.size(); ++d) {
        do ++cut;
        while (cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80);
      }
      text = text.substr(cut);
    }
    add(text, TopLineStyle::kInput);
    out.cursor_col = std::min(width - 1, columns(lines.back().text));
  } else {
    add(status_line(state, table), TopLineStyle::kStatus);
  }
  return out;
}

TopEvent apply_key(TopUiState& state, int key, const TopTable& table) {
  const bool enter = key == '\n' || key == '\r' || key == KEY_ENTER;
  if (key == KEY_RESIZE) return TopEvent::kRedraw;

  if (state.editing_filter) {
    if (enter) {
      state.editing_filter = false;
      if (state.filter_input == state.filter) return TopEvent::kRedraw;
      state.filter = state.filter_input;
      state.scroll = 0;
      return TopEvent::kRegroup;
    }
    if (key == 27) {  // Esc
      state.editing_filter = false;
      state.filter_input.clear();
      return TopEvent::kRedraw;
    }
    if (key == KEY_BACKSPACE || key == 127 || key == 8) {
      // Remove one whole UTF-8 character.
      auto& s = state.filter_input;
      while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xc0) == 0x80) s.pop_back();
      if (!s.empty()) s.pop_back();
      return TopEvent::kRedraw;
    }
    if (key == 21) {  // Ctrl-U, as in a shell
      state.filter_input.clear();
      return TopEvent::kRedraw;
    }
    // Printable ASCII, or a byte of a UTF-8 sequence (getch() delivers those one by one).
    if ((key >= 0x20 && key < 0x7f) || (key >= 0x80 && key <= 0xff)) {
      state.filter_input += static_cast<char>(key);
      return TopEvent::kRedraw;
    }
    return TopEvent::kNone;
  }

  const std::vector<size_t> filtered = filter_top_rows(table, state.filter);
  const int n = static_cast<int>(filtered.size());
  const int sel = resolve_top_selection(table, filtered, state);
  auto select = [&](int k) {
    if (n == 0) return TopEvent::kNone;
    k = std::clamp(k, 0, n - 1);
    state.selected_rank = k;
    state.selected_id = table.rows[filtered[static_cast<size_t>(k)]].id;
    return TopEvent::kRedraw;
  };
  const int page = std::max(1, state.page_rows);

  switch (key) {
    case 'q':
    case 'Q':
      state.quit = true;
      return TopEvent::kQuit;
    case KEY_UP:
      return select(sel - 1);
    case KEY_DOWN:
      return select(sel + 1);
    case KEY_PPAGE:
      return select(sel - page);
    case KEY_NPAGE:
      return select(sel + page);
    case KEY_HOME:
      return select(0);
    case KEY_END:
      return select(n - 1);
    case 's':
      state.sort = next_sort_key(state.sort);
      return TopEvent::kRegroup;
    case 'g':
      state.group_by = next_group_by(state.group_by, state.stacks);
      // Row ids name groups of the old grouping; the selection keeps its rank.
      state.expanded.clear();
      return TopEvent::kRegroup;
    case 'p':
      state.paused = !state.paused;
      return TopEvent::kRedraw;
    case ' ':  // as in top: update now
      return TopEvent::kRefresh;
    case '/':
      state.editing_filter = true;
      state.filter_input = state.filter;
      return TopEvent::kRedraw;
    default:
      break;
  }
  if (enter || key == KEY_RIGHT || key == KEY_LEFT || key == 27) {
    if (sel < 0 || !state.stacks) return TopEvent::kNone;
    const std::string& id = table.rows[filtered[static_cast<size_t>(sel)]].id;
    state.selected_id = id;
    state.selected_rank = sel;
    if (enter) {
      if (!state.expanded.erase(id)) state.expanded.insert(id);
    } else if (key == KEY_RIGHT) {
      if (!state.expanded.insert(id).second) return TopEvent::kNone;
    } else if (!state.expanded.erase(id)) {  // Left, Esc
      return TopEvent::kNone;
    }
    return TopEvent::kRedraw;
  }
  return TopEvent::kNone;
}

// ---- the ncurses session -----------------------------------------------------------------------

namespace {

std::atomic<bool> g_screen_active{false};  // ncurses has one current screen per process

enum ColorPair : short {
  kPairHeader = 1,
  kPairWarning,
  kPairTitles,
  kPairSelected,
  kPairKernel,
  kPairUser,
  kPairNote,
  kPairPane,
  kPairStatus,
};

void init_colors() {
  start_color();
  use_default_colors();
  init_pair(kPairHeader, COLOR_CYAN, -1);
  init_pair(kPairWarning, COLOR_RED, -1);
  init_pair(kPairTitles, COLOR_BLACK, COLOR_GREEN);
  init_pair(kPairSelected, COLOR_BLACK, COLOR_CYAN);
  init_pair(kPairKernel, COLOR_YELLOW, -1);
  init_pair(kPairUser, COLOR_GREEN, -1);
  init_pair(kPairNote, COLOR_MAGENTA, -1);
  init_pair(kPairPane, COLOR_BLACK, COLOR_BLUE);
  init_pair(kPairStatus, COLOR_BLACK, COLOR_WHITE);
}

// Attributes of a style, and whether the style paints the whole width (bars).
std::pair<attr_t, bool> style_attr(TopLineStyle style, bool colors) {
  auto pair = [&](short p, attr_t mono) {
    return colors ? static_cast<attr_t>(COLOR_PAIR(p)) : mono;
  };
  switch (style) {
    case TopLineStyle::kNormal:
    case TopLineStyle::kRow:
      return {A_NORMAL, false};
    case TopLineStyle::kHeader:
      return {pair(kPairHeader, A_BOLD), false};
    case TopLineStyle::kWarning:
      return {pair(kPairWarning, A_NORMAL) | A_BOLD, false};
    case TopLineStyle::kTitles:
      return {pair(kPairTitles, A_REVERSE), true};
    case TopLineStyle::kSelectedRow:
      return {pair(kPairSelected, A_REVERSE), true};
    case TopLineStyle::kKernelFrame:
      return {pair(kPairKernel, A_NORMAL), false};
    case TopLineStyle::kUserFrame:
      return {pair(kPairUser, A_NORMAL), false};
    case TopLineStyle::kNote:
      return {pair(kPairNote, A_DIM), false};
    case TopLineStyle::kPaneTitle:
      return {pair(kPairPane, A_REVERSE), true};
    case TopLineStyle::kStatus:
      return {pair(kPairStatus, A_REVERSE), true};
    case TopLineStyle::kInput:
      return {A_BOLD, false};
  }
  return {A_NORMAL, false};
}

}  // namespace

Result<std::unique_ptr<TopScreen>> TopScreen::create(TopUiState initial) {
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
    return make_error("the interactive top screen needs a terminal on stdin and stdout", 0,
                      "redirect stdout to a file or pipe for the batch table");
  }
  const char* term = std::getenv("TERM");
  if (term == nullptr || *term == '\0' || std::string_view(term) == "dumb") {
    return make_error(fmt::format("TERM is {}: the interactive top screen needs a terminal "
                                  "that can move the cursor",
                                  term && *term ? term : "not set"),
                      0,
                      "set TERM (e.g. TERM=xterm-256color) or redirect stdout for the batch table");
  }
  if (g_screen_active.exchange(true)) {
    return make_error("the interactive top screen is already open in this process");
  }
  // ncursesw needs the user's character set to draw UTF-8 comm names; only LC_CTYPE, so number
  // formatting elsewhere in the process stays as it was.
  const char* old = std::setlocale(LC_CTYPE, nullptr);
  std::string saved_ctype = old ? old : "C";
  std::setlocale(LC_CTYPE, "");
  // newterm(), not initscr(): initscr() exits the process when the terminal is unusable.
  SCREEN* screen = newterm(term, stdout, stdin);
  if (screen == nullptr) {
    std::setlocale(LC_CTYPE, saved_ctype.c_str());
    g_screen_active = false;
    return make_error(fmt::format("cannot start the interactive top screen: terminal type '{}' "
                                  "is not in the terminfo database",
                                  term),
                      0, "set TERM to a known type or redirect stdout for the batch table");
  }
  set_term(screen);
  cbreak();
  noecho();
  nonl();  // Enter arrives as '\r'; apply_key accepts '\r', '\n' and KEY_ENTER
  keypad(stdscr, TRUE);
  curs_set(0);
  set_escdelay(25);  // Esc cancels the filter input without the default 1 s wait
  bool colors = has_colors();
  if (colors) init_colors();
  return std::unique_ptr<TopScreen>(
      new TopScreen(std::move(initial), screen, colors, std::move(saved_ctype)));
}

TopScreen::TopScreen(TopUiState initial, ::screen* screen, bool colors, std::string saved_ctype)
    : state_(std::move(initial)),
      screen_(screen),
      colors_(colors),
      saved_ctype_(std::move(saved_ctype)) {}

TopScreen::~TopScreen() {
  if (screen_ != nullptr) {
    curs_set(1);
    endwin();
    delscreen(screen_);
  }
  std::setlocale(LC_CTYPE, saved_ctype_.c_str());
  g_screen_active = false;
}

void TopScreen::draw(const TopTable& table, const StackProvider& stacks,
                     const GroupStacksProvider& group_stacks) {
  int height = 0, width = 0;
  getmaxyx(stdscr, height, width);
  TopLayout layout = layout_top_screen(table, state_, stacks, width, height, group_stacks);
  state_.scroll = layout.scroll;
  state_.page_rows = layout.page_rows;
  if (layout.selected >= 0) {
    state_.selected_id = layout.selected_id;
    state_.selected_rank = layout.selected;
  }
  last_table_ = table;
  paint(layout, width, height);
}

void TopScreen::paint(const TopLayout& layout, int width, int height) {
  erase();
  for (int y = 0; y < static_cast<int>(layout.lines.size()) && y < height; ++y) {
    const TopScreenLine& line = layout.lines[static_cast<size_t>(y)];
    auto [attr, bar] = style_attr(line.style, colors_);
    attrset(attr);
    mvaddstr(y, 0, line.text.c_str());
    if (bar) {
      // Fill the bar to the right edge (columns() of the text is at most width).
      int len = 0;
      for (char c : line.text) len += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
      for (int x = len; x < width; ++x) mvaddch(y, x, ' ');  // ERR at the last cell is harmless
    }
    attrset(A_NORMAL);
  }
  if (layout.cursor_col >= 0 && height > 0) {
    curs_set(1);
    move(height - 1, layout.cursor_col);
  } else {
    curs_set(0);
  }
  refresh();
}

TopEvent TopScreen::handle_input(int timeout_ms) {
  timeout(timeout_ms);
  int key = getch();
  if (key == ERR) return Event::kNone;
  Event event = Event::kNone;
  for (;;) {
    event = std::max(event, apply_key(state_, key, last_table_));
    if (event == Event::kQuit) break;
    timeout(0);
    key = getch();
    if (key == ERR) break;
  }
  return event;
}

}  // namespace kscope
