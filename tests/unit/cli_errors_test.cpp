// Bad input reaches the user as a clear message on stderr and a non-zero exit, without root:
// these checks run before kscope asks for privileges.
#include <gtest/gtest.h>

#include "subprocess.h"
#include "trace/proc.h"

namespace kscope::testing {
namespace {

TEST(CliErrors, UnknownOptionIsAUsageError) {
  auto r = run({KSCOPE_BINARY, "faults", "--no-such-option", "-p", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no-such-option"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << "diagnostics go to stderr";
}

TEST(CliErrors, NoSubcommandIsAUsageError) {
  auto r = run({KSCOPE_BINARY});
  EXPECT_EQ(r.exit_code, 2);
}

TEST(CliErrors, NeitherPidNorCommandIsAUsageError) {
  auto r = run({KSCOPE_BINARY, "faults"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("-p PID"), std::string::npos) << r.err;
}

TEST(CliErrors, NonNumericPidIsAUsageError) {
  auto r = run({KSCOPE_BINARY, "faults", "-p", "12x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("invalid PID '12x'"), std::string::npos) << r.err;
}

TEST(CliErrors, NoSuchProcess) {
  // PIDs above pid_max never exist; 4194303 is the largest pid_max allows, rarely in use.
  pid_t pid = 4194303;
  ASSERT_FALSE(proc::process_exists(pid));
  auto r = run({KSCOPE_BINARY, "faults", "-p", std::to_string(pid)});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no such process: 4194303"), std::string::npos) << r.err;
}

TEST(CliErrors, KernelThreadIsRefused) {
  // pid 2 is kthreadd on Linux.
  auto stat = proc::read_stat(2);
  if (!stat.ok() || !proc::is_kernel_thread(*stat))
    GTEST_SKIP() << "pid 2 is not a kernel thread here";
  auto r = run({KSCOPE_BINARY, "faults", "-p", "2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("kernel thread"), std::string::npos) << r.err;
}

TEST(CliErrors, CommandNotFoundExits127) {
  auto r = run({KSCOPE_BINARY, "faults", "--", "kscope-no-such-command-xyz"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.err.find("kscope-no-such-command-xyz: command not found"), std::string::npos)
      << r.err;
}

TEST(CliErrors, NonExecutableCommandExits126) {
  auto r = run({KSCOPE_BINARY, "faults", "--", "/etc/hostname"});
  EXPECT_EQ(r.exit_code, 126);
  EXPECT_NE(r.err.find("cannot execute /etc/hostname"), std::string::npos) << r.err;
}

TEST(CliErrors, BadFormatAndPlotSizeAreUsageErrors) {
  EXPECT_EQ(run({KSCOPE_BINARY, "faults", "--format", "xml", "--", "true"}).exit_code, 2);
  auto r = run({KSCOPE_BINARY, "faults", "--rows", "1", "--", "true"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--rows"), std::string::npos) << r.err;
  EXPECT_EQ(run({KSCOPE_BINARY, "faults", "--duration", "-1", "--", "true"}).exit_code, 2);
}

TEST(CliErrors, PlotOfMissingOrCorruptRecordingFails) {
  auto r = run({KSCOPE_BINARY, "plot", "/nonexistent/rec.kscope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/rec.kscope"), std::string::npos) << r.err;
  r = run({KSCOPE_BINARY, "plot", "/etc/hostname"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(r.err.empty());
}

TEST(CliErrors, HelpListsTheDocumentedOptions) {
  auto r = run({KSCOPE_BINARY, "faults", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* opt : {"--events", "--format", "--output", "--duration", "--follow-children",
                          "--no-follow-children", "--rows", "--cols", "--by-segment", "--no-plot",
                          "--linear", "--tid", "--symbols",
                          "time_ns,pid,tid,comm,addr,ip,access,mode,kind,segment,latency_ns,cpu"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
  r = run({KSCOPE_BINARY, "top", "--help"});
  EXPECT_NE(r.out.find("--tid"), std::string::npos) << r.out;
}

// Every command with --duration says the same thing about a bad value, in words (CLI11's own
// check printed "Value ... not in range 0.000000 to 1797693..." with 300 digits).
TEST(CliErrors, BadDurationIsAPositiveNumberOfSeconds) {
  const std::vector<std::vector<std::string>> commands = {
      {"faults", "--", "true"}, {"top", "--once"}, {"monitor", "--no-shm"}};
  for (const auto& cmd : commands) {
    for (const char* bad : {"0", "-1", "abc", "nan", "inf", "1x"}) {
      std::vector<std::string> argv = {KSCOPE_BINARY, cmd[0], std::string("--duration=") + bad};
      argv.insert(argv.end(), cmd.begin() + 1, cmd.end());
      auto r = run(argv);
      SCOPED_TRACE(cmd[0] + " --duration=" + bad);
      EXPECT_EQ(r.exit_code, 2);
      EXPECT_NE(r.err.find("--duration must be a positive number of seconds"), std::string::npos)
          << r.err;
      EXPECT_LT(r.err.size(), 300u) << r.err;
      EXPECT_TRUE(r.out.empty());
    }
    // The separate-argument form of a negative number is the same error.
    std::vector<std::string> argv = {KSCOPE_BINARY, cmd[0], "--duration", "-1"};
    argv.insert(argv.end(), cmd.begin() + 1, cmd.end());
    auto r = run(argv);
    EXPECT_EQ(r.exit_code, 2) << cmd[0];
    EXPECT_NE(r.err.find("--duration must be a positive number of seconds"), std::string::npos)
        << cmd[0] << ": " << r.err;
  }
}

TEST(CliErrors, ThreadTargetsExcludeOtherTargets) {
  auto r = run({KSCOPE_BINARY, "faults", "-t", "1", "-p", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("give one of -p"), std::string::npos) << r.err;
  r = run({KSCOPE_BINARY, "faults", "-t", "1", "--follow-children"});
  EXPECT_EQ(r.exit_code, 2);
  r = run({KSCOPE_BINARY, "faults", "-t", "4194303"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no such thread: 4194303"), std::string::npos) << r.err;
  r = run({KSCOPE_BINARY, "faults", "--symbols", "-p", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--symbols"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kscope::testing
