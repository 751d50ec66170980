// Tests of the interactive top screen's pure parts (src/render/top_screen.h): what text goes on
// which line for a table, a state and a terminal size, and what each key does to the state.
// Expected strings are built from the table's values with the model's formatters, and positions
// are found by parsing the lines, not by calling the renderer's helpers.
#include "render/top_screen.h"

#include <curses.h>  // key codes only
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

namespace kscope {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

TopRow make_row(uint32_t pid, uint32_t tid, std::string comm, uint64_t oncpu_ns, uint64_t vol,
                uint64_t invol, uint64_t runq_ns) {
  TopRow r;
  r.pid = pid;
  r.tid = tid;
  r.comm = std::move(comm);
  r.values.oncpu_ns = oncpu_ns;
  r.values.slice_ns = oncpu_ns;  // a thread row: its slices add up to its on-CPU time
  r.values.voluntary = vol;
  r.values.involuntary = invol;
  r.values.switches = vol + invol;
  r.values.runq_wait_ns = runq_ns;
  r.kstack = static_cast<int32_t>(tid);
  r.ustack = static_cast<int32_t>(tid) + 1000;
  r.stack_pid = pid;
  r.id = "t:" + std::to_string(tid);
  return r;
}

// Four threads ranked by on-CPU time over a 1 s interval.
TopTable make_table() {
  TopTable t;
  t.interval_ns = 1'000'000'000;
  t.group_by = TopGroupBy::kTid;
  t.sort = TopSortKey::kOnCpu;
  t.rows = {make_row(100, 101, "webserver", 750'000'000, 120, 30, 5'000'000),
            make_row(200, 200, "database", 250'000'000, 40, 10, 12'500'000),
            make_row(100, 102, "webworker", 12'300'000, 7, 0, 40'000),
            make_row(300, 300, "cron", 900'000, 3, 0, 0)};
  for (const auto& r : t.rows) t.total += r.values;
  t.switches_all = 123'456;
  t.cpu_busy = 0.375;
  t.ncpus = 8;
  return t;
}

TopStackView stack_for(const TopRow& row) {
  TopStackView s;
  TopFrameView k1{0xffffffff81000010, "schedule", 0x4a, "kernel", "", true, true};
  TopFrameView k2{0xffffffff81000020, "do_nanosleep", 0x6b, "kernel", "", true, true};
  TopFrameView u1{0x401000, "worker_" + row.comm, 0x12, "/usr/bin/" + row.comm, "", false, true};
  s.kernel = {k1, k2};
  s.user = {u1};
  return s;
}

std::vector<std::string> texts(const TopLayout& layout) {
  std::vector<std::string> v;
  for (const auto& l : layout.lines) v.push_back(l.text);
  return v;
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

// Index of the first line of a table row (rank column first) whose COMM is `comm`, -1 if none.
int row_line_of(const std::vector<std::string>& lines, const std::string& comm) {
  for (size_t i = 0; i < lines.size(); ++i) {
    auto w = words(lines[i]);
    if (std::find(w.begin(), w.end(), comm) != w.end() &&
        lines[i].find(" k ") == std::string::npos && lines[i].find(" u ") == std::string::npos &&
        lines[i].find("stack of") == std::string::npos) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

int line_with(const std::vector<std::string>& lines, const std::string& needle) {
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find(needle) != std::string::npos) return static_cast<int>(i);
  }
  return -1;
}

int utf8_columns(const std::string& s) {
  int n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

void expect_fits(const TopLayout& layout, int width, int height) {
  ASSERT_EQ(static_cast<int>(layout.lines.size()), height);
  for (const auto& l : layout.lines) {
    EXPECT_LE(utf8_columns(l.text), width) << l.text;
    for (char c : l.text) EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20) << l.text;
  }
}

TopUiState state_for(const TopTable& t) {
  TopUiState s;
  s.group_by = t.group_by;
  s.sort = t.sort;
  return s;
}

TEST(TopScreenLayout, HeaderShowsIntervalSwitchesCpuBusyAndLost) {
  TopTable t = make_table();
  TopLayout layout = layout_top_screen(t, state_for(t), stack_for, 120, 40);
  expect_fits(layout, 120, 40);
  const std::string& header = layout.lines[0].text;
  EXPECT_THAT(header, HasSubstr("interval " + format_duration_ns(t.interval_ns)));
  EXPECT_THAT(header, HasSubstr("interval 1.00s"));
  EXPECT_THAT(header, HasSubstr("switches " + format_count(123'456)));
  EXPECT_THAT(header, HasSubstr("switches 123,456 (123,456/s)"));
  EXPECT_THAT(header, HasSubstr("CPU busy 37.5% of 8 CPUs"));
  EXPECT_THAT(header, HasSubstr("lost 0"));
  EXPECT_THAT(header, Not(HasSubstr("LOST")));
  EXPECT_EQ(layout.lines[0].style, TopLineStyle::kHeader);
  // Totals over all rows.
  auto lines = texts(layout);
  int totals = line_with(lines, "schedule-ins");
  ASSERT_GE(totals, 0);
  EXPECT_THAT(lines[totals], HasSubstr("on-CPU " + format_duration_ns(t.total.oncpu_ns)));
  EXPECT_THAT(lines[totals], HasSubstr("rows 4"));
}

TEST(TopScreenLayout, UnknownCpuBusyIsNotShownAsANumber) {
  TopTable t = make_table();
  t.cpu_busy = -1;
  TopLayout layout = layout_top_screen(t, state_for(t), stack_for, 120, 40);
  EXPECT_THAT(layout.lines[0].text, HasSubstr("CPU busy ?"));
}

TEST(TopScreenLayout, LostCountsLeadTheHeaderWithABreakdown) {
  TopTable t = make_table();
  t.counters.kstack_collisions = 3;
  t.counters.ustack_collisions = 4;
  t.counters.accounts_full = 2;
  t.counters.accounts_full_ns = 1'500'000;
  t.counters.slices_lost = 1;
  t.counters.ustack_errors = 6;  // not "lost", but shown
  ASSERT_EQ(t.counters.lost(), 10u);
  TopLayout layout = layout_top_screen(t, state_for(t), stack_for, 120, 40);
  auto lines = texts(layout);
  EXPECT_THAT(lines[0], StartsWith("LOST 10"));
  EXPECT_EQ(layout.lines[0].style, TopLineStyle::kWarning);
  ASSERT_EQ(line_with(lines, "LOST 10:"), 1);
  EXPECT_EQ(layout.lines[1].style, TopLineStyle::kWarning);
  // Too long for one line at 120 columns: wrapped at item boundaries, nothing cut off.
  EXPECT_EQ(layout.lines[2].style, TopLineStyle::kWarning);
  const std::string breakdown = lines[1] + " " + lines[2];
  EXPECT_THAT(breakdown, HasSubstr("kernel stack collisions 3, user stack collisions 4"));
  EXPECT_THAT(breakdown, HasSubstr("accounts map full 2 (1.5ms on-CPU unaccounted)"));
  EXPECT_THAT(breakdown, HasSubstr("slice records lost 1"));
  EXPECT_THAT(breakdown, HasSubstr("stack read errors: user 6"));
  EXPECT_THAT(breakdown, Not(HasSubstr("storage")));  // zero causes are left out
  EXPECT_THAT(lines[3], HasSubstr("schedule-ins"));

  // A tiny terminal still shows that something was lost, first thing on the first line.
  TopLayout tiny = layout_top_screen(t, state_for(t), stack_for, 20, 5);
  expect_fits(tiny, 20, 5);
  EXPECT_THAT(tiny.lines[0].text, StartsWith("LOST 10"));
}

TEST(TopScreenLayout, ColumnsInOrderWithSortIndicator) {
  TopTable t = make_table();
  TopLayout layout = layout_top_screen(t, state_for(t), stack_for, 120, 40);
  auto lines = texts(layout);
  int titles = line_with(lines, "RANK");
  ASSERT_GE(titles, 0);
  EXPECT_EQ(layout.lines[titles].style, TopLineStyle::kTitles);
  const std::string& tl = lines[titles];
  size_t pos = 0;
  for (const char* title : {"RANK", "PID", "TID", "COMM", "SWITCHES", "VOL", "INVOL", "ON-CPU*",
                            "%CPU", "AVG SLICE", "RUNQ WAIT"}) {
    size_t at = tl.find(title, pos);
    ASSERT_NE(at, std::string::npos) << title << " after " << pos << " in: " << tl;
    pos = at + 1;
  }
  EXPECT_EQ(std::count(tl.begin(), tl.end(), '*'), 1);

  // The mark follows the table's sort column.
  t.sort = TopSortKey::kRunqWait;
  auto resorted = texts(layout_top_screen(t, state_for(t), stack_for, 120, 40));
  EXPECT_THAT(resorted[titles], HasSubstr("RUNQ WAIT*"));
  EXPECT_THAT(resorted[titles], Not(HasSubstr("ON-CPU*")));
}

TEST(TopScreenLayout, RowsKeepTheTableRankingAndShowTheirValues) {
  TopTable t = make_table();
  auto lines = texts(layout_top_screen(t, state_for(t), stack_for, 120, 40));
  int prev = -1;
  for (size_t i = 0; i < t.rows.size(); ++i) {
    int at = row_line_of(lines, t.rows[i].comm);
    ASSERT_GT(at, prev) << t.rows[i].comm;
    prev = at;
    auto w = words(lines[at]);
    if (w[0] == ">") w.erase(w.begin());
    ASSERT_EQ(w.size(), 12u) << lines[at];
    EXPECT_EQ(w[0], std::to_string(i + 1));
    EXPECT_EQ(w[1], std::to_string(t.rows[i].pid));
    EXPECT_EQ(w[2], std::to_string(t.rows[i].tid));
    EXPECT_EQ(w[3], t.rows[i].comm);
  }
  // webserver: 150 switches (120 vol, 30 invol), 750 ms of 1 s = 75.0 %, avg slice 5 ms.
  auto w = words(lines[row_line_of(lines, "webserver")]);
  EXPECT_EQ(w[0], ">");  // the first row is selected by default
  EXPECT_EQ(
      std::vector<std::string>(w.begin() + 5, w.end()),
      (std::vector<std::string>{"150", "120", "30", "750.0ms", "75.0", "5.0ms", "5.0ms", "0ns"}));
  auto d = words(lines[row_line_of(lines, "database")]);
  EXPECT_EQ(
      std::vector<std::string>(d.begin() + 4, d.end()),
      (std::vector<std::string>{"50", "40", "10", "250.0ms", "25.0", "5.0ms", "12.5ms", "0ns"}));
}

TEST(TopScreenLayout, TidIsADashWhenGroupedByPidAndPidTooByComm) {
  TopTable t = make_table();
  t.group_by = TopGroupBy::kPid;
  auto lines = texts(layout_top_screen(t, state_for(t), stack_for, 120, 40));
  auto w = words(lines[row_line_of(lines, "database")]);
  EXPECT_EQ(w[1], "200");
  EXPECT_EQ(w[2], "-");
  t.group_by = TopGroupBy::kComm;
  lines = texts(layout_top_screen(t, state_for(t), stack_for, 120, 40));
  w = words(lines[row_line_of(lines, "database")]);
  EXPECT_EQ(w[1], "-");
  EXPECT_EQ(w[2], "-");
}

TEST(TopScreenLayout, FilterHidesRowsWhoseCommLacksTheSubstring) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  s.filter = "web";
  TopLayout layout = layout_top_screen(t, s, stack_for, 120, 40);
  auto lines = texts(layout);
  EXPECT_GE(row_line_of(lines, "webserver"), 0);
  EXPECT_GE(row_line_of(lines, "webworker"), 0);
  EXPECT_EQ(row_line_of(lines, "database"), -1);
  EXPECT_EQ(row_line_of(lines, "cron"), -1);
  EXPECT_THAT(lines.back(), HasSubstr("filter \"web\""));
  EXPECT_GE(line_with(lines, "rows 2 of 4"), 0);
  // Ranks stay those of the full table.
  EXPECT_EQ(words(lines[row_line_of(lines, "webworker")])[0], "3");

  s.filter = "WEB";  // case-sensitive
  lines = texts(layout_top_screen(t, s, stack_for, 120, 40));
  EXPECT_EQ(row_line_of(lines, "webserver"), -1);
  EXPECT_GE(line_with(lines, "no comm contains \"WEB\""), 0);
}

TEST(TopScreenLayout, ExpandedRowShowsKernelThenUserFramesBelowIt) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  s.expanded = {"t:200"};
  std::vector<std::string> asked;
  StackProvider provider = [&](const TopRow& r) {
    asked.push_back(r.id);
    return stack_for(r);
  };
  TopLayout layout = layout_top_screen(t, s, provider, 120, 40);
  auto lines = texts(layout);
  int row = row_line_of(lines, "database");
  ASSERT_GE(row, 0);
  ASSERT_LT(row + 4, static_cast<int>(lines.size()));
  EXPECT_THAT(lines[row + 1], HasSubstr("k schedule+0x4a [kernel]"));
  EXPECT_THAT(lines[row + 2], HasSubstr("k do_nanosleep+0x6b [kernel]"));
  EXPECT_THAT(lines[row + 3], HasSubstr("u worker_database+0x12 [/usr/bin/database]"));
  EXPECT_EQ(layout.lines[row + 1].style, TopLineStyle::kKernelFrame);
  EXPECT_EQ(layout.lines[row + 3].style, TopLineStyle::kUserFrame);
  EXPECT_THAT(lines[row + 1], StartsWith("      "));    // indented under the row
  EXPECT_EQ(row_line_of(lines, "webworker"), row + 4);  // the next row follows the stack
  // Stacks asked for: the expanded row and the selected row (bottom pane), nothing else.
  std::sort(asked.begin(), asked.end());
  EXPECT_EQ(asked, (std::vector<std::string>{"t:101", "t:200"}));
}

TEST(TopScreenLayout, StackNoteAndEmptyStack) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  s.expanded = {"t:200", "t:300"};
  StackProvider provider = [](const TopRow& r) {
    TopStackView v;
    if (r.id == "t:200") v.note = "[kernel stack lost: map collision]";
    return v;
  };
  auto lines = texts(layout_top_screen(t, s, provider, 120, 40));
  int db = row_line_of(lines, "database");
  EXPECT_THAT(lines[db + 1], HasSubstr("[kernel stack lost: map collision]"));
  int cron = row_line_of(lines, "cron");
  EXPECT_THAT(lines[cron + 1], HasSubstr("(no stack)"));
}

TEST(TopScreenLayout, BottomPaneShowsTheSelectedRowsStackWhenThereIsRoom) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  s.selected_id = "t:102";
  TopLayout layout = layout_top_screen(t, s, stack_for, 120, 40);
  auto lines = texts(layout);
  int pane = line_with(lines, "-- stack of #3 webworker pid 100 tid 102 ");
  ASSERT_GT(pane, row_line_of(lines, "cron"));
  EXPECT_EQ(layout.lines[pane].style, TopLineStyle::kPaneTitle);
  EXPECT_THAT(lines[pane + 1], HasSubstr("k schedule+0x4a [kernel]"));
  EXPECT_THAT(lines[pane + 3], HasSubstr("u worker_webworker+0x12 [/usr/bin/webworker]"));
  EXPECT_EQ(static_cast<int>(lines[pane].size()), 120);  // a full-width separator

  // No room: no pane, and no stack is symbolized for nothing.
  int calls = 0;
  StackProvider counting = [&](const TopRow& r) {
    ++calls;
    return stack_for(r);
  };
  auto small = texts(layout_top_screen(t, s, counting, 120, 15));
  EXPECT_EQ(line_with(small, "stack of"), -1);
  EXPECT_EQ(calls, 0);
}

TEST(TopScreenLayout, SelectionFollowsTheRowIdThenFallsBackToItsRank) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  s.selected_id = "t:200";
  s.selected_rank = 1;
  TopLayout layout = layout_top_screen(t, s, stack_for, 120, 40);
  EXPECT_EQ(layout.selected, 1);
  auto lines = texts(layout);
  EXPECT_EQ(words(lines[row_line_of(lines, "database")])[0], ">");
  EXPECT_EQ(layout.lines[row_line_of(lines, "database")].style, TopLineStyle::kSelectedRow);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const std::string& l) { return !l.empty() && l[0] == '>'; }),
            1);

  // Next refresh: database is now last; the selection goes with it.
  std::rotate(t.rows.begin() + 1, t.rows.begin() + 2, t.rows.end());
  ASSERT_EQ(t.rows[3].id, "t:200");
  layout = layout_top_screen(t, s, stack_for, 120, 40);
  EXPECT_EQ(layout.selected, 3);
  EXPECT_EQ(layout.selected_id, "t:200");
  lines = texts(layout);
  EXPECT_EQ(words(lines[row_line_of(lines, "database")])[0], ">");

  // It vanished: the row now at the same rank (1) is selected.
  t.rows.erase(t.rows.begin() + 3);
  layout = layout_top_screen(t, s, stack_for, 120, 40);
  EXPECT_EQ(layout.selected, 1);
  EXPECT_EQ(layout.selected_id, t.rows[1].id);
}

TEST(TopScreenLayout, ScrollsToKeepTheSelectionVisible) {
  TopTable t = make_table();
  t.rows.clear();
  for (uint32_t i = 0; i < 100; ++i) {
    t.rows.push_back(make_row(1000 + i, 1000 + i, "task" + std::to_string(i),
                              (100 - i) * 1'000'000ull, 1, 1, 0));
  }
  TopUiState s = state_for(t);
  s.selected_id = "t:1060";
  TopLayout layout = layout_top_screen(t, s, stack_for, 100, 12);
  expect_fits(layout, 100, 12);
  auto lines = texts(layout);
  int sel = row_line_of(lines, "task60");
  ASSERT_GE(sel, 0);
  EXPECT_EQ(lines[sel][0], '>');
  EXPECT_GT(layout.scroll, 0);
  EXPECT_LE(layout.scroll, 60);
  EXPECT_EQ(row_line_of(lines, "task0"), -1);
  // Scrolling back up: the selection above the window becomes the first row shown.
  s.scroll = layout.scroll;
  s.selected_id = "t:1010";
  layout = layout_top_screen(t, s, stack_for, 100, 12);
  EXPECT_EQ(layout.scroll, 10);
  lines = texts(layout);
  EXPECT_EQ(lines[row_line_of(lines, "task10")][0], '>');
}

TEST(TopScreenLayout, ScrollsSoAnExpandedSelectionShowsItsStack) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  s.selected_id = "t:300";  // the last row
  s.expanded = {"t:300"};
  // 4 rows + 4 stack lines do not fit in 5 body lines (height 8: header, titles, status).
  TopLayout layout = layout_top_screen(t, s, stack_for, 100, 8);
  auto lines = texts(layout);
  int cron = row_line_of(lines, "cron");
  ASSERT_GE(cron, 0);
  ASSERT_LT(cron + 3, static_cast<int>(lines.size()) - 1);
  EXPECT_THAT(lines[cron + 3], HasSubstr("u worker_cron"));
  EXPECT_EQ(row_line_of(lines, "webserver"), -1);
}

TEST(TopScreenLayout, TinyTerminalsDegradeAndNeverOverflow) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  s.expanded = {"t:101"};
  for (int w = 0; w <= 130; w += 1) {
    for (int h : {0, 1, 2, 3, 4, 5, 8, 12, 25, 40}) {
      TopLayout layout = layout_top_screen(t, s, stack_for, w, h);
      ASSERT_EQ(static_cast<int>(layout.lines.size()), std::max(0, h)) << w << "x" << h;
      for (const auto& l : layout.lines) ASSERT_LE(utf8_columns(l.text), w) << w << "x" << h;
    }
  }
  // 20x5: header, titles with COMM and the sort column, two rows... and the status line.
  TopLayout layout = layout_top_screen(t, s, stack_for, 20, 5);
  auto lines = texts(layout);
  EXPECT_THAT(lines[0], StartsWith("interval 1.00s"));
  EXPECT_THAT(lines[1], HasSubstr("COMM"));
  EXPECT_THAT(lines[1], HasSubstr("ON-CPU*"));
  EXPECT_GE(row_line_of(lines, "webserver"), 0);
  EXPECT_THAT(lines[row_line_of(lines, "webserver")], HasSubstr("750.0ms"));
  EXPECT_EQ(layout.lines[4].style, TopLineStyle::kStatus);
  EXPECT_THAT(lines[4], StartsWith("by tid"));
  // 30 columns keep COMM and the sorted column, drop the rest.
  lines = texts(layout_top_screen(t, s, stack_for, 30, 8));
  EXPECT_THAT(lines[line_with(lines, "COMM")], Not(HasSubstr("RANK")));
  // Below the minimum.
  lines = texts(layout_top_screen(t, s, stack_for, 19, 5));
  EXPECT_EQ(lines[0], "terminal too small");
  lines = texts(layout_top_screen(t, s, stack_for, 40, 3));
  EXPECT_EQ(lines[0], "terminal too small");
  EXPECT_EQ(lines[1], "need 20x4");
  lines = texts(layout_top_screen(t, s, stack_for, 8, 1));
  EXPECT_EQ(lines, (std::vector<std::string>{"terminal"}));
}

TEST(TopScreenLayout, HostileCommsCannotEmitControlSequences) {
  TopTable t = make_table();
  t.rows[0].comm = "\x1b[2Jevil\n";
  t.rows[1].comm = "caf\xc3\xa9";  // valid UTF-8 passes
  t.rows[2].comm = "bad\xff";
  TopLayout layout = layout_top_screen(t, state_for(t), stack_for, 120, 40);
  expect_fits(layout, 120, 40);
  auto lines = texts(layout);
  EXPECT_GE(line_with(lines, "?[2Jevil?"), 0);
  EXPECT_GE(line_with(lines, "caf\xc3\xa9"), 0);
  EXPECT_GE(line_with(lines, "bad?"), 0);
}

TEST(TopScreenLayout, StatusLineShowsGroupingSortPausedAndFilterInput) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  s.sort = TopSortKey::kSwitches;
  s.paused = true;
  s.filter = "db";
  TopLayout layout = layout_top_screen(t, s, stack_for, 120, 40);
  const std::string& status = layout.lines.back().text;
  EXPECT_THAT(status, StartsWith("PAUSED  filter \"db\"  by tid  sort SWITCHES"));
  EXPECT_THAT(status, HasSubstr("q quit"));
  EXPECT_EQ(layout.cursor_col, -1);
  s.editing_filter = true;
  s.filter_input = "data";
  layout = layout_top_screen(t, s, stack_for, 120, 40);
  EXPECT_EQ(layout.lines.back().text, "Filter comm (Enter accept, Esc cancel): data");
  EXPECT_EQ(layout.lines.back().style, TopLineStyle::kInput);
  EXPECT_EQ(layout.cursor_col, utf8_columns(layout.lines.back().text));
  // A long input keeps its end (the cursor) visible.
  s.filter_input = std::string(50, 'x') + "END";
  layout = layout_top_screen(t, s, stack_for, 30, 10);
  EXPECT_THAT(layout.lines.back().text, testing::EndsWith("END"));
  EXPECT_LT(layout.cursor_col, 30);
}

// ---- keys --------------------------------------------------------------------------------------

TEST(TopScreenKeys, ArrowsMoveTheSelectionWithinBounds) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  EXPECT_EQ(apply_key(s, KEY_DOWN, t), TopEvent::kRedraw);
  EXPECT_EQ(s.selected_id, "t:200");
  EXPECT_EQ(s.selected_rank, 1);
  apply_key(s, KEY_DOWN, t);
  apply_key(s, KEY_DOWN, t);
  apply_key(s, KEY_DOWN, t);  // past the end: stays on the last row
  EXPECT_EQ(s.selected_id, "t:300");
  apply_key(s, KEY_UP, t);
  EXPECT_EQ(s.selected_id, "t:102");
  apply_key(s, KEY_HOME, t);
  EXPECT_EQ(s.selected_id, "t:101");
  apply_key(s, KEY_UP, t);
  EXPECT_EQ(s.selected_id, "t:101");
  apply_key(s, KEY_END, t);
  EXPECT_EQ(s.selected_id, "t:300");
  s.page_rows = 2;
  apply_key(s, KEY_PPAGE, t);
  EXPECT_EQ(s.selected_id, "t:200");
  apply_key(s, KEY_NPAGE, t);
  EXPECT_EQ(s.selected_id, "t:300");
  // The layout shows what the keys chose.
  auto lines = texts(layout_top_screen(t, s, stack_for, 120, 40));
  EXPECT_EQ(words(lines[row_line_of(lines, "cron")])[0], ">");
}

TEST(TopScreenKeys, NavigationSkipsFilteredRowsAndNoRowsIsHarmless) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  s.filter = "web";
  apply_key(s, KEY_DOWN, t);
  EXPECT_EQ(s.selected_id, "t:102");  // webworker, not database
  s.filter = "nothing matches";
  EXPECT_EQ(apply_key(s, KEY_DOWN, t), TopEvent::kNone);
  EXPECT_EQ(apply_key(s, '\r', t), TopEvent::kNone);
  EXPECT_TRUE(s.expanded.empty());
}

TEST(TopScreenKeys, EnterTogglesTheSelectedRowsStack) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  apply_key(s, KEY_DOWN, t);
  EXPECT_EQ(apply_key(s, '\r', t), TopEvent::kRedraw);
  EXPECT_EQ(s.expanded, (std::set<std::string>{"t:200"}));
  apply_key(s, KEY_DOWN, t);
  apply_key(s, KEY_ENTER, t);
  EXPECT_EQ(s.expanded, (std::set<std::string>{"t:200", "t:102"}));
  apply_key(s, '\n', t);
  EXPECT_EQ(s.expanded, (std::set<std::string>{"t:200"}));
}

TEST(TopScreenKeys, SortAndGroupCycleAndAskForANewTable) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  std::vector<TopSortKey> seen;
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(apply_key(s, 's', t), TopEvent::kRegroup);
    seen.push_back(s.sort);
  }
  EXPECT_EQ(seen.front(), TopSortKey::kSwitches);
  EXPECT_EQ(seen.back(), TopSortKey::kOnCpu);  // all ten keys, then back to the start
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());

  s.group_by = TopGroupBy::kStack;
  s.expanded = {"t:101"};
  EXPECT_EQ(apply_key(s, 'g', t), TopEvent::kRegroup);
  EXPECT_EQ(s.group_by, TopGroupBy::kTid);
  EXPECT_TRUE(s.expanded.empty());  // ids of the old grouping mean nothing now
  apply_key(s, 'g', t);
  EXPECT_EQ(s.group_by, TopGroupBy::kPid);
  apply_key(s, 'g', t);
  EXPECT_EQ(s.group_by, TopGroupBy::kComm);
  apply_key(s, 'g', t);
  EXPECT_EQ(s.group_by, TopGroupBy::kStack);
}

TEST(TopScreenKeys, PauseAndQuit) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  EXPECT_EQ(apply_key(s, 'p', t), TopEvent::kRedraw);
  EXPECT_TRUE(s.paused);
  apply_key(s, 'p', t);
  EXPECT_FALSE(s.paused);
  EXPECT_EQ(apply_key(s, 'x', t), TopEvent::kNone);
  EXPECT_EQ(apply_key(s, KEY_RESIZE, t), TopEvent::kRedraw);
  EXPECT_FALSE(s.quit);
  EXPECT_EQ(apply_key(s, 'q', t), TopEvent::kQuit);
  EXPECT_TRUE(s.quit);
}

TEST(TopScreenKeys, SlashEditsTheFilter) {
  TopTable t = make_table();
  TopUiState s = state_for(t);
  EXPECT_EQ(apply_key(s, '/', t), TopEvent::kRedraw);
  EXPECT_TRUE(s.editing_filter);
  for (int k : {'w', 'e', 'q', 'b'}) EXPECT_EQ(apply_key(s, k, t), TopEvent::kRedraw);
  EXPECT_FALSE(s.quit);  // 'q' is text while editing
  EXPECT_EQ(s.filter_input, "weqb");
  apply_key(s, KEY_BACKSPACE, t);
  apply_key(s, 127, t);
  apply_key(s, 'b', t);
  EXPECT_EQ(s.filter_input, "web");
  EXPECT_TRUE(s.filter.empty());  // not applied before Enter
  EXPECT_EQ(apply_key(s, '\r', t), TopEvent::kRegroup);
  EXPECT_FALSE(s.editing_filter);
  EXPECT_EQ(s.filter, "web");
  auto lines = texts(layout_top_screen(t, s, stack_for, 120, 40));
  EXPECT_EQ(row_line_of(lines, "database"), -1);

  // Esc cancels: the filter stays.
  apply_key(s, '/', t);
  EXPECT_EQ(s.filter_input, "web");  // starts from the current filter
  apply_key(s, 'x', t);
  EXPECT_EQ(apply_key(s, 27, t), TopEvent::kRedraw);
  EXPECT_EQ(s.filter, "web");
  EXPECT_FALSE(s.editing_filter);

  // An empty input clears it.
  apply_key(s, '/', t);
  apply_key(s, 21, t);  // Ctrl-U
  EXPECT_EQ(apply_key(s, '\r', t), TopEvent::kRegroup);
  EXPECT_TRUE(s.filter.empty());

  // UTF-8 arrives byte by byte; Backspace removes the whole character.
  apply_key(s, '/', t);
  for (int b : {int{'c'}, int{'a'}, int{'f'}, 0xc3, 0xa9}) apply_key(s, b, t);
  EXPECT_EQ(s.filter_input, "caf\xc3\xa9");
  apply_key(s, KEY_BACKSPACE, t);
  EXPECT_EQ(s.filter_input, "caf");
}

// ---- a thread expanded into its stacks -------------------------------------------------------

TopFrameView frame(std::string symbol, bool kernel) {
  TopFrameView f;
  f.symbol = std::move(symbol);
  f.kernel = kernel;
  f.resolved = true;
  f.module = kernel ? "kernel" : "/usr/bin/prog";
  return f;
}

TopRow stack_row(int32_t ustack, uint64_t oncpu, uint64_t samples, uint64_t offcpu, uint64_t runq,
                 uint64_t vol, uint64_t invol) {
  TopRow r = make_row(100, 101, "webserver", oncpu, vol, invol, runq);
  r.values.oncpu_samples = samples;
  r.values.offcpu_ns = offcpu;
  r.kstack = ustack + 100;
  r.ustack = ustack;
  r.id = "s:" + std::to_string(ustack);
  return r;
}

// Thread 101's stacks: spinning in spin_a (two stacks), sleeping in sleep_b, and six small
// on-CPU stacks (more than the screen lists).
TopTable thread_stacks() {
  TopTable t;
  t.group_by = TopGroupBy::kStack;
  t.interval_ns = 1'000'000'000;
  t.sample_hz = 999;
  t.rows = {stack_row(1, 600'000'000, 600, 0, 0, 0, 3), stack_row(2, 100'000'000, 100, 0, 0, 0, 0),
            stack_row(3, 20'000'000, 20, 250'000'000, 1'000'000, 100, 0)};
  for (int i = 0; i < 6; ++i) t.rows.push_back(stack_row(10 + i, 1'000'000, 1, 0, 0, 0, 0));
  for (const auto& r : t.rows) t.total += r.values;
  return t;
}

TopStackView thread_stack_view(const TopRow& r) {
  TopStackView v;
  if (r.ustack == 1 || r.ustack == 2) {
    v.user = {frame(r.ustack == 1 ? "spin_a" : "spin_a_inner", false), frame("worker", false),
              frame("start_thread", false)};
    if (r.ustack == 2) {
      TopFrameView m;
      m.symbol = "[incomplete: depth limit]";
      m.marker = true;
      v.user.push_back(m);
    }
  } else if (r.ustack == 3) {
    v.kernel = {frame("__schedule", true), frame("schedule", true), frame("do_nanosleep", true)};
    v.user = {frame("sleep_b", false), frame("worker", false)};
  } else {
    v.note = "[stack lost: map collision]";
  }
  return v;
}

TEST(TopScreenExpansion, AThreadShowsItsOnCpuAndOffCpuStacksWithNumbersAndCompleteness) {
  TopTable st = thread_stacks();
  auto lines = expanded_group_lines(st, thread_stack_view, TopGroupBy::kTid, 120);
  std::vector<std::string> text;
  for (const auto& l : lines) {
    EXPECT_LE(utf8_columns(l.text), 120) << l.text;
    text.push_back(l.text);
  }
  const int on =
      line_with(text, "on-CPU by stack (sampled at 999 Hz, scaled to the thread's exact");
  const int off = line_with(text, "off-CPU by switch-out stack (exact, at switch-out)");
  ASSERT_EQ(on, 0);
  ASSERT_GT(off, on);
  // The section header: the thread's exact total (the stacks' sum), the number of stacks and
  // samples.
  uint64_t oncpu_total = 0, samples = 0;
  for (const auto& r : st.rows) oncpu_total += r.values.oncpu_ns, samples += r.values.oncpu_samples;
  EXPECT_THAT(text[on], HasSubstr(format_duration_ns(oncpu_total) + "): 9 stacks, " +
                                  format_count(samples) + " samples"));
  // The biggest on-CPU stack first, with its share, its samples, complete, and its frames.
  EXPECT_THAT(text[on + 1], HasSubstr("ON-CPU " + format_duration_ns(600'000'000) + "  " +
                                      fmt::format("{:.1f}%", 60000.0 / 726) + "  SAMPLES 600"));
  EXPECT_THAT(text[on + 1], HasSubstr("complete"));
  EXPECT_THAT(text[on + 2], HasSubstr("user: spin_a < worker < start_thread"));
  // The second: the unwinder's marker says why it is incomplete.
  EXPECT_THAT(text[on + 3], HasSubstr("ON-CPU " + format_duration_ns(100'000'000)));
  EXPECT_THAT(text[on + 3], HasSubstr("[incomplete: depth limit]"));
  // Five stacks listed, the other four summed.
  EXPECT_THAT(text[off - 1],
              HasSubstr("... 4 more on-CPU stacks: ON-CPU " + format_duration_ns(4'000'000)));
  EXPECT_EQ(line_with(text, "[stack lost: map collision]") < off, true);
  // Off-CPU: only the stack where it blocked, with exact numbers and the kernel part first.
  EXPECT_THAT(text[off], HasSubstr("2 stacks, OFF-CPU " + format_duration_ns(250'000'000)));
  EXPECT_THAT(text[off + 1], HasSubstr("OFF-CPU " + format_duration_ns(250'000'000) + "  RUNQ " +
                                       format_duration_ns(1'000'000) + "  VOL 100  INVOL 0"));
  EXPECT_THAT(text[off + 2],
              HasSubstr("kernel: __schedule < schedule < do_nanosleep | user: sleep_b < worker"));
  // spin_a's stack was switched out 3 times by preemption: an off-CPU stack too (its off-CPU
  // time ends in a later interval), after sleep_b's.
  EXPECT_THAT(text[off + 3], HasSubstr("OFF-CPU 0ns  RUNQ 0ns  VOL 0  INVOL 3"));
  EXPECT_THAT(text[off + 4], HasSubstr("user: spin_a < worker"));
  EXPECT_EQ(static_cast<int>(text.size()), off + 5);
}

TEST(TopScreenExpansion, LongStacksWrapAtFramesAndEndWithWhatDidNotFit) {
  TopTable st;
  st.sample_hz = 99;
  st.rows = {stack_row(1, 5'000'000, 5, 0, 0, 0, 0)};
  auto deep = [](const TopRow&) {
    TopStackView v;
    for (int i = 0; i < 60; ++i) v.user.push_back(frame("function_" + std::to_string(i), false));
    return v;
  };
  auto lines = expanded_group_lines(st, deep, TopGroupBy::kTid, 60);
  std::vector<std::string> text;
  for (const auto& l : lines) text.push_back(l.text);
  const int first = line_with(text, "user: function_0 < function_1");
  ASSERT_GT(first, 0);
  int path_lines = 0;
  for (size_t i = static_cast<size_t>(first); i < text.size() && text[i].rfind("        ", 0) == 0;
       ++i) {
    EXPECT_LE(utf8_columns(text[i]), 60);
    ++path_lines;
  }
  EXPECT_EQ(path_lines, kTopExpandedPathLines);
  EXPECT_THAT(text[static_cast<size_t>(first + kTopExpandedPathLines - 1)],
              testing::MatchesRegex(" +\\.\\.\\. [0-9]+ more frames"));
  // Every frame shown is whole (wrapping happens between frames).
  for (int i = first; i < first + kTopExpandedPathLines - 1; ++i)
    EXPECT_THAT(text[static_cast<size_t>(i)], testing::MatchesRegex(".*function_[0-9]+$"));
}

TEST(TopScreenExpansion, EnterOnAThreadRowShowsItsStacksUnderIt) {
  TopTable t = make_table();
  t.sample_hz = 999;
  TopUiState s = state_for(t);
  std::vector<std::string> asked;
  GroupStacksProvider group = [&](const TopRow& row, TopGroupBy by) {
    EXPECT_EQ(by, TopGroupBy::kTid);
    asked.push_back(row.id);
    return thread_stacks();
  };
  EXPECT_EQ(apply_key(s, KEY_RIGHT, t), TopEvent::kRedraw);  // the first row: webserver
  EXPECT_EQ(s.expanded, (std::set<std::string>{"t:101"}));
  EXPECT_EQ(apply_key(s, KEY_RIGHT, t), TopEvent::kNone);  // already open
  TopLayout layout = layout_top_screen(t, s, thread_stack_view, 140, 60, group);
  expect_fits(layout, 140, 60);
  auto lines = texts(layout);
  EXPECT_EQ(asked, (std::vector<std::string>{"t:101"}));  // only the expanded row
  const int row = row_line_of(lines, "webserver");
  ASSERT_GE(row, 0);
  EXPECT_THAT(lines[row + 1], HasSubstr("on-CPU by stack (sampled at 999 Hz"));
  EXPECT_THAT(lines[row + 3], HasSubstr("spin_a"));
  EXPECT_GT(line_with(lines, "off-CPU by switch-out stack"), row);
  EXPECT_GT(row_line_of(lines, "database"), line_with(lines, "sleep_b"));
  // Left (or Esc) closes it again.
  EXPECT_EQ(apply_key(s, KEY_LEFT, t), TopEvent::kRedraw);
  EXPECT_TRUE(s.expanded.empty());
  EXPECT_EQ(apply_key(s, 27, t), TopEvent::kNone);
  apply_key(s, '\r', t);
  EXPECT_EQ(apply_key(s, 27, t), TopEvent::kRedraw);
  EXPECT_TRUE(s.expanded.empty());
}

TEST(TopScreenLayout, HeaderSaysWhereTheNumbersByStackComeFromAndWhatIsHidden) {
  TopTable t = make_table();
  t.sample_hz = 999;
  t.counters.samples = 4321;
  t.hidden_pid = 777;
  t.hidden_oncpu_ns = 2'500'000;
  auto lines = texts(layout_top_screen(t, state_for(t), stack_for, 200, 40));
  EXPECT_GE(line_with(lines, "on-CPU by stack: sampled at 999 Hz, scaled to exact thread totals (" +
                                 format_count(4321) + " samples); off-CPU: exact, at switch-out"),
            0);
  EXPECT_THAT(lines[0], HasSubstr("kscope itself hidden (pid 777, on-CPU " +
                                  format_duration_ns(2'500'000) + "; --show-self)"));
  // Sorted by SLICE: the column appears (it is not shown otherwise).
  auto slice_titles = [](const std::string& titles) {
    auto w = words(titles);
    return std::count(w.begin(), w.end(), "SLICE") + std::count(w.begin(), w.end(), "SLICE*");
  };
  const int titles = line_with(lines, "RANK");
  ASSERT_GE(titles, 0);
  EXPECT_EQ(slice_titles(lines[titles]), 1) << lines[titles];  // only AVG SLICE
  t.sort = TopSortKey::kSlice;
  lines = texts(layout_top_screen(t, state_for(t), stack_for, 200, 40));
  EXPECT_EQ(slice_titles(lines[titles]), 2) << lines[titles];
  EXPECT_THAT(lines[titles], HasSubstr("SLICE*"));
}

// The header says what is traced in each mode: with -p only the named processes (kscope is not
// among them, nothing is hidden), on all tasks kscope itself hidden, with --show-self nothing
// hidden; and unwind tables still loading.
TEST(TopScreenLayout, HeaderSaysWhatIsTracedInEachMode) {
  TopTable t = make_table();
  t.scope = "PIDs 4242";
  auto lines = texts(layout_top_screen(t, state_for(t), stack_for, 200, 40));
  EXPECT_THAT(lines[0], HasSubstr("PIDs 4242"));
  EXPECT_THAT(lines[0], Not(HasSubstr("hidden")));
  t.scope = "all tasks";
  t.hidden_pid = 777;
  lines = texts(layout_top_screen(t, state_for(t), stack_for, 200, 40));
  EXPECT_THAT(lines[0], HasSubstr("all tasks, kscope itself hidden (pid 777, on-CPU "));
  t.hidden_pid = 0;  // --show-self
  lines = texts(layout_top_screen(t, state_for(t), stack_for, 200, 40));
  EXPECT_THAT(lines[0], HasSubstr("all tasks"));
  EXPECT_THAT(lines[0], Not(HasSubstr("hidden")));
  EXPECT_THAT(lines[0], Not(HasSubstr("loading")));
  t.tables_pending = 3;
  lines = texts(layout_top_screen(t, state_for(t), stack_for, 200, 40));
  EXPECT_THAT(lines[0], HasSubstr("loading unwind tables of 3 processes"));
}

// Before the first interval ends the screen has no numbers and says so: never "rows 0",
// "nothing ran" or an interval of 0 that would read as an idle target.
TEST(TopScreenLayout, BeforeTheFirstIntervalNoNumbersAreShown) {
  TopTable t;
  t.first_pending = true;
  t.interval_ns = 300'000'000;
  t.ncpus = 2;
  t.scope = "PIDs 4242";
  t.tables_pending = 1;
  TopUiState s;
  s.group_by = TopGroupBy::kTid;
  auto lines = texts(layout_top_screen(t, s, stack_for, 160, 30));
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  EXPECT_THAT(lines[0],
              HasSubstr("measuring the first interval (" + format_duration_ns(300'000'000) + ")"));
  EXPECT_THAT(lines[0], HasSubstr("PIDs 4242"));
  EXPECT_THAT(lines[0], HasSubstr("loading unwind tables of 1 process"));
  EXPECT_THAT(all, HasSubstr("first interval under way"));
  EXPECT_THAT(all, Not(HasSubstr("nothing ran")));
  EXPECT_THAT(all, Not(HasSubstr("rows 0")));
  EXPECT_THAT(all, Not(HasSubstr("interval 0ns")));
  EXPECT_THAT(all, Not(HasSubstr("on-CPU 0ns")));
}

// --no-stacks: nothing on the screen mentions a stack, whatever the keys and the size.
TEST(TopScreenLayout, WithoutStacksNothingSaysStack) {
  TopTable t = make_table();
  t.stacks = false;
  TopUiState s = state_for(t);
  s.stacks = false;
  int provider_calls = 0;
  StackProvider never = [&](const TopRow&) {
    ++provider_calls;
    return TopStackView{};
  };
  GroupStacksProvider never_group = [&](const TopRow&, TopGroupBy) {
    ++provider_calls;
    return TopTable{};
  };
  EXPECT_EQ(apply_key(s, '\r', t), TopEvent::kNone);
  EXPECT_EQ(apply_key(s, KEY_RIGHT, t), TopEvent::kNone);
  s.expanded = {"t:101"};  // even if it were asked
  for (int g = 0; g < 4; ++g) {
    for (auto [w, h] : {std::pair{200, 50}, {80, 24}, {40, 12}}) {
      auto lines = texts(layout_top_screen(t, s, never, w, h, never_group));
      for (const auto& l : lines) {
        std::string lower = l;
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        EXPECT_EQ(lower.find("stack"), std::string::npos) << l;
      }
      EXPECT_THAT(lines.back(), HasSubstr(std::string("by ") + to_string(s.group_by)));
    }
    apply_key(s, 'g', t);
    EXPECT_NE(s.group_by, TopGroupBy::kStack);
    t.group_by = s.group_by;
  }
  EXPECT_EQ(provider_calls, 0);
}

}  // namespace
}  // namespace kscope
