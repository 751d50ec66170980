// kscope study locality|thrashing: option parsing; the studies themselves are in src/study/.
#include <memory>

#include "cli/commands.h"
#include "study/studies.h"

namespace kscope::cli {

Subcommand setup_study(CLI::App& parent) {
  auto* app = parent.add_subcommand(
      "study",
      "Run a classic virtual-memory case study end to end with kscope monitor and kscope-work: "
      "raw CSV, SVG plots and a markdown summary in --out DIR.\n"
      "  kscope study locality [--out DIR] [--mb 1024] [--accesses-a 50000] [--accesses-b 10000]\n"
      "  kscope study thrashing [--out DIR] [--n 1,5,11,21,28] [--mb 200] [--limit-mb 1536] "
      "(root)");
  app->require_subcommand(1);
  auto lo = std::make_shared<study::LocalityOptions>();
  auto* loc = app->add_subcommand("locality",
                                  "Two runs of two processes: random+random, then random+locality");
  loc->add_option("--out", lo->out, "Output directory (default study-locality)");
  loc->add_option("--mb", lo->mb, "MiB per process (default 1024)");
  loc->add_option("--accesses-a", lo->accesses_a, "Accesses per iteration of process A (50000)");
  loc->add_option("--accesses-b", lo->accesses_b, "Accesses per iteration of process B (10000)");
  loc->add_option("--iterations", lo->iterations, "Iterations per process (default 20)");
  loc->add_option("--period-ms", lo->period_ms, "Sampling period (default 50)");
  loc->add_option("--work", lo->work, "kscope-work binary (default: next to kscope, then PATH)");
  auto to = std::make_shared<study::ThrashingOptions>();
  auto* thr = app->add_subcommand(
      "thrashing",
      "N concurrent random-access processes in a memory cgroup with swap: CPU utilization, "
      "completion time and major faults against N. Needs root; restores cgroup and swap after.");
  thr->add_option("--out", to->out, "Output directory (default study-thrashing)");
  thr->add_option("--n", to->n_list, "Comma-separated process counts (default 1,5,11,21,28)");
  thr->add_option("--mb", to->mb, "MiB per process (default 200)");
  thr->add_option("--accesses", to->accesses, "Accesses per iteration (default 10000)");
  thr->add_option("--iterations", to->iterations, "Iterations per process (default 20)");
  thr->add_option("--limit-mb", to->limit_mb, "Memory limit of the cgroup in MiB (default 1536)");
  thr->add_option("--swap-mb", to->swap_mb, "Swap size in MiB (default: max N x --mb + 512)");
  thr->add_option("--swap", to->swap, "auto (zram, else a file), zram or file");
  thr->add_option("--period-ms", to->period_ms, "Sampling period (default 50)");
  thr->add_option("--work", to->work, "kscope-work binary (default: next to kscope, then PATH)");
  return {app, [=]() -> int {
            volatile sig_atomic_t* stop = install_stop_handlers();
            Result<int> r =
                loc->parsed() ? study::run_locality(*lo, stop) : study::run_thrashing(*to, stop);
            if (!r) {
              int code = report_error(r.error());
              return *stop ? 130 : code;
            }
            return *r;
          }};
}

}  // namespace kscope::cli
