// kscope doctor: prints which kernel features kscope needs are here (trace/feature_probe.h
// finds out, by trying each one).
#include <sys/utsname.h>

#include <cstdio>

#include "cli/commands.h"
#include "trace/feature_probe.h"

namespace kscope::cli {

namespace {

int run_doctor() {
  utsname u{};
  uname(&u);
  std::printf("kernel   %s %s (%s)\n", u.sysname, u.release, u.machine);
  FeatureReport report = probe_kernel_features(global_options().verbose);
  bool faults_ok = true;
  for (const auto& c : report.checks) {
    const char* state = c.ok ? "ok" : c.optional ? "absent" : "missing";
    std::printf("%-8s %-40s [%s]%s%s\n", state, c.name.c_str(), c.used_by.c_str(),
                c.detail.empty() ? "" : "  ", c.detail.c_str());
    if (!c.ok && !c.optional && c.needed_by("faults")) faults_ok = false;
  }
  if (report.programs_skipped)
    std::printf("(program and perf-event checks skipped: they need BTF and privileges)\n");
  std::fflush(stdout);
  if (!faults_ok) {
    std::fprintf(stderr, "kscope: 'kscope faults' cannot run here: missing");
    for (const auto& c : report.checks)
      if (!c.ok && !c.optional && c.needed_by("faults"))
        std::fprintf(stderr, " [%s]", c.name.c_str());
    std::fprintf(stderr, "\n");
    return static_cast<int>(ExitCode::kFailure);
  }
  return 0;
}

}  // namespace

Subcommand setup_doctor(CLI::App& parent) {
  auto* app = parent.add_subcommand(
      "doctor",
      "Check, by trying each one, the kernel features kscope uses (BTF, tracepoints, program "
      "types, perf events) and the caller's privileges. Exit 1 if 'kscope faults' cannot run.");
  return {app, [] { return run_doctor(); }};
}

}  // namespace kscope::cli
