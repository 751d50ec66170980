// The interactive screen of `kscope top` (stdout is a terminal), in the manner of htop: a header
// with the interval's totals and every drop counter, the table ranked as the model ranked it, the
// stacks of expanded rows inline, the selected row's stack in a bottom pane, and a status line.
//
// Two layers so that everything but the painting is testable without a terminal:
//  - pure functions: layout_top_screen() decides which text goes on which line for a given size,
//    table and UI state; apply_key() turns one key into a state change and an event.
//  - TopScreen: owns the ncurses session (RAII), paints a layout and reads keys.
//
// The caller owns the refresh loop: it recomputes the table every interval (or when
// handle_input() reports kRegroup, with state().group_by/sort), stops updating while
// state().paused, and calls draw() after every event other than kNone and after every new table.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "model/top_model.h"
#include "util/result.h"

struct screen;  // ncurses' SCREEN

namespace kscope {

struct TopUiState {
  TopGroupBy group_by = TopGroupBy::kTid;  // one row per thread, like top -H
  TopSortKey sort = TopSortKey::kOnCpu;
  bool paused = false;
  std::string filter;              // substring of comm, case-sensitive; empty shows every row
  std::string selected_id;         // TopRow::id of the selected row; empty selects the first row
  std::set<std::string> expanded;  // TopRow::id of the rows whose stacks are shown inline
  bool quit = false;
  bool stacks = true;  // false with --no-stacks: `g` skips the stack grouping

  // Maintained by the screen; callers normally leave them alone.
  bool editing_filter = false;  // the '/' input line is open
  std::string filter_input;     // its text so far
  int selected_rank = 0;  // index of the selection among the filtered rows: where the selection
                          // goes when its row vanishes from the next table
  int scroll = 0;         // first filtered row shown
  int page_rows = 10;     // rows the last draw had room for (PgUp/PgDn step)
};

// The lead symbolizes lazily: the screen calls this only for rows whose stack is on screen.
using StackProvider = std::function<TopStackView(const TopRow&)>;
// The stack rows of an expanded thread (pid, comm) row: TopSource::group_stacks() over the
// table's interval. Called only for expanded rows on screen.
using GroupStacksProvider = std::function<TopTable(const TopRow& row, TopGroupBy row_group_by)>;

// How many stacks an expanded thread shows per kind (on-CPU, off-CPU); the rest are summed up
// in one line.
inline constexpr size_t kTopExpandedStacks = 5;
// Lines a stack's frames may take in an expanded thread; longer stacks end with a note.
inline constexpr int kTopExpandedPathLines = 6;

enum class TopEvent {
  kNone,
  kRedraw,   // selection, expansion, pause, filter editing, resize: draw() again
  kRegroup,  // sort, grouping or filter changed: recompute the table, then draw()
  kRefresh,  // space: end the interval now (even while paused), then draw() the new table
  kQuit,
};

// Attribute hints for the painter; the text alone carries all the information (the selected row
// is marked '>' and the sort column '*'), so monochrome terminals and tmux captures lose nothing.
enum class TopLineStyle : uint8_t {
  kNormal,
  kHeader,   // interval, switches, CPU busy, lost
  kWarning,  // drop breakdown: something was lost
  kTitles,   // column titles
  kRow,
  kSelectedRow,
  kKernelFrame,
  kUserFrame,
  kNote,       // TopStackView::note, "(no stack)"
  kPaneTitle,  // separator above the bottom stack pane
  kStatus,     // key help, grouping, sort, PAUSED, filter
  kInput,      // the '/' filter input line
};

struct TopScreenLine {
  std::string text;  // at most `width` columns (one column per code point), no control characters
  TopLineStyle style = TopLineStyle::kNormal;
};

struct TopLayout {
  std::vector<TopScreenLine> lines;  // exactly `height` lines (fewer only for height < 1)
  int selected = -1;                 // index of the selected row among the filtered rows, -1: none
  std::string selected_id;           // its TopRow::id
  int scroll = 0;                    // first filtered row shown
  int page_rows = 1;                 // lines available to rows
  int cursor_col = -1;               // column of the text cursor on the last line, -1: hidden
};

// Below this size the screen shows only "terminal too small".
inline constexpr int kTopMinWidth = 20;
inline constexpr int kTopMinHeight = 4;

// Indices into table.rows of the rows whose comm contains `filter` (all when it is empty), in
// table order.
std::vector<size_t> filter_top_rows(const TopTable& table, const std::string& filter);

// The selected row as an index into filter_top_rows(): the row with state.selected_id, else the
// row at state.selected_rank (clamped), -1 when no row passes the filter.
int resolve_top_selection(const TopTable& table, const std::vector<size_t>& filtered,
                          const TopUiState& state);

// What the screen shows at width x height. Pure: calls `stacks` only for rows whose stack is
// visible (expanded rows on screen, the selected row when the bottom pane fits). An expanded row
// of a thread/pid/comm table shows, with `group_stacks`, its on-CPU stacks (sampled, scaled:
// ON-CPU, SAMPLES) and its off-CPU stacks (exact: OFF-CPU, RUNQ, VOL/INVOL), each with its
// frames and completeness; without it, the row's own stack.
TopLayout layout_top_screen(const TopTable& table, const TopUiState& state,
                            const StackProvider& stacks, int width, int height,
                            const GroupStacksProvider& group_stacks = {});

// The lines of an expanded thread (process, comm) row: `stack_table` is its group_stacks().
std::vector<TopScreenLine> expanded_group_lines(const TopTable& stack_table,
                                                const StackProvider& stacks,
                                                TopGroupBy row_group_by, int width);

// Applies one key (an ncurses key code: KEY_UP, '\n', 's', ...; KEY_RESIZE too) to `state`.
// Navigation and Enter act on the rows of `table` that pass state.filter.
TopEvent apply_key(TopUiState& state, int key, const TopTable& table);

class TopScreen {
 public:
  using Event = TopEvent;

  // Starts ncurses on the controlling terminal (stdin/stdout): cbreak, noecho, keypad, hidden
  // cursor. Fails without touching the terminal when stdin or stdout is not a terminal or
  // TERM names no usable terminal.
  static Result<std::unique_ptr<TopScreen>> create(TopUiState initial);
  ~TopScreen();  // endwin(): also runs when the caller unwinds with an exception
  TopScreen(const TopScreen&) = delete;
  TopScreen& operator=(const TopScreen&) = delete;

  // Full redraw of `table` with the current state, at the current terminal size. Remembers the
  // table: handle_input() navigates in the last table drawn.
  void draw(const TopTable& table, const StackProvider& stacks,
            const GroupStacksProvider& group_stacks = {});

  // Waits up to timeout_ms (< 0: forever) for a key, then handles every key already pending.
  // Returns the strongest thing that happened: kQuit > kRefresh > kRegroup > kRedraw > kNone.
  // Returns as soon as a key arrives, so the caller keeps its own refresh deadline.
  Event handle_input(int timeout_ms);

  const TopUiState& state() const { return state_; }

 private:
  TopScreen(TopUiState initial, ::screen* screen, bool colors, std::string saved_ctype);
  void paint(const TopLayout& layout, int width, int height);

  TopUiState state_;
  TopTable last_table_;  // what the user sees: the rows keys navigate in
  ::screen* screen_ = nullptr;
  bool colors_ = false;
  std::string saved_ctype_;  // LC_CTYPE before create(), restored by the destructor
};

}  // namespace kscope
