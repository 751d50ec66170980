// kscope: subcommand dispatch only.
#include <malloc.h>

#include <cstdio>
#include <vector>

#include "cli/commands.h"
#include "kscope/version.h"

int main(int argc, char** argv) {
  // Blocks of 128 KiB and more are mmap()ed and given back when freed. glibc otherwise raises
  // its mmap threshold (up to 32 MiB) each time such a block is freed, and later large blocks
  // (the unwinder's row vectors while it builds a big binary's table, samples of tens of
  // thousands of accounts) come from the heap, whose freed memory stays resident: kscope top's
  // RSS climbed with every such peak (docs/RELIABILITY.md, Soak). Explicit values also stop
  // the dynamic adjustment.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
  using namespace kscope::cli;
  CLI::App app{
      "kscope: see how a process uses memory and CPU, built on eBPF.\n"
      "Run 'kscope COMMAND --help' for the options of a command; 'man kscope' for the guide.",
      "kscope"};
  app.set_version_flag("--version", KSCOPE_VERSION);
  app.add_flag("-v,--verbose", global_options().verbose,
               "Print debug details and libbpf's own log on stderr (repeat for more)");
  app.add_option("--debug-dir", global_options().debug_dirs,
                 "Look for separate debug files under DIR (.build-id/xx/rest.debug and the "
                 "debuglink tree) instead of /usr/lib/debug; repeatable (env: KSCOPE_DEBUG_DIR)")
      ->type_name("DIR");
  app.add_flag("--no-debuginfod", global_options().no_debuginfod,
               "Never fetch debug files from the debuginfod servers of DEBUGINFOD_URLS");
  app.require_subcommand(1);
  app.fallthrough();

  std::vector<Subcommand> subcommands = {
      setup_faults(app), setup_plot(app),   setup_doctor(app),  setup_top(app),
      setup_export(app), setup_report(app), setup_monitor(app), setup_study(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);  // help on stdout, exit 0
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Usage errors: message on stderr, exit 2 (like getopt-based tools).
    std::fprintf(stderr, "kscope: %s\n", e.what());
    std::fprintf(stderr, "Run 'kscope --help' or 'kscope COMMAND --help' for usage.\n");
    return static_cast<int>(kscope::ExitCode::kUsage);
  }

  for (auto& sub : subcommands) {
    if (sub.app->parsed()) return sub.run();
  }
  return static_cast<int>(kscope::ExitCode::kUsage);
}
