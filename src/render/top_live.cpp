// The live `kscope top` screen: refreshes the table every interval, answers keys in between.
#include "render/top_live.h"

#include <algorithm>

#include "render/top_screen.h"
#include "util/clock.h"

namespace kscope {

Result<int> run_top_screen(TopSource& session, TopGroupBy by, TopSortKey sort, uint64_t interval_ns,
                           std::optional<uint64_t> deadline, volatile sig_atomic_t* stop) {
  TopUiState initial;
  initial.group_by = by;
  initial.sort = sort;
  KSCOPE_ASSIGN_OR_RETURN(auto screen, TopScreen::create(initial));
  StackProvider stacks = [&session](const TopRow& row) { return session.stack_view(row); };

  // Until the first interval ends: an empty table that says what is being measured.
  TopTable table;
  table.group_by = by;
  table.sort = sort;
  table.ncpus = session.ncpus();
  screen->draw(table, stacks);

  uint64_t next = session.start_ns() + interval_ns;
  while (!*stop) {
    uint64_t now = monotonic_ns();
    if (deadline && now >= *deadline) break;
    if (now >= next) {
      if (!screen->state().paused) {
        // While paused the last table stays; the next one covers the whole pause.
        KSCOPE_ASSIGN_OR_RETURN(table,
                                session.refresh(screen->state().group_by, screen->state().sort));
        screen->draw(table, stacks);
      }
      next += interval_ns;
      // A refresh that took longer than the interval (tens of thousands of accounts on a loaded
      // machine: 5-11 s seen in the soak) must not start the next one at once: keys would never
      // be read, and 'q' would be ignored for good.
      if (uint64_t after = monotonic_ns(); next <= after) next = after + interval_ns;
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
      case TopEvent::kRegroup:
        table = session.regroup(screen->state().group_by, screen->state().sort);
        if (table.ncpus == 0) {  // nothing refreshed yet
          table.group_by = screen->state().group_by;
          table.sort = screen->state().sort;
          table.ncpus = session.ncpus();
        }
        screen->draw(table, stacks);
        break;
      case TopEvent::kRedraw:
        screen->draw(table, stacks);
        break;
      case TopEvent::kNone:
        break;
    }
  }
  return 0;
}

}  // namespace kscope
