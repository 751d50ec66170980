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

  // Until the first interval ends: an empty table that says what is being measured.
  TopTable table;
  table.group_by = by;
  table.sort = sort;
  table.ncpus = session.ncpus();
  table.stacks = with_stacks;
  screen->draw(table, stacks, group_stacks);

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
        screen->draw(table, stacks, group_stacks);
      }
      next = refresh_now ? now + interval_ns : next + interval_ns;
      if (next <= now) next = now + interval_ns;
      refresh_now = false;
      continue;
    }
    uint64_t wake = std::min(next, deadline.value_or(next));
    int timeout_ms = static_cast<int>(std::min<uint64_t>((wake - now) / 1000000 + 1, 100));
    TopEvent event = screen->handle_input(timeout_ms);
    // New processes: read their mappings while they live.
    KSCOPE_TRY(session.poll(0));
    switch (event) {
      case TopEvent::kQuit:
        return 0;
      case TopEvent::kRefresh:
        refresh_now = true;
        break;
      case TopEvent::kRegroup:
        table = session.regroup(screen->state().group_by, screen->state().sort);
        if (table.ncpus == 0) {  // nothing refreshed yet
          table.group_by = screen->state().group_by;
          table.sort = screen->state().sort;
          table.ncpus = session.ncpus();
          table.stacks = with_stacks;
        }
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
