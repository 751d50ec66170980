// The live `kscope top` screen: refreshes the table every interval, answers keys in between.
#include "render/top_live.h"

#include <algorithm>

#include "render/top_screen.h"
#include "util/clock.h"

namespace kscope {

Result<int> run_top_screen(TopSource& session, TopGroupBy by, TopSortKey sort, bool with_stacks,
                           uint64_t interval_ns, std::optional<uint64_t> deadline,
                           volatile sig_atomic_t* stop) {
  TopUiState initial;
  initial.group_by = by;
  initial.sort = sort;
  initial.stacks = with_stacks;
  KSCOPE_ASSIGN_OR_RETURN(auto screen, TopScreen::create(initial));
  StackProvider stacks = [&session](const TopRow& row) { return session.stack_view(row); };
  // An expanded thread's stacks, over the interval on screen, sorted as the screen is.
  GroupStacksProvider group_stacks = [&session, &screen](const TopRow& row, TopGroupBy row_by) {
    return session.group_stacks(row, row_by, screen->state().sort);
  };

  // Until the first interval ends: no numbers, a header that says what is being measured (and
  // what is still loading), never an empty table that would read as "nothing ran".
  auto placeholder = [&] {
    TopTable t;
    t.group_by = screen->state().group_by;
    t.sort = screen->state().sort;
    t.ncpus = session.ncpus();
    t.stacks = with_stacks;
    t.first_pending = true;
    t.interval_ns = interval_ns;
    t.scope = session.scope();
    t.tables_pending = session.tables_pending();
    return t;
  };
  TopTable table = placeholder();
  screen->draw(table, stacks, group_stacks);
  // The first symbolization of a stack can take a while (a library's debug file is read the
  // first time one of its frames is named): the first table is drawn once with its stacks
  // marked as being resolved, so its rows show at once, then with the stacks.
  bool first_table = true;
  const StackProvider resolving = [](const TopRow&) {
    TopStackView v;
    v.note = "[resolving symbols...]";
    return v;
  };
  const GroupStacksProvider no_groups;

  uint64_t next = session.start_ns() + interval_ns;
  bool refresh_now = false;  // space: end the interval at once
  while (!*stop) {
    uint64_t now = monotonic_ns();
    if (deadline && now >= *deadline) break;
    if (now >= next || refresh_now) {
      if (!screen->state().paused || refresh_now) {
        // While paused the last table stays; the next one covers the whole pause.
        KSCOPE_ASSIGN_OR_RETURN(table,
                                session.refresh(screen->state().group_by, screen->state().sort));
        if (first_table && with_stacks) screen->draw(table, resolving, no_groups);
        first_table = false;
        screen->draw(table, stacks, group_stacks);
      }
      // From the time the refresh ended: a refresh that took longer than the interval (all
      // tasks under heavy load) must not start the next one at once, or keys are never read.
      const uint64_t after = monotonic_ns();
      next = refresh_now ? after + interval_ns : next + interval_ns;
      if (next <= after) next = after + interval_ns;
      refresh_now = false;
      now = after;
      if (deadline && now >= *deadline) break;
    }
    uint64_t wake = std::min(next, deadline.value_or(next));
    int timeout_ms = static_cast<int>(std::min<uint64_t>((wake - now) / 1000000 + 1, 100));
    TopEvent event = screen->handle_input(timeout_ms);
    if (event == TopEvent::kQuit) return 0;  // at once, without loading what poll() would load
    // New processes: read their mappings while they live (and load their unwind tables).
    KSCOPE_TRY(session.poll(0));
    if (table.first_pending && table.tables_pending != session.tables_pending()) {
      table.tables_pending = session.tables_pending();
      screen->draw(table, stacks, group_stacks);
    }
    switch (event) {
      case TopEvent::kQuit:
        return 0;
      case TopEvent::kRefresh:
        refresh_now = true;
        break;
      case TopEvent::kRegroup:
        table = table.first_pending
                    ? placeholder()  // nothing refreshed yet
                    : session.regroup(screen->state().group_by, screen->state().sort);
        screen->draw(table, stacks, group_stacks);
        break;
      case TopEvent::kRedraw:
        screen->draw(table, stacks, group_stacks);
        break;
      case TopEvent::kNone:
        break;
    }
  }
  return 0;
}

}  // namespace kscope
